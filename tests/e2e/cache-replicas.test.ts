// The decision cache end to end, across two real gateway processes (replicas A and
// B) sharing one Redis, one OpenFGA store and one tenant-resource service. Hit and
// miss counts are read from each process's own /metrics listener. Hierarchy and role
// writes go through replica A's admin API (each process has its own PGlite; see
// tests/support/cache-replicas.ts); B serves the data path only.
// Redis failures are in cache-replicas-redis.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cacheCounts,
  delta,
  POLL_MS,
  pollerCaughtUp,
  startReplicaPair,
  warm,
  type Replica,
  type ReplicaPair,
} from '../support/cache-replicas.js';
import { useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { waitFor } from '../support/wait.js';

useCleanup();

let p: ReplicaPair;
let A: Replica;
let B: Replica;

const agents = (t: string) => `/api/v1/tenants/${t}/agents`;

beforeAll(async () => {
  p = await startReplicaPair({ platformAdmin: 'pat' });
  ({ A, B } = p);
  await p.adminOk('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  for (const d of ['d1', 'd2', 'zz']) await p.adminOk('olivia', 'POST', '/organizations/acme/divisions', { id: d, name: d });
  // An organization with the same id as a division (the id without its type is ambiguous).
  await p.adminOk('pat', 'POST', '/organizations', { id: 'zz', name: 'ZZ', admins: ['kzorg'] });
  for (const [d, t] of [
    ['d1', 't1'],
    ['d1', 't2'],
    ['d1', 'tm'],
    ['d2', 'cc'],
    ['d2', 'cc_x'],
    ['d2', 'dd'],
    ['d2', 'dd-1'],
  ] as const) {
    await p.adminOk('olivia', 'POST', `/divisions/${d}/tenants`, { id: t, name: t });
  }
  for (const [path, user] of [
    ['/divisions/d1', 'd1admin'],
    ['/divisions/d2', 'd2admin'],
    ['/tenants/t2', 't2admin'],
    ['/tenants/tm', 'tmadmin'],
    ['/tenants/cc', 'kc'],
    ['/tenants/cc_x', 'kx'],
    ['/tenants/dd', 'kd'],
    ['/tenants/dd-1', 'kd1'],
    ['/divisions/zz', 'kzdiv'],
  ] as const) {
    await p.adminOk('olivia', 'PUT', `${path}/roles/admin/${user}`);
  }
  await p.adminOk('olivia', 'PUT', '/tenants/cc/roles/member/km');
  // Agents whose (tenant, agentNo) pairs join to the same string with `_` or `-`.
  for (const [sub, tenant, agentNo] of [
    ['kc', 'cc', 'x_9'],
    ['kx', 'cc_x', '9'],
    ['kd', 'dd', '1-2'],
    ['kd1', 'dd-1', '2'],
  ] as const) {
    const res = await call(A.url, 'POST', agents(tenant), { auth: await p.auth(sub), body: { agentNo, name: `${tenant}/${agentNo}` } });
    expect(res.status, res.text).toBe(201);
  }
});

afterAll(async () => {
  await p?.stop();
});

describe('decision cache across two gateway processes sharing one Redis', () => {
  it('both replicas report Redis and the invalidation subscriber up', async () => {
    for (const r of [A, B]) {
      const ready = await call(r.url, 'GET', '/readyz');
      expect(ready.status, ready.text).toBe(200);
      const cacheCheck = (ready.body.checks as Array<{ name: string; ok: boolean; detail?: string }>).find((c) => c.name === 'decision-cache');
      expect(cacheCheck).toMatchObject({ ok: true, detail: 'redis up, l1 serving' });
      const c = await cacheCounts(r);
      expect([c.redisUp, c.subscriberUp]).toEqual([1, 1]);
    }
  });

  it('a tenant admin revoked through replica A is denied by replica B on the very next request', { timeout: 90_000 }, async () => {
    for (let round = 1; round <= 3; round++) {
      await p.adminOk('olivia', 'PUT', '/tenants/t1/roles/admin/tom');
      await pollerCaughtUp(p);
      // Warm: B (and A) answer tom's request from their in-process layer, proved by B's own hit counter.
      await warm(p, B, 'tom', agents('t1'), 200);
      await warm(p, A, 'tom', agents('t1'), 200);
      const warmB = await cacheCounts(B);
      const again = await p.get(B, 'tom', agents('t1'));
      expect(again.status).toBe(200);
      const proof = delta(warmB, await cacheCounts(B));
      expect([proof.l1Hit, proof.engine], `round ${round}: B was warm`).toEqual([1, 0]);

      const revoked = await p.admin('olivia', 'DELETE', '/tenants/t1/roles/admin/tom');
      expect([revoked.status, revoked.body.changed], revoked.text).toEqual([200, true]);

      // No wait, no poll: the very next request to B is denied.
      const before = await cacheCounts(B);
      const onB = await p.get(B, 'tom', agents('t1'));
      expect([onB.status, onB.body.permission], `round ${round}: ${onB.text}`).toEqual([403, 'can_read_operational']);
      // B still held the allow, found it outdated, and asked OpenFGA.
      const d = delta(before, await cacheCounts(B));
      expect({ l1Hit: d.l1Hit, l1Stale: d.l1Stale, engine: d.engine }, `round ${round}`).toEqual({ l1Hit: 0, l1Stale: 1, engine: 1 });
      expect((await p.get(A, 'tom', agents('t1'))).status).toBe(403);
    }
  });

  it("a grant inside tenant t1 leaves other users' tenant t2 decisions warm on both replicas (hit counters)", { timeout: 60_000 }, async () => {
    // Tenant t2: an allow by its own admin, an allow through the division, a denial (of
    // the user granted a role in t1 below).
    const inT2 = [
      ['t2admin', agents('t2'), 200],
      ['d1admin', '/api/v1/tenants/t2/queues', 200],
      ['newbie', agents('t2'), 403],
    ] as const;
    await pollerCaughtUp(p);
    for (const r of [A, B]) {
      for (const [sub, path, status] of inT2) await warm(p, r, sub, path, status);
      await warm(p, r, 'newbie', agents('t1'), 403);
    }
    const before = { A: await cacheCounts(A), B: await cacheCounts(B) };

    await p.adminOk('olivia', 'PUT', '/tenants/t1/roles/member/newbie');

    // Everybody's but the grantee's: those depend on the grantee's role-version, which the grant moved.
    const others = inT2.filter(([sub]) => sub !== 'newbie');
    const askT2 = async () => {
      for (const r of [B, A]) {
        for (const [sub, path, status] of others) expect((await p.get(r, sub, path)).status, `${r.name} ${sub} ${path}`).toBe(status);
      }
    };
    await askT2();
    for (const r of [A, B]) {
      const d = delta(before[r.name], await cacheCounts(r));
      expect({ l1Hit: d.l1Hit, l1Miss: d.l1Miss, l1Stale: d.l1Stale, engine: d.engine }, `replica ${r.name}`).toEqual({
        l1Hit: 2,
        l1Miss: 0,
        l1Stale: 0,
        engine: 0,
      });
    }
    // The grantee's own denial in t2 is asked anew (the same answer)...
    for (const r of [B, A]) {
      const c = await cacheCounts(r);
      expect((await p.get(r, 'newbie', agents('t2'))).status, r.name).toBe(403);
      const d = delta(c, await cacheCounts(r));
      expect({ l1Hit: d.l1Hit, stale: d.l1Stale > 0 }, r.name).toEqual({ l1Hit: 0, stale: true });
    }
    // ...and the grant itself is seen at once by both (their cached denial for t1 was dropped).
    for (const r of [B, A]) expect((await p.get(r, 'newbie', agents('t1'))).status, r.name).toBe(200);
    for (const r of [B, A]) await warm(p, r, 'newbie', agents('t1'), 200);

    // The ReadChanges poller reads the grant back from OpenFGA and leaves it alone: the admin
    // API bumped it on both replicas already. Even the grantee's decision made since stays warm.
    const beforePoll = { A: await cacheCounts(A), B: await cacheCounts(B) };
    await pollerCaughtUp(p);
    await askT2();
    for (const r of [B, A]) expect((await p.get(r, 'newbie', agents('t1'))).status, r.name).toBe(200);
    for (const r of [A, B]) {
      const d = delta(beforePoll[r.name], await cacheCounts(r));
      expect({ l1Hit: d.l1Hit, l1Miss: d.l1Miss, l1Stale: d.l1Stale, engine: d.engine }, `replica ${r.name} after the poll`).toEqual({
        l1Hit: 3,
        l1Miss: 0,
        l1Stale: 0,
        engine: 0,
      });
    }
    const since = { A: delta(before.A, await cacheCounts(A)), B: delta(before.B, await cacheCounts(B)) };
    expect(
      {
        skipped: since.A.ownWritesSkipped + since.B.ownWritesSkipped,
        bumped: (since.A.invalidations['role_grant/readchanges'] ?? 0) + (since.B.invalidations['role_grant/readchanges'] ?? 0),
      },
      `the poller read the grant and left it (ack time-outs: ${since.A.ackTimeouts + since.B.ackTimeouts})`,
    ).toEqual({ skipped: 1, bumped: 0 });
  });

  it(`a tuple deleted straight in OpenFGA is denied by both replicas within the poll interval (${POLL_MS} ms) + 1 s`, { timeout: 60_000 }, async () => {
    const tuple = { user: 'user:ext', relation: 'admin', object: 'tenant:t2' };
    await p.store.client.write({ writes: [tuple] });
    // The grant reaches both replicas the same way (ReadChanges), within a generous deadline here.
    expect(await waitFor(async () => (await p.get(A, 'ext', agents('t2'))).status === 200 && (await p.get(B, 'ext', agents('t2'))).status === 200, 10_000)).toBe(true);
    await pollerCaughtUp(p);
    for (const r of [A, B]) await warm(p, r, 'ext', agents('t2'), 200);
    const before = { A: await cacheCounts(A), B: await cacheCounts(B) };

    // Not through tiergate: the SDK straight to OpenFGA.
    await p.store.client.write({ deletes: [tuple] });
    const deletedAt = Date.now();
    const deniedAfter: Partial<Record<'A' | 'B', number>> = {};
    const bound = POLL_MS + 1000;
    await waitFor(
      async () => {
        for (const r of [A, B]) {
          if (deniedAfter[r.name] !== undefined) continue;
          const res = await p.get(r, 'ext', agents('t2'));
          if (res.status === 403) deniedAfter[r.name] = Date.now() - deletedAt;
          else expect(res.status).toBe(200);
        }
        return deniedAfter.A !== undefined && deniedAfter.B !== undefined;
      },
      bound + 2000, // observe past the bound, so a late deny is reported with its time
      20,
    );
    for (const r of [A, B]) {
      const ms = deniedAfter[r.name];
      expect(ms ?? Number.POSITIVE_INFINITY, `${r.name} denied ${ms === undefined ? `not within ${bound + 2000}` : `after ${ms}`} ms`).toBeLessThanOrEqual(bound);
    }
    // And it stays denied, on both.
    for (const r of [A, B, A, B]) expect((await p.get(r, 'ext', agents('t2'))).status).toBe(403);
    // Learnt from the changelog, not from an admin API call.
    let fromPoll = 0;
    for (const r of [A, B]) fromPoll += delta(before[r.name], await cacheCounts(r)).invalidations['role_revoke/readchanges'] ?? 0;
    expect(fromPoll).toBeGreaterThanOrEqual(1);
  });

  it('moving a tenant to another division takes effect for the old and the new division admins on both replicas', { timeout: 60_000 }, async () => {
    const asks = [
      ['d1admin', 200, 403],
      ['d2admin', 403, 200],
      ['tmadmin', 200, 200],
    ] as const;
    await pollerCaughtUp(p);
    for (const r of [A, B]) for (const [sub, status] of asks) await warm(p, r, sub, agents('tm'), status);

    const moved = await p.admin('olivia', 'POST', '/tenants/tm/move', { parent: 'division:d2' });
    expect([moved.status, moved.body.changed], moved.text).toEqual([200, true]);

    // At once, on the replica that did not make the move first.
    for (const r of [B, A]) {
      for (const [sub, , after] of asks) expect((await p.get(r, sub, agents('tm'))).status, `${r.name} ${sub}`).toBe(after);
    }
    // Reads through the new division admin reach the tenant service with the right tenant.
    const list = await p.get(B, 'd2admin', agents('tm'));
    expect(list.body).toMatchObject({ items: [] });
  });

  it('ids that collide under naive concatenation get distinct, correct answers (also from the cache)', { timeout: 60_000 }, async () => {
    // `cc` + `x_9` and `cc_x` + `9` both join to `cc_x_9`; `dd` + `1-2` and `dd-1` + `2` to `dd-1-2`.
    // Each tenant has its own admin; each admin may read its own agent and not the twin.
    // Besides: one subject and object, two permissions (a tenant member reads an agent,
    // may not write it); and one id, two types (division zz and organization zz, one permission).
    const asks: Array<[sub: string, method: 'GET' | 'PUT', path: string, status: number, name?: string]> = [
      ['kc', 'GET', `${agents('cc')}/x_9`, 200, 'cc/x_9'],
      ['kc', 'GET', `${agents('cc_x')}/9`, 403],
      ['kx', 'GET', `${agents('cc_x')}/9`, 200, 'cc_x/9'],
      ['kx', 'GET', `${agents('cc')}/x_9`, 403],
      ['kd', 'GET', `${agents('dd')}/1-2`, 200, 'dd/1-2'],
      ['kd', 'GET', `${agents('dd-1')}/2`, 403],
      ['kd1', 'GET', `${agents('dd-1')}/2`, 200, 'dd-1/2'],
      ['kd1', 'GET', `${agents('dd')}/1-2`, 403],
      ['km', 'GET', `${agents('cc')}/x_9`, 200, 'cc/x_9'],
      ['km', 'PUT', `${agents('cc')}/x_9`, 403],
      ['kzdiv', 'GET', '/api/v1/divisions/zz/reports/summary', 200],
      ['kzdiv', 'GET', '/api/v1/organizations/zz/reports/summary', 403],
      ['kzorg', 'GET', '/api/v1/organizations/zz/reports/summary', 200],
      ['kzorg', 'GET', '/api/v1/divisions/zz/reports/summary', 403],
    ];
    const round = async (r: Replica) => {
      for (const [sub, method, path, status, name] of asks) {
        const body = method === 'PUT' ? { agentNo: 'x_9', name: 'overwritten' } : undefined;
        const res = await call(r.url, method, path, { auth: await p.auth(sub), ...(body ? { body } : {}) });
        expect(res.status, `${r.name} ${sub} ${method} ${path}: ${res.text}`).toBe(status);
        if (name !== undefined) expect(res.body.name).toBe(name);
      }
    };
    await pollerCaughtUp(p);
    // First round fills the caches (A's fills land in Redis, where B may find them).
    for (const r of [A, B]) await round(r);
    const before = { A: await cacheCounts(A), B: await cacheCounts(B) };
    for (let i = 0; i < 2; i++) for (const r of [B, A]) await round(r);
    // The later rounds were answered from the in-process layer: every answer above came from a cache entry of its own.
    // A denied agent read or write takes two: its tenant's "no" first, then the agent's own answer.
    const lookups = asks.length + asks.filter(([, , path, status]) => status === 403 && path.includes('/agents/')).length;
    for (const r of [A, B]) {
      const d = delta(before[r.name], await cacheCounts(r));
      expect({ l1Hit: d.l1Hit, engine: d.engine }, r.name).toEqual({ l1Hit: 2 * lookups, engine: 0 });
    }
  });
});
