// Data residency: the shipped policy with its `reports` upstream made regional, two real
// recording upstreams standing for the eu and the us reports services (eu's URL set at
// deploy time through UPSTREAM_URLS `reports@eu=`), a real gateway, OpenFGA, tenant
// service and admin API. Each division sets data.residency_region; each report request
// reaches only the target of its scope node's region, a region without a target is
// refused before either server sees anything, a change made through the admin API
// reroutes the very next request, and forward-auth refuses and routes the same way.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ASSERTION_HEADER } from '../../src/shared/assertion.js';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import { tempDir, useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { sendRaw, type RawResponse } from '../support/raw-http.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { adminOk, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

const ROOT = join(import.meta.dirname, '../..');
const PROXY = '127.0.0.2';
const NO_REGION = 'https://tiergate.dev/problems/no-upstream-in-region';
const summary = (scope: string) => `/api/v1/${scope}/reports/summary`;

let s: TestStack;
let eu: RecordingUpstream;
let us: RecordingUpstream;
let olivia: string;

/** The paths each regional server received since the last clear, and clears them. */
function seen(): { eu: string[]; us: string[] } {
  const out = { eu: eu.received.map((r) => r.url), us: us.received.map((r) => r.url) };
  eu.clear();
  us.clear();
  return out;
}

function claimsOf(assertion: unknown): { settings?: { values: Record<string, unknown> } } {
  return JSON.parse(Buffer.from(String(assertion).split('.')[1]!, 'base64url').toString('utf8')) as { settings?: { values: Record<string, unknown> } };
}

async function get(path: string) {
  return call(s.gatewayUrl, 'GET', path, { auth: olivia });
}

/** nginx forward-auth: the original request in X-Original-Method / X-Original-URI, from the trusted proxy. */
async function askNginx(uri: string): Promise<RawResponse> {
  return sendRaw(s.gatewayPort, 'GET /forward-auth/nginx', ['X-Original-Method: GET', `X-Original-URI: ${uri}`, `Authorization: ${olivia}`], { localAddress: PROXY });
}

async function sample(series: string): Promise<number> {
  const text = await s.gateway.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

beforeAll(async () => {
  [eu, us] = await Promise.all([startRecordingUpstream(), startRecordingUpstream()]);
  const shipped = readFileSync(join(ROOT, 'policy/routes.yaml'), 'utf8');
  // eu's file URL is a placeholder that the deploy-time UPSTREAM_URLS replaces.
  // Each regional reports server also reads the region its assertions are for.
  const regional = shipped
    .replace('    url: http://127.0.0.1:8091\n', `    regions:\n      eu: { url: http://127.0.0.1:9 }\n      us: { url: ${us.url} }\n`)
    .replace('    settings: [timezone]\n', '    settings: [timezone, data.residency_region]\n');
  expect(regional).toContain('settings: [timezone, data.residency_region]');
  expect(regional).toContain(`us: { url: ${us.url} }`);
  const policyFile = join(tempDir(), 'routes.yaml');
  writeFileSync(policyFile, regional);
  s = await startTestStack({ platformAdmins: ['pat'], env: { POLICY_FILE: policyFile, UPSTREAM_URLS: `reports@eu=${eu.url}`, TRUSTED_PROXIES: `${PROXY}/32` } });
  const ok = (sub: string, method: string, path: string, body?: unknown) => adminOk(s, sub, method, path, body);
  await ok('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  for (const region of ['eu', 'us', 'apac']) {
    await ok('olivia', 'POST', '/organizations/acme/divisions', { id: `d-${region}`, name: region });
    await ok('olivia', 'POST', `/divisions/d-${region}/tenants`, { id: `t-${region}`, name: region });
  }
  // d-eu inherits the default (eu); the others set their own.
  await ok('olivia', 'PUT', '/divisions/d-us/settings/document/data.residency_region', { set: 'us' });
  await ok('olivia', 'PUT', '/divisions/d-apac/settings/document/data.residency_region', { set: 'apac' });
  olivia = await s.authHeader('olivia');
  seen();
});

describe('a regional upstream serves each tenant from its own region only', () => {
  it('a tenant in eu reaches only the eu server, a tenant in us only the us server; the assertion names the region', async () => {
    const a = await get(summary('tenants/t-eu'));
    expect(a.status, a.text).toBe(200);
    expect(seen()).toEqual({ eu: [summary('tenants/t-eu')], us: [] });

    const b = await get(`${summary('tenants/t-us')}?period=day`);
    expect(b.status, b.text).toBe(200);
    const received = us.received[0]!;
    expect(seen()).toEqual({ eu: [], us: [`${summary('tenants/t-us')}?period=day`] });
    expect(claimsOf(received.headers[ASSERTION_HEADER]).settings?.values['data.residency_region']).toBe('us');
  });

  it('a tenant whose region has no target: 503 no-upstream-in-region, and neither server sees the request', async () => {
    const res = await get(summary('tenants/t-apac'));
    expect(res.status, res.text).toBe(503);
    expect(res.contentType).toBe(PROBLEM_CONTENT_TYPE);
    expect(res.body).toMatchObject({ type: NO_REGION, status: 503, upstream: 'reports', region: 'apac' });
    expect(res.text).not.toContain(String(us.port));
    expect(seen()).toEqual({ eu: [], us: [] });
    // Its other rules go to the tenant service, which declares no regions: served as before.
    expect((await get('/api/v1/tenants/t-apac/agents')).status).toBe(200);
  });

  it('a refusal comes after authorization: a caller without the permission learns nothing of the region', async () => {
    const res = await call(s.gatewayUrl, 'GET', summary('tenants/t-apac'), { auth: await s.authHeader('mallory') });
    expect(res.status).toBe(403);
    expect(seen()).toEqual({ eu: [], us: [] });
  });

  it("a division or organization scope is served from that node's own region", async () => {
    expect((await get(summary('divisions/d-us'))).status).toBe(200);
    expect(seen()).toEqual({ eu: [], us: [summary('divisions/d-us')] });
    expect((await get(summary('organizations/acme'))).status).toBe(200);
    expect(seen()).toEqual({ eu: [summary('organizations/acme')], us: [] });
    expect((await get(summary('divisions/d-apac'))).body).toMatchObject({ type: NO_REGION, region: 'apac' });
    expect(seen()).toEqual({ eu: [], us: [] });
  });

  it('forward-auth refuses the same way, and names the one target the ingress may use', async () => {
    const refused = await askNginx(summary('tenants/t-apac'));
    expect(refused.status, refused.body).toBe(503);
    expect(refused.json).toMatchObject({ type: NO_REGION, upstream: 'reports', region: 'apac' });
    expect(refused.headers['x-tiergate-upstream']).toBeUndefined();

    const allowed = await askNginx(summary('tenants/t-us'));
    expect(allowed.status, allowed.body).toBe(200);
    expect(allowed.headers['x-tiergate-upstream']).toBe('reports@us');
    expect(allowed.headers['x-tiergate-region']).toBe('us');
    expect(claimsOf(allowed.headers[ASSERTION_HEADER]).settings?.values['data.residency_region']).toBe('us');

    // A rule whose upstream declares no regions: no residency headers.
    const plain = await askNginx('/api/v1/tenants/t-us/agents');
    expect(plain.status, plain.body).toBe(200);
    expect(plain.headers['x-tiergate-upstream']).toBeUndefined();
    expect(plain.headers['x-tiergate-region']).toBeUndefined();
    expect(seen()).toEqual({ eu: [], us: [] });
  });

  it('each regional target has its own /readyz check and metrics labels; refusals are counted', async () => {
    const ready = await call(s.gatewayUrl, 'GET', '/readyz');
    const checks = (ready.body.checks as Array<{ name: string; ok: boolean }>).filter((c) => c.name.startsWith('upstream:reports'));
    expect(checks.map((c) => [c.name, c.ok]).sort()).toEqual([
      ['upstream:reports@eu', true],
      ['upstream:reports@us', true],
    ]);
    seen();
    expect(await sample('tiergate_upstream_requests_total{upstream="reports@us",class="2xx"}')).toBe(2);
    expect(await sample('tiergate_upstream_requests_total{upstream="reports@eu",class="2xx"}')).toBe(2);
    expect(await sample('tiergate_edge_policy_total{policy="residency",outcome="refused"}')).toBe(3);
    expect(await sample('tiergate_edge_policy_total{policy="residency",outcome="passed"}')).toBe(5);
  });
});

describe('a region changed through the admin API', () => {
  it('reroutes the next request; an organization lock overrides the divisions, and lifting it restores them', async () => {
    expect((await get(summary('tenants/t-eu'))).status).toBe(200);
    expect(seen()).toEqual({ eu: [summary('tenants/t-eu')], us: [] });

    await adminOk(s, 'olivia', 'PUT', '/divisions/d-eu/settings/document/data.residency_region', { set: 'us' });
    expect((await get(summary('tenants/t-eu'))).status).toBe(200);
    expect(seen()).toEqual({ eu: [], us: [summary('tenants/t-eu')] });

    // The organization locks eu: every division's own value is void below it, at once.
    await adminOk(s, 'olivia', 'PUT', '/organizations/acme/settings/document/data.residency_region', { set: 'eu', lock: true });
    for (const t of ['t-eu', 't-us', 't-apac']) expect((await get(summary(`tenants/${t}`))).status, t).toBe(200);
    expect(seen()).toEqual({ eu: ['t-eu', 't-us', 't-apac'].map((t) => summary(`tenants/${t}`)), us: [] });

    await adminOk(s, 'olivia', 'DELETE', '/organizations/acme/settings/document/data.residency_region');
    expect((await get(summary('tenants/t-apac'))).status).toBe(503);
    expect((await get(summary('tenants/t-us'))).status).toBe(200);
    expect(seen()).toEqual({ eu: [], us: [summary('tenants/t-us')] });
  });
});
