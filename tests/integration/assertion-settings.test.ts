// Each upstream receives only the settings its `settings` list in the route policy names,
// over a real gateway stack: proxy mode to a recording upstream and forward-auth answers.
// The tenant service lists two keys, reports lists none (no claim), billing declares no
// list (every key, as without the option).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { loadRegistry } from '../../src/settings/registry.js';
import { ASSERTION_HEADER } from '../../src/shared/assertion.js';
import { tempDir, useCleanup } from '../support/cleanup.js';
import { sendRaw } from '../support/raw-http.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { adminOk, seedTenantT1, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

const PROXY = '127.0.0.2';
const AGENTS = '/api/v1/tenants/t1/agents';
const SUMMARY = '/api/v1/tenants/t1/reports/summary';
const QUEUES = '/api/v1/tenants/t1/queues';

let s: TestStack;
let upstream: RecordingUpstream;
let tom: string;

function policy(billingUrl: string): string {
  return `version: 1
upstreams:
  tenant-service:
    settings: [quota.agents, timezone]
  reports:
    url: http://127.0.0.1:9
    settings: []
  billing:
    url: ${billingUrl}
rules:
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
  - id: queues.list
    methods: [GET]
    path: /api/v1/tenants/{tenantId}/queues
    permission: can_read_operational
    object: tenant:{tenantId}
    scope: tenant:{tenantId}
    upstream: billing
`;
}

interface SettingsClaim {
  node: string;
  values: Record<string, unknown>;
  sources: Record<string, string>;
}

const settingsOf = (assertion: unknown) => decodeJwt(String(assertion)).settings as SettingsClaim | undefined;

/** The assertion the recording upstream received for a proxied GET of `path`. */
async function proxied(path: string): Promise<unknown> {
  upstream.clear();
  const res = await sendRaw(s.gatewayPort, `GET ${path}`, [tom]);
  expect(res.status, res.body).toBe(200);
  expect(upstream.received).toHaveLength(1);
  return upstream.received[0]!.headers[ASSERTION_HEADER];
}

/** The assertion a traefik forward-auth answer carries for GET `path`. */
async function decided(path: string): Promise<string> {
  const res = await sendRaw(s.gatewayPort, 'GET /forward-auth/traefik', ['X-Forwarded-Method: GET', `X-Forwarded-Uri: ${path}`, tom], { localAddress: PROXY });
  expect(res.status, res.body).toBe(200);
  return res.headers[ASSERTION_HEADER]!;
}

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  const policyFile = join(tempDir(), 'routes.yaml');
  writeFileSync(policyFile, policy(upstream.url));
  s = await startTestStack({ platformAdmins: ['pat'], upstreamUrl: upstream.url, env: { POLICY_FILE: policyFile, TRUSTED_PROXIES: `${PROXY}/32` } });
  tom = `Authorization: ${await seedTenantT1(s)}`;
  await adminOk(s, 'olivia', 'PUT', '/organizations/acme/settings/document/timezone', { set: 'Europe/Berlin' });
  await adminOk(s, 'olivia', 'PUT', '/divisions/d1/settings/document/quota.agents', { set: 40 });
  await adminOk(s, 'olivia', 'PUT', '/organizations/acme/settings/document/locale', { set: 'de-DE' });
});

describe('the settings claim each upstream receives', () => {
  it('an upstream listing two keys: exactly those two, with their values and sources', async () => {
    expect(settingsOf(await proxied(AGENTS))).toEqual({
      node: 'tenant:t1',
      values: { 'quota.agents': 40, timezone: 'Europe/Berlin' },
      sources: { 'quota.agents': 'division:d1', timezone: 'organization:acme' },
    });
  });

  it('an upstream listing []: no settings claim, the rest of the assertion as always', async () => {
    const claims = decodeJwt(String(await proxied(SUMMARY)));
    expect(claims).not.toHaveProperty('settings');
    expect(claims).toMatchObject({ sub: 'tom', scope: { type: 'tenant', id: 't1' }, tenants: ['t1'], htm: 'GET', htu: SUMMARY });
  });

  it('an upstream without the option: every key of the registry, security settings and keys no one lists too', async () => {
    const claim = settingsOf(await proxied(QUEUES))!;
    const keys = [...loadRegistry('policy/settings.yaml').keys.keys()].sort();
    expect(Object.keys(claim.values).sort()).toEqual(keys);
    expect(Object.keys(claim.sources).sort()).toEqual(keys);
    expect(claim.values.locale).toBe('de-DE');
    expect(claim.sources.locale).toBe('organization:acme');
    expect(claim.values.timezone).toBe('Europe/Berlin');
  });

  it("forward-auth: a rule's assertion carries only its upstream's list, as proxy mode does", async () => {
    expect(Object.keys(settingsOf(await decided(AGENTS))!.values).sort()).toEqual(['quota.agents', 'timezone']);
    expect(decodeJwt(await decided(SUMMARY))).not.toHaveProperty('settings');
    expect(Object.keys(settingsOf(await decided(QUEUES))!.values)).toContain('security.ip_allowlist');
  });

  it('a warm request arms no timer: the claim, the assertion and the decision come from the caches', async () => {
    await proxied(AGENTS);
    // Who armed each timer; the test client's own time limit (sendRaw) is not the gateway's.
    const armedBy: string[] = [];
    const setTimeoutAsIs = globalThis.setTimeout;
    const timers = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((callback: () => void, ms?: number) => {
      const stack = new Error().stack ?? '';
      if (!stack.includes('tests/support/raw-http')) armedBy.push(stack);
      return setTimeoutAsIs(callback, ms);
    }) as typeof setTimeout);
    try {
      for (let i = 0; i < 20; i++) await proxied(AGENTS);
    } finally {
      timers.mockRestore();
    }
    expect(armedBy).toEqual([]);
  });

  it('a changed setting reaches the upstream that lists it in a newly signed assertion', async () => {
    const before = String(await proxied(AGENTS));
    await adminOk(s, 'olivia', 'PUT', '/divisions/d1/settings/document/timezone', { set: 'Europe/Paris' });
    const after = String(await proxied(AGENTS));
    expect(after).not.toBe(before);
    expect(settingsOf(after)).toMatchObject({ values: { timezone: 'Europe/Paris' }, sources: { timezone: 'division:d1' } });
  });
});
