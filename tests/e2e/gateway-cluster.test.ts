// The gateway as a node:cluster (GATEWAY_WORKERS=2) on a real PostgreSQL: the way the
// benchmark runs it, and the way to use every core. The primary bootstraps once and
// serves /metrics for all workers; each worker is a whole gateway; the workers learn
// of each other's revocations through Redis before the admin API answers; a worker
// that dies is replaced.
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NODE_HEAP_FLAGS } from '../../src/shared/node-flags.js';
import { freePort } from '../../src/stack/ports.js';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../../src/stack/postgres-server.js';
import { scrape } from '../../load/lib/prom.js';
import { useCleanup } from '../support/cleanup.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { call } from '../support/json-call.js';
import { startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

let pgServer: ThrowawayPostgres;
let s: TestStack;
let gw: GatewayProcess;
let metricsUrl: string;

/** The gateway workers the primary runs now (its other children, e.g. tsx's esbuild, are not). */
function workerPids(): number[] {
  const children = readFileSync(`/proc/${gw.pid}/task/${gw.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return children.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('src/server/gateway-main.ts');
    } catch {
      return false; // gone meanwhile
    }
  });
}

/**
 * One request on a connection of its own (the primary hands connections to workers
 * in turn), and which worker served it: found by its request id in the access log.
 */
async function onNewConnection(method: string, path: string, auth: string): Promise<{ status: number; worker: number }> {
  const { status, requestId } = await new Promise<{ status: number; requestId: string }>((resolve, reject) => {
    const req = request(`${gw.url}${path}`, { method, agent: false, headers: { authorization: auth, connection: 'close' } }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, requestId: String(res.headers['x-request-id']) }));
    });
    req.once('error', reject);
    req.end();
  });
  let worker: number | undefined;
  for (let i = 0; i < 50 && worker === undefined; i++) {
    const line = gw
      .output()
      .split('\n')
      .find((l) => l.includes(`"requestId":"${requestId}"`) && l.includes('"msg":"request"'));
    if (line) worker = (JSON.parse(line) as { worker: number }).worker;
    else await new Promise((r) => setTimeout(r, 100));
  }
  if (worker === undefined) throw new Error(`no access line for request ${requestId}`);
  return { status, worker };
}

/** The sum of every series of the primary's /metrics whose name starts with `prefix` (over every label set and worker). */
async function summed(prefix: string): Promise<number> {
  let sum = 0;
  for (const [series, value] of await scrape(metricsUrl)) {
    if (series.startsWith(prefix)) sum += value;
  }
  return sum;
}

/** Requests the gateway counted, over every route and worker. */
const requestCount = () => summed('tiergate_request_duration_seconds_count{');

async function admin(sub: string, method: string, path: string, body?: unknown): Promise<void> {
  const res = await call(gw.url, method, `/admin/v1${path}`, { auth: await s.authHeader(sub), ...(body ? { body } : {}) });
  expect(res.status, `${sub} ${method} ${path}: ${res.text}`).toBeLessThan(300);
}

beforeAll(async () => {
  const redisUrl = inject('redisUrl');
  pgServer = await startThrowawayPostgres();
  // The in-process stack lends its OpenFGA store, token issuer and tenant service.
  s = await startTestStack({ platformAdmins: ['pat'], redisUrl });
  const metricsPort = await freePort();
  gw = await startGatewayProcess(
    s.replicaEnv({ REDIS_URL: redisUrl, DATABASE_URL: pgServer.url, GATEWAY_WORKERS: '2', METRICS_PORT: String(metricsPort), METRICS_HOST: '127.0.0.1' }),
  );
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  await admin('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await admin('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await admin('olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  await admin('olivia', 'PUT', '/tenants/t1/roles/admin/tom');
});

afterAll(async () => {
  await gw?.stop();
  pgServer?.stop();
});

describe('the gateway under node:cluster (GATEWAY_WORKERS=2, PostgreSQL)', () => {
  it('runs two worker processes under one primary, each with the heap flag though the primary was started without it', () => {
    const args = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const pids = workerPids();
    expect(pids).toHaveLength(2);
    expect(args(gw.pid)).not.toContain(NODE_HEAP_FLAGS[0]);
    for (const pid of pids) expect(args(pid)).toContain(NODE_HEAP_FLAGS[0]);
  });

  it('keeps the admin API\'s records and audit in PostgreSQL', async () => {
    const client = new pg.Client({ connectionString: pgServer.url });
    await client.connect();
    try {
      const tenants = await client.query<{ id: string; division_id: string }>('select id, division_id from admin_tenants');
      expect(tenants.rows).toEqual([{ id: 't1', division_id: 'd1' }]);
      const audit = await client.query<{ n: string }>("select count(*) as n from admin_audit where outcome = 'success'");
      expect(Number(audit.rows[0]!.n)).toBeGreaterThanOrEqual(4);
    } finally {
      await client.end();
    }
  });

  it('a revocation through the admin API is honoured by every worker once it has answered', async () => {
    const tom = await s.authHeader('tom');
    const before = await Promise.all([0, 1, 2, 3].map(() => onNewConnection('GET', '/api/v1/tenants/t1/agents', tom)));
    expect(before.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    // Both workers served (and so cached) the allowed decision.
    expect(new Set(before.map((r) => r.worker)).size).toBe(2);

    await admin('olivia', 'DELETE', '/tenants/t1/roles/admin/tom');
    const after = [];
    for (let i = 0; i < 4; i++) after.push(await onNewConnection('GET', '/api/v1/tenants/t1/agents', tom));
    expect(after.map((r) => r.status)).toEqual([403, 403, 403, 403]);
    expect(new Set(after.map((r) => r.worker)).size).toBe(2);
    await admin('olivia', 'PUT', '/tenants/t1/roles/admin/tom');
  });

  it('serves /metrics from the primary, summed over the workers', async () => {
    const tom = await s.authHeader('tom');
    const before = await requestCount();
    const tokens = await summed('tiergate_token_verifications_total{');
    const assertions = await summed('tiergate_assertions_total{');
    const served = [];
    for (let i = 0; i < 6; i++) served.push(await onNewConnection('GET', '/api/v1/tenants/t1/agents', tom));
    expect(new Set(served.map((r) => r.worker)).size).toBe(2);
    expect((await requestCount()) - before).toBe(6);
    // Each of the six had its token checked and carried an assertion, in whichever worker served it.
    expect((await summed('tiergate_token_verifications_total{')) - tokens).toBe(6);
    expect((await summed('tiergate_assertions_total{')) - assertions).toBe(6);
  });

  it('replaces a worker that dies', async () => {
    const [victim, survivor] = workerPids();
    process.kill(victim!, 'SIGKILL');
    const deadline = Date.now() + 20_000;
    let now = workerPids();
    while ((now.length !== 2 || now.includes(victim!)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      now = workerPids();
    }
    expect(now).toHaveLength(2);
    expect(now).toContain(survivor);
    expect(now).not.toContain(victim);
    // The new worker is a whole gateway: it decides and forwards. It gets connections
    // once it listens, so ask until both workers have answered.
    const tom = await s.authHeader('tom');
    const answers: { status: number; worker: number }[] = [];
    while (new Set(answers.map((r) => r.worker)).size < 2 && Date.now() < deadline) {
      answers.push(await onNewConnection('GET', '/api/v1/tenants/t1/agents', tom));
    }
    expect(new Set(answers.map((r) => r.worker)).size).toBe(2);
    expect(answers.every((r) => r.status === 200)).toBe(true);
  });
});
