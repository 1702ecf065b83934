// The decision cache's shared Redis taken away from two running gateway processes
// (replicas A and B): first killed and started again on the same port (its data
// gone), then cut off at a TCP relay in front of it and reconnected (its data kept,
// as after a network partition or a restart from persisted data). Decisions stay
// right throughout (only slower, straight from OpenFGA), a revocation made while
// Redis is unreachable is never served stale, and hits resume once Redis is back.
// The steps below run in order and share one scenario.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cacheCounts,
  delta,
  POLL_MS,
  pollerCaughtUp,
  startReplicaPair,
  warm,
  type CacheCounts,
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
/** [subject, status] on tenant t1's agent list: an admin who stays, one revoked while Redis is down, a stranger. */
const STAYS = ['ra', 200] as const;
const STRANGER = ['rd', 403] as const;
const REVOKED = 'rv';
/** Revoked while the replicas are cut off from a Redis that keeps its data. */
const REVOKED_IN_PARTITION = 'rp';
/** An admin of t1 who asks nothing until Redis is back: a decision neither replica has cached. */
const LATECOMER = 'rf';

beforeAll(async () => {
  p = await startReplicaPair({ platformAdmin: 'pat', redisRelay: true });
  ({ A, B } = p);
  await p.adminOk('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await p.adminOk('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await p.adminOk('olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  for (const user of ['ra', REVOKED, REVOKED_IN_PARTITION, LATECOMER]) await p.adminOk('olivia', 'PUT', `/tenants/t1/roles/admin/${user}`);
  const created = await call(A.url, 'POST', agents('t1'), { auth: await p.auth('ra'), body: { agentNo: 'a1', name: 'Agent one' } });
  expect(created.status, created.text).toBe(201);
});

afterAll(async () => {
  await p?.stop();
});

/** Every replica answers every subject as expected (`rvStatus` for the one revoked while Redis is down). */
async function expectDecisions(rvStatus: number, label: string): Promise<number> {
  let n = 0;
  for (const r of [A, B]) {
    for (const [sub, status] of [STAYS, STRANGER, [REVOKED, rvStatus] as const]) {
      const res = await p.get(r, sub, agents('t1'));
      expect(res.status, `${label}: ${r.name} ${sub}: ${res.text}`).toBe(status);
      n++;
    }
  }
  return n;
}

async function bothCounts(): Promise<Record<'A' | 'B', CacheCounts>> {
  return { A: await cacheCounts(A), B: await cacheCounts(B) };
}

describe('Redis killed under two gateway replicas', () => {
  it('before: every decision is an in-process hit on both replicas', { timeout: 60_000 }, async () => {
    await pollerCaughtUp(p);
    for (const r of [A, B]) {
      for (const [sub, status] of [STAYS, STRANGER, [REVOKED, 200] as const]) await warm(p, r, sub, agents('t1'), status);
    }
  });

  it('Redis killed: allowed stay allowed, denied stay denied, answered by OpenFGA without trying Redis', { timeout: 60_000 }, async () => {
    const redis = p.redis.child.process;
    const exited = new Promise((resolve) => redis.once('exit', resolve));
    redis.kill('SIGKILL');
    await exited;

    // Right away, before anyone waits for the replicas to notice: nothing wrong.
    await expectDecisions(200, 'just after the kill');

    // Both notice (the connections closed) and say so in /metrics and /readyz.
    const down = await waitFor(async () => {
      const c = await bothCounts();
      return c.A.redisUp === 0 && c.A.subscriberUp === 0 && c.B.redisUp === 0 && c.B.subscriberUp === 0;
    }, 5000);
    expect(down, 'redis_up and subscriber_up drop to 0 on both').toBe(true);
    for (const r of [A, B]) {
      const ready = await call(r.url, 'GET', '/readyz');
      // The cache is optional for readiness: the replica still serves, from OpenFGA.
      expect(ready.status, ready.text).toBe(200);
      const check = (ready.body.checks as Array<{ name: string; ok: boolean }>).find((c) => c.name === 'decision-cache');
      expect(check?.ok, r.name).toBe(false);
    }

    const before = await bothCounts();
    const n = await expectDecisions(200, 'Redis down');
    const after = await bothCounts();
    for (const r of [A, B]) {
      const d = delta(before[r.name], after[r.name]);
      // Every answer came from OpenFGA; neither layer was served, and Redis was skipped
      // (bypass), not tried and waited for (error).
      expect({ engine: d.engine, l1Hit: d.l1Hit, l1Bypass: d.l1Bypass, redisHit: d.redisHit, redisBypass: d.redisBypass, redisError: d.redisError }, r.name).toEqual({
        engine: n / 2,
        l1Hit: 0,
        l1Bypass: n / 2,
        redisHit: 0,
        redisBypass: n / 2,
        redisError: 0,
      });
    }
  });

  it('a revocation through the admin API while Redis is down answers 500 invalidation-failed and is never served stale', { timeout: 60_000 }, async () => {
    const res = await p.admin('olivia', 'DELETE', `/tenants/t1/roles/admin/${REVOKED}`);
    // The documented behaviour (src/admin/action.ts InvalidationFailedError): the change
    // is committed in PostgreSQL and OpenFGA, but the caches could not be told.
    expect(res.status, res.text).toBe(500);
    expect(res.contentType).toContain('application/problem+json');
    expect(res.body).toMatchObject({ type: 'https://tiergate.dev/problems/invalidation-failed', status: 500, title: 'Change applied, cache invalidation failed' });
    const stored = await p.store.client.read({ user: `user:${REVOKED}`, relation: 'admin', object: 'tenant:t1' });
    expect(stored.tuples, 'the revoke is committed in OpenFGA').toEqual([]);

    // From the very next request on, on both replicas, for as long as Redis stays down.
    for (let i = 0; i < 3; i++) await expectDecisions(403, `revoked while Redis is down (pass ${i + 1})`);
  });

  it('Redis back on the same port: the revocation stays denied through the reconnect, then hits resume on both layers', { timeout: 90_000 }, async () => {
    const before = await bothCounts();
    // Ask all the while Redis comes back and the replicas reconnect and resubscribe.
    let restarted = false;
    const restart = p.restartRedis().then(() => (restarted = true));
    const upAgain = async () => {
      const c = await bothCounts();
      return c.A.redisUp === 1 && c.A.subscriberUp === 1 && c.B.redisUp === 1 && c.B.subscriberUp === 1;
    };
    let passes = 0;
    const deadline = Date.now() + 20_000;
    for (;;) {
      await expectDecisions(403, `Redis coming back (pass ${++passes})`);
      if (restarted && (await upAgain())) break;
      expect(Date.now(), 'both replicas reconnected within 20 s').toBeLessThan(deadline);
    }
    await restart;
    // Once more right after both are up, before the poller has run.
    await expectDecisions(403, 'Redis just back');
    // Each replica dropped everything it held when it subscribed again (it may have missed messages).
    const back = await bothCounts();
    for (const r of [A, B]) expect(delta(before[r.name], back[r.name]).resyncs, r.name).toBeGreaterThanOrEqual(1);

    // Hits resume: in process...
    await pollerCaughtUp(p);
    for (const r of [A, B]) {
      for (const [sub, status] of [STAYS, STRANGER, [REVOKED, 403] as const]) await warm(p, r, sub, agents('t1'), status);
    }
    // ...and through Redis: a decision A computes is a Redis hit for B.
    const redis = new Redis(p.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      const decisions = async () => (await redis.keys(`tg:${p.store.storeId}:d:*`)).length;
      const stored = await decisions();
      // A decision neither replica has asked for yet (the latecomer's, on tenant t1, which
      // agent:t1/a1's can_read is asked as first).
      const agent = `${agents('t1')}/a1`;
      expect((await p.get(A, LATECOMER, agent)).status).toBe(200);
      expect(await waitFor(async () => (await decisions()) > stored, 5000), 'A stored the decision in Redis').toBe(true);
      const b0 = await cacheCounts(B);
      const fromB = await p.get(B, LATECOMER, agent);
      expect([fromB.status, fromB.body.name]).toEqual([200, 'Agent one']);
      const d = delta(b0, await cacheCounts(B));
      expect({ redisHit: d.redisHit, engine: d.engine }).toEqual({ redisHit: 1, engine: 0 });
    } finally {
      redis.disconnect();
    }
  });

  it('cut off from a Redis that keeps its data: a revocation made meanwhile is not served stale after the reconnect', { timeout: 90_000 }, async () => {
    const relay = p.relay!;
    const path = agents('t1');
    for (const r of [A, B]) await warm(p, r, REVOKED_IN_PARTITION, path, 200);
    // Both allows are also in Redis, stored with the versions they depend on: after the
    // reconnect these entries, not the dropped in-process ones, are what could be stale.
    const held = new Redis(p.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await held.connect();
    const decisions = (await held.keys(`tg:${p.store.storeId}:d:*`)).length;
    expect(decisions).toBeGreaterThan(0);

    await relay.cut();
    const down = await waitFor(async () => {
      const c = await bothCounts();
      return c.A.redisUp === 0 && c.B.redisUp === 0 && c.A.subscriberUp === 0 && c.B.subscriberUp === 0;
    }, 5000);
    expect(down, 'both replicas see Redis down').toBe(true);
    const res = await p.admin('olivia', 'DELETE', `/tenants/t1/roles/admin/${REVOKED_IN_PARTITION}`);
    expect([res.status, res.body.type], res.text).toEqual([500, 'https://tiergate.dev/problems/invalidation-failed']);
    for (const r of [A, B]) expect((await p.get(r, REVOKED_IN_PARTITION, path)).status, r.name).toBe(403);

    // Redis never went away: its entries and versions are as they were before the revoke.
    expect((await held.keys(`tg:${p.store.storeId}:d:*`)).length).toBeGreaterThanOrEqual(decisions);
    held.disconnect();

    const before = await bothCounts();
    await relay.restore();
    // Through the reconnect and for a while after it (longer than a ReadChanges poll, which
    // would repair the versions by itself), every answer is a denial.
    let upSince: number | undefined;
    const deadline = Date.now() + 20_000;
    for (let pass = 1; ; pass++) {
      for (const r of [A, B]) {
        const got = await p.get(r, REVOKED_IN_PARTITION, path);
        expect(got.status, `after the reconnect (pass ${pass}): ${r.name}: ${got.text}`).toBe(403);
      }
      if (upSince === undefined) {
        const c = await bothCounts();
        if (c.A.redisUp === 1 && c.B.redisUp === 1 && c.A.subscriberUp === 1 && c.B.subscriberUp === 1) upSince = Date.now();
      } else if (Date.now() - upSince > 3 * POLL_MS) {
        break;
      }
      expect(Date.now(), 'both replicas reconnected within 20 s').toBeLessThan(deadline);
    }
    // Redis was reachable again, with hits served from it, all the while the revoke was denied.
    await pollerCaughtUp(p);
    for (const r of [A, B]) {
      for (const [sub, status] of [STAYS, [REVOKED_IN_PARTITION, 403] as const]) await warm(p, r, sub, path, status);
    }
    const after = await bothCounts();
    for (const r of [A, B]) {
      const d = delta(before[r.name], after[r.name]);
      expect(d.l1Hit, r.name).toBeGreaterThanOrEqual(2);
      // What kept the old entries from validating: each replica bumped the global epoch
      // when it had reconnected, before serving anything cached again.
      expect(d.invalidations['redis_reconnect/local'], r.name).toBeGreaterThanOrEqual(1);
    }
  });
});
