// Several upstream services, chosen per rule by the route policy. Two real gateways:
//   A: the shipped policy, the real tenant service as `tenant-service`, and a second,
//      reports-only tenant service (its own listener, the same database) as `reports`,
//      set through UPSTREAM_URLS: the shape `npm start` runs;
//   B: the shipped policy with `reports` given a short timeoutMs and stripPrefix /api/v1,
//      pointing at a recording upstream that can hang.
// Taking one upstream down answers 502 for its rules only; the gateway stays ready and
// says which upstream is down; the metrics count per upstream.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalJWKSet } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../../src/db/index.js';
import { ASSERTION_HEADER } from '../../src/shared/assertion.js';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import { startTenantService, type RunningTenantService } from '../../src/tenant-service/server.js';
import { owned, tempDir, useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { seedTenantT1, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

const ROOT = join(import.meta.dirname, '../..');
const AGENTS = '/api/v1/tenants/t1/agents';
const SUMMARY = '/api/v1/tenants/t1/reports/summary';

interface Check {
  name: string;
  ok: boolean;
  optional: boolean;
  detail?: string;
}

/** The value of one sample line of the Prometheus text, e.g. `tiergate_upstream_errors_total{upstream="reports",reason="timeout"}`. */
async function sample(stack: TestStack, series: string): Promise<number> {
  const text = await stack.gateway.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no sample ${series}`);
  return Number(line.slice(series.length + 1));
}

function claimsOf(assertion: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(assertion.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('two upstreams: the tenant service and a reports service', () => {
  let s: TestStack;
  let reports: RunningTenantService;
  let tom: string;

  beforeAll(async () => {
    const db = await openDb({});
    owned(() => db.close());
    let verify: ReturnType<typeof createLocalJWKSet> | undefined;
    reports = await startTenantService({
      audience: 'tenant-service',
      only: 'reports',
      db,
      verifyKey: (header, token) => {
        verify ??= createLocalJWKSet(s.gateway.assertionJwks);
        return verify(header, token);
      },
    });
    owned(() => reports.close());
    s = await startTestStack({ platformAdmins: ['pat'], db, env: { UPSTREAM_URLS: `reports=${reports.url}` } });
    tom = await seedTenantT1(s);
  });

  it('each rule goes to its own upstream: agents to the tenant service, reports to the reports service', async () => {
    const created = await call(s.gatewayUrl, 'POST', AGENTS, { auth: tom, body: { agentNo: '2001', name: 'Ann' } });
    expect(created.status, created.text).toBe(201);
    const summary = await call(s.gatewayUrl, 'GET', SUMMARY, { auth: tom });
    expect(summary.status, summary.text).toBe(200);
    expect(summary.body).toMatchObject({ tenantId: 't1' });
    const agents = await call(s.gatewayUrl, 'GET', AGENTS, { auth: tom });
    expect(agents.status, agents.text).toBe(200);
  });

  it('/readyz probes each upstream; /metrics counts each', async () => {
    const ready = await call(s.gatewayUrl, 'GET', '/readyz');
    expect(ready.status, ready.text).toBe(200);
    const checks = ready.body.checks as Check[];
    expect(checks.find((c) => c.name === 'upstream:tenant-service')).toEqual({ name: 'upstream:tenant-service', ok: true, optional: true, detail: '/healthz answered 200' });
    expect(checks.find((c) => c.name === 'upstream:reports')).toEqual({ name: 'upstream:reports', ok: true, optional: true, detail: '/healthz answered 200' });
    expect(await sample(s, 'tiergate_upstream_requests_total{upstream="reports",class="2xx"}')).toBeGreaterThanOrEqual(1);
    expect(await sample(s, 'tiergate_upstream_requests_total{upstream="tenant-service",class="2xx"}')).toBeGreaterThanOrEqual(2);
    expect(await sample(s, 'tiergate_upstream_duration_seconds_count{upstream="reports",status="200"}')).toBeGreaterThanOrEqual(1);
    expect(await sample(s, 'tiergate_upstream_errors_total{upstream="reports",reason="unreachable"}')).toBe(0);
  });

  it('with the reports service down: its rules answer 502 naming it (not its URL), the other rules keep working, the gateway stays ready', async () => {
    await reports.close();
    const down = await call(s.gatewayUrl, 'GET', SUMMARY, { auth: tom });
    expect(down.status).toBe(502);
    expect(down.contentType).toBe(PROBLEM_CONTENT_TYPE);
    expect(down.body).toMatchObject({ status: 502, upstream: 'reports', detail: 'The upstream "reports" could not be reached.' });
    expect(down.body.type).toMatch(/upstream-unavailable$/);
    expect(down.text).not.toContain(new URL(reports.url).port);
    const division = await call(s.gatewayUrl, 'GET', '/api/v1/divisions/d1/reports/summary', { auth: await s.authHeader('olivia') });
    expect(division.status, division.text).toBe(502);

    const agents = await call(s.gatewayUrl, 'GET', AGENTS, { auth: tom });
    expect(agents.status, agents.text).toBe(200);
    expect(agents.text).toContain('2001');

    const ready = await call(s.gatewayUrl, 'GET', '/readyz');
    expect(ready.status, 'an upstream down does not take the gateway out of the load balancer').toBe(200);
    const checks = ready.body.checks as Check[];
    const reportsCheck = checks.find((c) => c.name === 'upstream:reports')!;
    expect(reportsCheck).toMatchObject({ ok: false, optional: true });
    expect(reportsCheck.detail).toMatch(/^\/healthz: unreachable/);
    expect(reportsCheck.detail).not.toContain(new URL(reports.url).port);
    expect(checks.find((c) => c.name === 'upstream:tenant-service')).toMatchObject({ ok: true });
    expect(await sample(s, 'tiergate_upstream_errors_total{upstream="reports",reason="unreachable"}')).toBe(2);
    expect(await sample(s, 'tiergate_upstream_errors_total{upstream="tenant-service",reason="unreachable"}')).toBe(0);
  });
});

describe('an upstream with its own timeout and a stripPrefix', () => {
  let s: TestStack;
  let upstream: RecordingUpstream;
  let tom: string;

  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    const policyFile = join(tempDir(), 'routes.yaml');
    const shipped = readFileSync(join(ROOT, 'policy/routes.yaml'), 'utf8');
    const changed = shipped.replace('    timeoutMs: 30000\n', '    timeoutMs: 400\n    stripPrefix: /api/v1\n');
    expect(changed).not.toBe(shipped);
    writeFileSync(policyFile, changed);
    s = await startTestStack({ platformAdmins: ['pat'], env: { POLICY_FILE: policyFile, UPSTREAM_URLS: `reports=${upstream.url}` } });
    tom = await seedTenantT1(s);
  });

  it('forwards the canonical path less the prefix, and the assertion names that very path', async () => {
    upstream.clear();
    const res = await call(s.gatewayUrl, 'GET', `${SUMMARY}?period=day`, { auth: tom });
    expect(res.status, res.text).toBe(200);
    expect(upstream.received.map((r) => r.url)).toEqual(['/tenants/t1/reports/summary?period=day']);
    const claims = claimsOf(String(upstream.received[0]!.headers[ASSERTION_HEADER]));
    expect(claims).toMatchObject({ htm: 'GET', htu: '/tenants/t1/reports/summary', sub: 'tom' });
    // The tenant service's rules keep their whole path.
    expect((await call(s.gatewayUrl, 'GET', AGENTS, { auth: tom })).status).toBe(200);
  });

  it('an upstream that does not answer within its timeoutMs: 504 naming it', async () => {
    upstream.mode = 'hang';
    try {
      const res = await call(s.gatewayUrl, 'GET', SUMMARY, { auth: tom });
      expect(res.status).toBe(504);
      expect(res.contentType).toBe(PROBLEM_CONTENT_TYPE);
      expect(res.body).toMatchObject({ status: 504, upstream: 'reports', detail: 'The upstream "reports" did not answer within 400 ms.' });
      expect(res.body.type).toMatch(/upstream-timeout$/);
      expect(res.text).not.toContain(String(upstream.port));
    } finally {
      upstream.mode = 'ok';
    }
    expect(await sample(s, 'tiergate_upstream_errors_total{upstream="reports",reason="timeout"}')).toBe(1);
    expect(await sample(s, 'tiergate_upstream_duration_seconds_count{upstream="reports",status="timeout"}')).toBe(1);
    // The tenant service is unaffected.
    expect((await call(s.gatewayUrl, 'GET', AGENTS, { auth: tom })).status).toBe(200);
  });
});
