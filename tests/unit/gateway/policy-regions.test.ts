// Regional upstreams in the route policy: `regions: { eu: { url }, us: { url } }` instead
// of one `url`. What the file refuses (with the line), what a matched request carries,
// how UPSTREAM_URLS overrides a region's target, and the residency stage's choice.
import { Hono } from 'hono';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config.js';
import { loadModel, type LoadedModel } from '../../../src/fga/model.js';
import { decisionRequest, parsePolicy, PolicyError, type CompiledPolicy } from '../../../src/gateway/policy.js';
import { residency, type ResidencyOutcome } from '../../../src/gateway/residency.js';
import type { SignedSettings } from '../../../src/gateway/assertion-signer.js';
import type { GatewayEnv } from '../../../src/gateway/types.js';
import { resolveUpstreams } from '../../../src/server/upstreams.js';
import { Problem } from '../../../src/shared/problem.js';
import { useCleanup } from '../../support/cleanup.js';

useCleanup();

const REGIONS = ['eu', 'us', 'apac'];
let model: LoadedModel;

beforeAll(() => {
  model = loadModel();
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

const REGIONAL = `upstreams:
  reports:
    timeoutMs: 900
    regions:
      eu: { url: http://reports.eu.internal:8080 }
      us:
        url: https://reports.us.internal
`;

function parse(text: string, regions: readonly string[] | undefined = REGIONS): CompiledPolicy {
  return parsePolicy(text, { model, source: 'routes.yaml', ...(regions ? { regions } : {}) });
}

function issuesOf(text: string, regions?: readonly string[]): string[] {
  try {
    parse(text, regions);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as PolicyError).issues.map(({ line, col, at, message }) => `${line}:${col} ${at}: ${message}`);
  }
  throw new Error('the policy was accepted');
}

describe('regions in the route policy', () => {
  it('an upstream with regions: each region a default URL, no url of its own; its rules carry the regions, the others none', () => {
    const policy = parse(policyText(REGIONAL));
    const reports = policy.upstreams.get('reports')!;
    expect(reports.url).toBeUndefined();
    expect([...reports.regions!]).toEqual([
      ['eu', 'http://reports.eu.internal:8080'],
      ['us', 'https://reports.us.internal'],
    ]);
    expect(policy.upstreams.get('tenant-service')!.regions).toBeUndefined();
    const summary = policy.match('GET', ['api', 'v1', 'tenants', 't1', 'reports', 'summary']);
    expect(summary.kind).toBe('matched');
    if (summary.kind !== 'matched') return;
    expect(decisionRequest(summary.rule, summary.params)).toMatchObject({ upstream: 'reports', regions: ['eu', 'us'] });
    const agents = policy.match('GET', ['api', 'v1', 'tenants', 't1', 'agents']);
    if (agents.kind !== 'matched') throw new Error(agents.kind);
    expect(decisionRequest(agents.rule, agents.params).regions).toBeUndefined();
  });

  it('regions and url together are refused: there is no fallback target', () => {
    expect(issuesOf(policyText(`upstreams:\n  reports:\n    url: http://reports:1\n    regions:\n      eu: { url: http://reports.eu:1 }\n`))).toEqual([
      '4:10 upstreams.reports.url: an upstream with regions has no url of its own: a request is sent only to the target of its region, never to another (remove url)',
    ]);
  });

  it('a region that is not a value of data.residency_region, or malformed, is refused at its name', () => {
    expect(issuesOf(policyText(`upstreams:\n  reports:\n    regions:\n      eu: { url: http://reports.eu:1 }\n      mars: { url: http://reports.mars:1 }\n      US: { url: http://reports.us:1 }\n`))).toEqual([
      '6:7 upstreams.reports.regions.mars: region "mars" is not a value of data.residency_region (eu, us, apac)',
      '7:7 upstreams.reports.regions.US: region "US" must be lower-case letters, digits and "-", starting with a letter (at most 32)',
    ]);
    // Without the registry's values, any well-formed name is a region.
    expect(parsePolicy(policyText(`upstreams:\n  reports:\n    regions:\n      mars: { url: http://reports.mars:1 }\n`), { model }).upstreams.get('reports')!.regions!.has('mars')).toBe(true);
  });

  it("a region's url must be an origin; a region without url, an unknown field and an empty regions map are refused", () => {
    expect(issuesOf(policyText(`upstreams:\n  reports:\n    regions:\n      eu: { url: http://reports.eu:1/v1 }\n`))).toEqual([
      '5:18 upstreams.reports.regions.eu.url: "http://reports.eu:1/v1" must be an origin only (scheme, host, port): no path, query or fragment (use stripPrefix to change the path)',
    ]);
    expect(issuesOf(policyText(`upstreams:\n  reports:\n    regions:\n      eu: { timeoutMs: 5 }\n`))).toEqual([
      '5:11 upstreams.reports.regions.eu.url: Invalid input: expected string, received undefined',
      '5:13 upstreams.reports.regions.eu.timeoutMs: unknown field "timeoutMs"',
    ]);
    expect(issuesOf(policyText(`upstreams:\n  reports:\n    regions: {}\n`))).toEqual([
      '4:14 upstreams.reports.regions: declares no region: list at least one (region: { url }), or use url instead',
    ]);
  });

  it('the built-in tenant-service cannot declare regions', () => {
    expect(issuesOf(policyText(`upstreams:\n  tenant-service:\n    regions:\n      eu: { url: http://ts.eu:1 }\n  reports:\n    url: http://reports:1\n`))).toEqual([
      '5:7 upstreams.tenant-service.regions: the built-in tenant-service upstream cannot declare regions: declare a named upstream with regions and send the rules there',
    ]);
  });
});

describe('deploy-time URLs of regional targets', () => {
  const base = { OPENFGA_API_URL: 'http://127.0.0.1:1' };
  const wired = { 'tenant-service': 'http://127.0.0.1:8090', reports: 'http://127.0.0.1:8091' };

  it('each region is a target `<name>@<region>`; `name@region=url` overrides one; the process wiring never stands for one', () => {
    const policy = parse(policyText(REGIONAL));
    const config = loadConfig({ ...base, UPSTREAM_URLS: 'reports@us=http://10.0.0.9:80' });
    expect(config.UPSTREAM_URLS).toEqual({ 'reports@us': 'http://10.0.0.9:80' });
    const targets = resolveUpstreams(policy, config, wired);
    expect(targets.map((t) => [t.name, t.url, t.timeoutMs])).toEqual([
      ['reports@eu', 'http://reports.eu.internal:8080', 900],
      ['reports@us', 'http://10.0.0.9:80', 900],
      ['tenant-service', 'http://127.0.0.1:8090', 10000],
    ]);
  });

  it('an override of the plain name, or of a region the file does not declare, stops the start listing the targets', () => {
    const policy = parse(policyText(REGIONAL));
    for (const value of ['reports=http://a:1', 'reports@apac=http://a:1']) {
      expect(() => resolveUpstreams(policy, loadConfig({ ...base, UPSTREAM_URLS: value }), wired)).toThrow(
        `not an upstream of routes.yaml (its upstreams: reports@eu, reports@us, tenant-service)`,
      );
    }
  });

  it.each([
    ['reports@=http://a:1', 'UPSTREAM_URLS: reports@: region "" must be lower-case'],
    ['reports@EU=http://a:1', 'UPSTREAM_URLS: reports@EU: region "EU" must be lower-case'],
    ['reports@eu=http://a:1,reports@eu=http://b:1', 'UPSTREAM_URLS: reports@eu is named twice'],
  ])('UPSTREAM_URLS=%s stops the start', (value, message) => {
    expect(() => loadConfig({ ...base, UPSTREAM_URLS: value })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, UPSTREAM_URLS: value })).toThrow(message);
  });
});

describe('the residency stage', () => {
  /** An app running only the stage, after a fake policy stage, answering the region it chose. */
  function app(regions: readonly string[] | undefined, region: string | Error, outcomes: ResidencyOutcome[]) {
    let resolved = 0;
    const settings = (): Promise<SignedSettings> => {
      resolved++;
      if (region instanceof Error) return Promise.reject(region);
      return Promise.resolve({ claim: { node: 'tenant:t1', values: { 'data.residency_region': region }, sources: {} }, digest: 'd' } as unknown as SignedSettings);
    };
    const a = new Hono<GatewayEnv>();
    a.use('*', async (c, next) => {
      c.set('policy', { ruleId: 'r', route: '/x', permission: 'p', object: 'tenant:t1', contextualTuples: [], params: {}, scope: { type: 'tenant', id: 't1' }, consistency: 'cached', upstream: 'reports', regions });
      await next();
    });
    a.use('*', residency({ settings, onOutcome: (o) => outcomes.push(o) }));
    a.get('*', (c) => c.json({ region: c.get('region') ?? null }));
    a.onError((err) => (err instanceof Problem ? err.response({}) : new Response(String(err), { status: 500 })));
    return { a, resolved: () => resolved };
  }

  it('an upstream without regions: passes, without resolving the settings and without counting', async () => {
    const outcomes: ResidencyOutcome[] = [];
    const { a, resolved } = app(undefined, 'us', outcomes);
    expect(await (await a.request('/x')).json()).toEqual({ region: null });
    expect(resolved()).toBe(0);
    expect(outcomes).toEqual([]);
  });

  it("a regional upstream: the scope node's region when the upstream has a target there", async () => {
    const outcomes: ResidencyOutcome[] = [];
    const { a } = app(['eu', 'us'], 'us', outcomes);
    expect(await (await a.request('/x')).json()).toEqual({ region: 'us' });
    expect(outcomes).toEqual(['passed']);
  });

  it('no target in the region: 503 no-upstream-in-region, naming the upstream and the region', async () => {
    const outcomes: ResidencyOutcome[] = [];
    const res = await app(['eu', 'us'], 'apac', outcomes).a.request('/x');
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      type: 'https://tiergate.dev/problems/no-upstream-in-region',
      upstream: 'reports',
      region: 'apac',
      detail: 'The upstream "reports" has no target in region "apac" (the data.residency_region of tenant:t1); the request was not sent to another region.',
    });
    expect(outcomes).toEqual(['refused']);
  });

  it('settings that cannot be read: 503 authorization-unavailable with Retry-After (fail closed)', async () => {
    const outcomes: ResidencyOutcome[] = [];
    const res = await app(['eu'], new Error('db down'), outcomes).a.request('/x');
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(((await res.json()) as { type: string }).type).toBe('https://tiergate.dev/problems/authorization-unavailable');
    expect(outcomes).toEqual(['unavailable']);
  });
});
