// Rate limits across two gateway replicas sharing one Redis, one OpenFGA store, one
// tenant service and one PostgreSQL: a tenant limited to N requests a minute gets 429
// after N requests, whichever replica they went through; a limit written through the
// admin API applies on the next request; a node below cannot raise a limit set above;
// with Redis stopped every request is still answered, each replica counting alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrape } from '../../load/lib/prom.js';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../../src/stack/postgres-server.js';
import { startReplicaPair, type Replica, type ReplicaPair } from '../support/cache-replicas.js';
import { useCleanup } from '../support/cleanup.js';
import type { JsonResponse } from '../support/json-call.js';

useCleanup();

let pg: ThrowawayPostgres;
let p: ReplicaPair;
let A: Replica;
let B: Replica;

// acme ─ d1 ─ t-shared, t-capped
//      └ d2 ─ t-outage
beforeAll(async () => {
  pg = await startThrowawayPostgres();
  p = await startReplicaPair({ platformAdmin: 'pat', databaseUrl: pg.url });
  ({ A, B } = p);
  await p.adminOk('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await p.adminOk('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await p.adminOk('olivia', 'POST', '/organizations/acme/divisions', { id: 'd2', name: 'D2' });
  for (const t of ['t-shared', 't-capped']) await p.adminOk('olivia', 'POST', '/divisions/d1/tenants', { id: t, name: t });
  await p.adminOk('olivia', 'POST', '/divisions/d2/tenants', { id: 't-outage', name: 't-outage' });
});

afterAll(async () => {
  await p?.stop();
  pg?.stop();
});

const report = (r: Replica, tenant: string, sub = 'olivia') => p.get(r, sub, `/api/v1/tenants/${tenant}/reports/summary`);
const setLimit = (node: string, n: number) => p.adminOk('olivia', 'PUT', `${node}/settings/document/api.rate_limit_per_minute`, { set: n });

function remaining(res: JsonResponse): number {
  const m = /^"node";r=(\d+);t=(\d+)$/.exec(res.headers.get('ratelimit') ?? '');
  expect(m, `RateLimit: ${res.headers.get('ratelimit')}`).not.toBeNull();
  expect(Number(m![2])).toBeLessThanOrEqual(60);
  return Number(m![1]);
}

function expectRefused(res: JsonResponse, limit: number): void {
  expect(res.status, res.text).toBe(429);
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  const retryAfter = Number(res.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(res.headers.get('ratelimit-policy')).toBe(`"node";q=${limit};w=60`);
  expect(remaining(res)).toBe(0);
  expect(res.body).toMatchObject({ type: 'https://tiergate.dev/problems/rate-limited', status: 429, policy: 'node', limit });
}

async function edgePolicyCount(r: Replica, outcome: string): Promise<number> {
  const m = await scrape(r.metricsUrl);
  for (const [k, v] of m) if (k.startsWith('tiergate_edge_policy_total{') && k.includes('policy=rate_limit') && k.includes(`outcome=${outcome}`)) return v;
  return 0;
}

describe('rate limits across two gateway replicas', () => {
  it('no limit set: requests pass without RateLimit fields', async () => {
    for (const r of [A, B]) {
      const res = await report(r, 't-shared');
      expect(res.status, res.text).toBe(200);
      expect(res.headers.get('ratelimit')).toBeNull();
      expect(res.headers.get('ratelimit-policy')).toBeNull();
    }
  });

  it('a tenant limited to N a minute gets 429 after N requests spread over both replicas; a changed limit applies on the next request', async () => {
    await setLimit('/tenants/t-shared', 6);
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await report(i % 2 === 0 ? A : B, 't-shared');
      expect(res.status, res.text).toBe(200);
      // On the proxied upstream answer too.
      expect(res.headers.get('ratelimit-policy')).toBe('"node";q=6;w=60');
      seen.push(remaining(res));
    }
    // One count shared by both replicas.
    expect(seen).toEqual([5, 4, 3, 2, 1, 0]);
    expectRefused(await report(A, 't-shared'), 6);
    expectRefused(await report(B, 't-shared'), 6);
    // Counted after authorization: a caller without any grant is refused 403, not 429, and
    // spends nothing of the tenant's budget.
    const outsider = await report(B, 't-shared', 'mallory');
    expect(outsider.status, outsider.text).toBe(403);
    expect(outsider.headers.get('ratelimit')).toBeNull();

    // Raised through the admin API: the next request, on either replica, is counted against it.
    await setLimit('/tenants/t-shared', 20);
    const raised = await report(B, 't-shared');
    expect(raised.status, raised.text).toBe(200);
    expect(raised.headers.get('ratelimit-policy')).toBe('"node";q=20;w=60');
    expect(remaining(raised)).toBeLessThan(20 - 6);
    // Lowered: refused at once on both.
    await setLimit('/tenants/t-shared', 2);
    expectRefused(await report(A, 't-shared'), 2);
    expectRefused(await report(B, 't-shared'), 2);
    // Removed: no limit, no fields.
    await p.adminOk('olivia', 'DELETE', '/tenants/t-shared/settings/document/api.rate_limit_per_minute');
    const free = await report(A, 't-shared');
    expect(free.status, free.text).toBe(200);
    expect(free.headers.get('ratelimit')).toBeNull();
  });

  it('a node below cannot raise a limit set above it', async () => {
    await setLimit('/divisions/d1', 3);
    await setLimit('/tenants/t-capped', 1000);
    const effective = await p.adminOk('olivia', 'GET', '/tenants/t-capped/settings/keys/api.rate_limit_per_minute');
    expect(effective.body).toMatchObject({ value: 3, source: 'division:d1' });
    for (let i = 0; i < 3; i++) {
      const res = await report(i % 2 === 0 ? B : A, 't-capped');
      expect(res.status, res.text).toBe(200);
      expect(res.headers.get('ratelimit-policy')).toBe('"node";q=3;w=60');
    }
    expectRefused(await report(A, 't-capped'), 3);
  });

  it('with Redis stopped, every request is answered (never 5xx), each replica counting alone', async () => {
    await setLimit('/tenants/t-outage', 4);
    const degradedBefore = (await edgePolicyCount(A, 'degraded')) + (await edgePolicyCount(B, 'degraded'));
    await p.redis.stop();
    try {
      for (const r of [A, B]) {
        const statuses: number[] = [];
        const seen: string[] = [];
        for (let i = 0; i < 6; i++) {
          const res = await report(r, 't-outage');
          expect(res.status, res.text).toBeLessThan(500);
          statuses.push(res.status);
          seen.push(`${res.status} ${res.headers.get('ratelimit')}`);
        }
        // Per replica: 4 allowed by this process's own count, then refused. Never no limit.
        expect(statuses, `${r.name} ${seen.join(' | ')}`).toEqual([200, 200, 200, 200, 429, 429]);
      }
      const degradedAfter = (await edgePolicyCount(A, 'degraded')) + (await edgePolicyCount(B, 'degraded'));
      expect(degradedAfter - degradedBefore).toBeGreaterThanOrEqual(8);
    } finally {
      await p.restartRedis();
    }
  });
});
