// The standalone gateway (src/server/gateway-main.ts) as a second process beside an
// in-process stack: what other suites use for replicas. A replica built from
// stack.replicaEnv() serves the same store, trusts the same issuer, forwards to the
// same tenant service and signs assertions that service accepts.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { useCleanup } from '../support/cleanup.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { call } from '../support/json-call.js';
import { adminOk, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

let s: TestStack;
let replica: GatewayProcess;

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  const redisUrl = inject('redisUrl');
  s = await startTestStack({ platformAdmins: ['pat'], redisUrl });
  const ok = (sub: string, method: string, path: string, body?: unknown) => adminOk(s, sub, method, path, body);
  await ok('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await ok('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't2', name: 'T2' });
  await ok('olivia', 'PUT', '/tenants/t1/roles/admin/tom');
  replica = await startGatewayProcess(s.replicaEnv({ REDIS_URL: redisUrl }));
});

afterAll(async () => {
  await replica?.stop();
});

describe('a gateway replica in its own process', () => {
  it('is ready on its own port when startGatewayProcess resolves', async () => {
    expect(replica.port).not.toBe(s.gatewayPort);
    expect((await call(replica.url, 'GET', '/healthz')).status).toBe(200);
    const ready = await call(replica.url, 'GET', '/readyz');
    expect(ready.status, ready.text).toBe(200);
  });

  it('decides with the same store and forwards to the same tenant service, which accepts its assertion', async () => {
    const tom = await s.authHeader('tom');
    const created = await call(replica.url, 'POST', '/api/v1/tenants/t1/agents', { auth: tom, body: { agentNo: '7', name: 'Via replica' } });
    expect(created.status, created.text).toBe(201);
    // Written through the replica, read through the in-process gateway: one tenant service.
    const read = await call(s.gatewayUrl, 'GET', '/api/v1/tenants/t1/agents/7', { auth: tom });
    expect([read.status, read.body.name]).toEqual([200, 'Via replica']);
    const denied = await call(replica.url, 'GET', '/api/v1/tenants/t2/agents', { auth: tom });
    expect([denied.status, denied.body.permission]).toEqual([403, 'can_read_operational']);
    expect((await call(replica.url, 'GET', '/api/v1/tenants/t1/agents')).status).toBe(401);
  });

  it('fails to start with the reason when its configuration is incomplete', async () => {
    const { TENANT_SERVICE_URL: _drop, ...env } = s.replicaEnv();
    await expect(startGatewayProcess(env)).rejects.toThrow(/TENANT_SERVICE_URL is required/);
    await expect(startGatewayProcess({ ...env, TENANT_SERVICE_URL: s.upstreamUrl, AUTH_CLOCK_TOLERANCE_S: 'lots' })).rejects.toThrow(
      /exited before it was ready[\s\S]*AUTH_CLOCK_TOLERANCE_S/,
    );
  });

  it('refuses to start when its database lacks the nodes OpenFGA links (TIERGATE_START_CHECK=refuse), in one sentence', async () => {
    // Its own fresh PGlite has none of acme, d1, t1, t2: the store's links are of nodes it does not have.
    await expect(startGatewayProcess(s.replicaEnv({ TIERGATE_START_CHECK: 'refuse' }))).rejects.toThrow(
      /tiergate gateway: OpenFGA store \S+ holds 4 structural links of nodes the database does not have \(first: division:d1#organization@organization:acme\) and holds 2 grants on nodes the database does not have \(first: organization:acme#admin@user:olivia\): run `npm run reconcile`/,
    );
  });

  it('stop() ends the process and frees its port', async () => {
    expect(await listening(replica.port)).toBe(true);
    await replica.stop();
    expect(replica.process.exitCode !== null || replica.process.signalCode !== null).toBe(true);
    expect(await listening(replica.port)).toBe(false);
    await replica.stop(); // idempotent
  });
});
