// An upstream's `settings` in the route policy: the setting keys its assertions carry.
// What the file accepts and refuses (with the line), what a matched request carries, and
// the claim cut to those keys from the node's full claim.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type LoadedModel } from '../../../src/fga/model.js';
import { decisionRequest, parsePolicy, PolicyError, type CompiledPolicy } from '../../../src/gateway/policy.js';
import { upstreamSettings } from '../../../src/gateway/settings-claim.js';
import type { SignedSettings } from '../../../src/gateway/assertion-signer.js';
import { loadRegistry } from '../../../src/settings/registry.js';
import { useCleanup } from '../../support/cleanup.js';

useCleanup();

let model: LoadedModel;
let settingKeys: string[];

beforeAll(() => {
  model = loadModel();
  settingKeys = [...loadRegistry('policy/settings.yaml').keys.keys()];
});

/** agents.list on the default upstream, reports.tenant-summary on `reports`, after the given upstreams section. */
function policyText(upstreams: string): string {
  return `version: 1
${upstreams}rules:
  - id: agents.list
    methods: [GET]
    path: /api/v1/tenants/{tenantId}/agents
    permission: can_read_operational
    object: tenant:{tenantId}
    scope: tenant:{tenantId}
  - id: reports.tenant-summary
    methods: [GET]
    path: /api/v1/tenants/{tenantId}/reports/summary
    permission: can_read_reports
    object: tenant:{tenantId}
    scope: tenant:{tenantId}
    upstream: reports
`;
}

function parse(text: string): CompiledPolicy {
  return parsePolicy(text, { model, source: 'routes.yaml', settingKeys });
}

function issuesOf(text: string): string[] {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as PolicyError).issues.map(({ line, col, at, message }) => `${line}:${col} ${at}: ${message}`);
  }
  throw new Error('the policy was accepted');
}

/** The assertion settings of the request `path` matches. */
function carried(policy: CompiledPolicy, segments: string[]): readonly string[] | undefined {
  const m = policy.match('GET', segments);
  if (m.kind !== 'matched') throw new Error(m.kind);
  return decisionRequest(m.rule, m.params).assertionSettings;
}

const AGENTS = ['api', 'v1', 'tenants', 't1', 'agents'];
const SUMMARY = ['api', 'v1', 'tenants', 't1', 'reports', 'summary'];

describe('settings of an upstream in the route policy', () => {
  it('a list, [] and absent: each rule carries its upstream’s list (none when absent)', () => {
    const policy = parse(policyText(`upstreams:\n  tenant-service:\n    settings: [quota.agents, timezone]\n  reports:\n    url: http://reports:1\n    settings: []\n`));
    expect(policy.upstreams.get('tenant-service')!.settings).toEqual(['quota.agents', 'timezone']);
    expect(policy.upstreams.get('reports')!.settings).toEqual([]);
    expect(carried(policy, AGENTS)).toEqual(['quota.agents', 'timezone']);
    expect(carried(policy, SUMMARY)).toEqual([]);
    // Every rule of an upstream carries the one array, which the cut claims are cached by.
    expect(carried(policy, AGENTS)).toBe(policy.upstreams.get('tenant-service')!.settings);

    const absent = parse(policyText(`upstreams:\n  reports:\n    url: http://reports:1\n`));
    expect(absent.upstreams.get('reports')!.settings).toBeUndefined();
    expect(absent.upstreams.get('tenant-service')!.settings).toBeUndefined();
    expect(carried(absent, AGENTS)).toBeUndefined();
    expect(carried(absent, SUMMARY)).toBeUndefined();
  });

  it('a regional upstream’s list goes with each of its rules, whichever region serves them', () => {
    const policy = parsePolicy(
      policyText(`upstreams:\n  reports:\n    settings: [timezone]\n    regions:\n      eu: { url: http://reports.eu:1 }\n      us: { url: http://reports.us:1 }\n`),
      { model, regions: ['eu', 'us'], settingKeys },
    );
    const m = policy.match('GET', SUMMARY);
    if (m.kind !== 'matched') throw new Error(m.kind);
    expect(decisionRequest(m.rule, m.params)).toMatchObject({ upstream: 'reports', regions: ['eu', 'us'], assertionSettings: ['timezone'] });
  });

  it('a key the settings registry does not know is refused at its position; so are a malformed key and a repeated one', () => {
    expect(issuesOf(policyText(`upstreams:\n  reports:\n    url: http://reports:1\n    settings:\n      - timezone\n      - quota.agent\n`))).toEqual([
      `7:9 upstreams.reports.settings[1]: "quota.agent" is not a setting of the settings registry (${settingKeys.join(', ')})`,
    ]);
    expect(issuesOf(policyText(`upstreams:\n  tenant-service:\n    settings: [Timezone, timezone, timezone]\n  reports:\n    url: http://reports:1\n`))).toEqual([
      '4:16 upstreams.tenant-service.settings[0]: "Timezone" is not a setting key (dotted lower_snake_case, e.g. quota.agents)',
      '4:36 upstreams.tenant-service.settings[2]: "timezone" is listed twice',
    ]);
    expect(issuesOf(policyText(`upstreams:\n  reports:\n    url: http://reports:1\n    settings: timezone\n`))).toEqual([
      '5:15 upstreams.reports.settings: Invalid input: expected array, received string',
    ]);
    // Without the registry's keys, any well-formed key is accepted.
    expect(parsePolicy(policyText(`upstreams:\n  reports:\n    url: http://reports:1\n    settings: [quota.agent]\n`), { model }).upstreams.get('reports')!.settings).toEqual(['quota.agent']);
  });

  it('the shipped policy lists what the tenant service and the reports service read', () => {
    const policy = parsePolicy(readFileSync('policy/routes.yaml', 'utf8'), { model, settingKeys });
    expect(policy.upstreams.get('tenant-service')!.settings).toEqual(['quota.agents', 'recording.retention_days', 'timezone']);
    expect(policy.upstreams.get('reports')!.settings).toEqual(['timezone']);
  });
});

function signed(values: Record<string, unknown>, sources: Record<string, string>): SignedSettings {
  const claim = { node: 'tenant:t1', values, sources };
  return { claim, digest: createHash('sha256').update(JSON.stringify(claim)).digest('base64url').slice(0, 22) };
}

describe('the settings claim an upstream receives', () => {
  const full = signed(
    { 'quota.agents': 5, timezone: 'Europe/Berlin', 'security.ip_allowlist': ['10.0.0.0/8'], 'security.require_mfa': true },
    { 'quota.agents': 'tenant:t1', timezone: 'organization:acme', 'security.ip_allowlist': 'default', 'security.require_mfa': 'division:emea' },
  );

  it('holds exactly the listed keys, values and sources, the node, and a digest of its own', () => {
    const cut = upstreamSettings(full, ['timezone', 'quota.agents'])!;
    expect(cut.claim).toEqual({
      node: 'tenant:t1',
      values: { timezone: 'Europe/Berlin', 'quota.agents': 5 },
      sources: { timezone: 'organization:acme', 'quota.agents': 'tenant:t1' },
    });
    expect(cut.digest).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(cut.digest).not.toBe(full.digest);
    expect(upstreamSettings(full, ['timezone'])!.digest).not.toBe(cut.digest);
    // The full claim is left as it was: edge policies and rate limits read it.
    expect(Object.keys(full.claim.values)).toHaveLength(4);
  });

  it('absent keys: the full claim itself; []: no claim', () => {
    expect(upstreamSettings(full, undefined)).toBe(full);
    expect(upstreamSettings(full, [])).toBeUndefined();
  });

  it('the same full claim and list give the same object; a new full claim (a changed setting) a new cut', () => {
    const keys = ['quota.agents'];
    const first = upstreamSettings(full, keys);
    expect(upstreamSettings(full, keys)).toBe(first);
    const changed = signed({ ...full.claim.values, 'quota.agents': 6 }, full.claim.sources);
    const next = upstreamSettings(changed, keys)!;
    expect(next).not.toBe(first);
    expect(next.claim.values).toEqual({ 'quota.agents': 6 });
    expect(next.digest).not.toBe(first!.digest);
  });

  it('a listed key the node’s claim lacks is left out, not sent empty', () => {
    expect(upstreamSettings(full, ['timezone', 'locale'])!.claim.values).toEqual({ timezone: 'Europe/Berlin' });
  });
});
