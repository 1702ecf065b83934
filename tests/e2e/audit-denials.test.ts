// The audit of denied gateway requests is bounded: a token holder with no role who is
// refused 2,000 times for one rule and tenant within a minute adds one audit entry,
// whose count is 2,000. Through a real gateway cluster (GATEWAY_WORKERS=2, two worker
// processes sharing one PostgreSQL), so both workers count and the sum is right.
import { Agent, request } from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../../src/stack/postgres-server.js';
import { useCleanup } from '../support/cleanup.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { call } from '../support/json-call.js';
import { startTestStack, type TestStack } from '../support/test-stack.js';
import { inBatches } from '../../load/lib/concurrency.js';
import { waitFor } from '../support/wait.js';

useCleanup();

let pgServer: ThrowawayPostgres;
let s: TestStack;
let gw: GatewayProcess;
let client: pg.Client;

async function admin(sub: string, method: string, path: string, body?: unknown): Promise<void> {
  const res = await call(gw.url, method, `/admin/v1${path}`, { auth: await s.authHeader(sub), ...(body ? { body } : {}) });
  expect(res.status, `${sub} ${method} ${path}: ${res.text}`).toBeLessThan(300);
}

beforeAll(async () => {
  pgServer = await startThrowawayPostgres();
  const redisUrl = inject('redisUrl');
  s = await startTestStack({ platformAdmins: ['pat'], redisUrl });
  gw = await startGatewayProcess(s.replicaEnv({ REDIS_URL: redisUrl, DATABASE_URL: pgServer.url, GATEWAY_WORKERS: '2' }));
  await admin('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await admin('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await admin('olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  await admin('olivia', 'PUT', '/tenants/t1/roles/admin/tom');
  client = new pg.Client({ connectionString: pgServer.url });
  await client.connect();
});

afterAll(async () => {
  await client?.end();
  await gw?.stop();
  pgServer?.stop();
});

describe('denied gateway requests are audited once per principal, rule, node and minute', () => {
  it("2,000 denials of one principal for one rule and tenant, served by both workers: one entry (per minute), count 2,000", async () => {
    const N = 2000;
    // Keep the burst inside one minute when the clock allows (it takes a few seconds).
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 45_000) await new Promise((r) => setTimeout(r, 60_500 - intoMinute));

    const mallory = await s.authHeader('mallory'); // a valid token, no role anywhere
    // Many connections, so the primary hands them to both workers.
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const deny = () =>
      new Promise<number>((resolve, reject) => {
        const req = request(`${gw.url}/api/v1/tenants/t1/agents`, { agent, headers: { authorization: mallory } }, (res) => {
          res.resume();
          res.once('end', () => resolve(res.statusCode ?? 0));
        });
        req.once('error', reject);
        req.end();
      });
    const started = Date.now();
    const statuses = await inBatches(Array.from({ length: N }, () => deny), 16, (run) => run());
    agent.destroy();
    expect(statuses.filter((st) => st === 403)).toHaveLength(N);

    // Both workers refused some of them (their access lines name the worker).
    const workers = new Set(
      gw
        .output()
        .split('\n')
        .filter((l) => l.includes('"msg":"request"') && l.includes('"principal":"user:mallory"'))
        .map((l) => (JSON.parse(l) as { worker: number }).worker),
    );
    expect(workers.size).toBe(2);

    const counted = async () =>
      Number((await client.query<{ n: string | null }>("select sum(count) as n from gateway_denial_counts where actor = 'user:mallory'")).rows[0]!.n ?? 0);
    expect(await waitFor(async () => (await counted()) === N, 15_000), `counted ${await counted()} of ${N}`).toBe(true);

    const rows = await client.query<{ minute: string; rule: string; node: string }>(
      "select detail->>'minute' as minute, detail->>'rule' as rule, detail->>'node' as node from admin_audit where action = 'gateway.deny' and actor = 'user:mallory'",
    );
    const minutes = new Set([Math.floor(started / 60_000), Math.floor(Date.now() / 60_000)]);
    expect(rows.rows.length).toBeLessThanOrEqual(minutes.size);
    expect(new Set(rows.rows.map((r) => r.minute)).size).toBe(rows.rows.length);
    expect(rows.rows.every((r) => r.rule === 'agents.list' && r.node === 'tenant:t1')).toBe(true);

    // The tenant's admin reads the entry, or the entries of the minutes the burst spanned, with their counts.
    const res = await call(gw.url, 'GET', '/admin/v1/audit?actor=mallory&action=gateway.deny', { auth: await s.authHeader('tom') });
    expect(res.status, res.text).toBe(200);
    const items = res.body.items as Array<{ count: number; target: string; scope: string[] }>;
    expect(items).toHaveLength(rows.rows.length);
    expect(items.reduce((sum, e) => sum + e.count, 0)).toBe(N);
    for (const e of items) {
      expect(e.target).toBe('tenant:t1');
      expect(e.scope).toEqual(['organization:acme', 'division:d1', 'tenant:t1']);
    }
  });
});
