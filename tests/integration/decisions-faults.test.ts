// Faults: Redis killed and restarted, Redis paused (slow), OpenFGA gone. The cache
// may get slower; it must never answer wrongly and never cache an error.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decisionKey, VersionsUnavailableError, type DecisionCacheOptions } from '../../src/decisions/index.js';
import { AuthorizerUnavailableError } from '../../src/fga/authorizer.js';
import { startOpenFga, type OpenFgaServer } from '../../src/stack/openfga-server.js';
import { startRedis, type RedisServer } from '../../src/stack/redis-server.js';
import { createTestStore, type TestStore } from '../support/fga.js';
import { engineFor, resourceCheck, startReplica, startReplicaPair, closeReplicas, tuple, writeHierarchy, writeThrough, type Replica } from '../support/decisions-fixture.js';
import { waitFor } from '../support/wait.js';

describe('Redis killed mid-run, then back', () => {
  let store: TestStore;
  let server: RedisServer;
  let A: Replica;
  let B: Replica;

  beforeAll(async () => {
    store = await createTestStore();
    await writeHierarchy(store.client);
    server = await startRedis();
    A = await startReplica(store, { redisUrl: server.url, pollMs: 200 });
    B = await startReplica(store, { redisUrl: server.url, poller: false });
  });
  afterAll(async () => {
    await closeReplicas(A, B);
    await server?.stop();
  });

  it('keeps answering correctly (only slower) while Redis is down, and hits resume when it is back', async () => {
    const user = 'user:outage';
    await writeThrough(store.client, A, { writes: [tuple(user, 'admin', 'tenant:tA')] });
    const allowReq = resourceCheck(user, 'tA', 'agent', '1', 'can_write');
    const denyReq = resourceCheck(user, 'tB', 'agent', '1', 'can_write');
    for (const r of [A, B]) {
      for (let i = 0; i < 2; i++) {
        expect((await r.cache.authorizer.check(allowReq)).allowed).toBe(true);
        expect((await r.cache.authorizer.check(denyReq)).allowed).toBe(false);
      }
      expect((await r.cache.authorizer.check(allowReq)).layer).toBe('l1');
    }

    // Both replicas keep checking while Redis dies; each answer is logged with when it was asked.
    let stop = false;
    const log: Array<{ startedAt: number; allowed: boolean; deny: boolean }> = [];
    const loops = [A, B].map(async (r) => {
      while (!stop) {
        for (const [req, deny] of [
          [allowReq, false],
          [denyReq, true],
        ] as const) {
          const startedAt = Date.now();
          const d = await r.cache.authorizer.check(req);
          log.push({ startedAt, allowed: d.allowed, deny });
        }
        await new Promise((res) => setTimeout(res, 2));
      }
    });

    await server.stop();
    for (const r of [A, B]) {
      expect(await waitFor(async () => r.cache.status().redis === 'down' && r.cache.status().l1 === 'bypassed', 5000)).toBe(true);
    }
    expect(A.cache.status().subscriber).toBe('down');
    // hierarchy listings (admin API, forward stage) keep working, read uncached from OpenFGA
    expect((await B.cache.hierarchy.tenantsUnder('division:d1')).sort()).toEqual(['tenant:tA', 'tenant:tB']);
    expect(await B.cache.hierarchy.ancestors('tenant:tA')).toEqual(['division:d2', 'division:d1', 'organization:o1', 'platform:root']);

    // The revoke happens while Redis is down: OpenFGA takes it, the invalidator can't.
    await store.client.write({ deletes: [tuple(user, 'admin', 'tenant:tA')] });
    const revokedAt = Date.now();
    await expect(A.cache.invalidator.tuplesChanged({ writes: [], deletes: [tuple(user, 'admin', 'tenant:tA')] })).rejects.toBeInstanceOf(
      VersionsUnavailableError,
    );
    const bypassBefore = B.cache.metrics.counts.redis.bypass;
    await new Promise((res) => setTimeout(res, 300));
    // While down, nothing waits on Redis: the shared layer is skipped without a round trip.
    expect(B.cache.metrics.counts.redis.bypass).toBeGreaterThan(bypassBefore);

    // Redis back on the same port (empty: no persistence).
    server = await startRedis({ port: server.port });
    for (const r of [A, B]) {
      expect(await waitFor(async () => r.cache.status().redis === 'up' && r.cache.status().l1 === 'serving', 10_000)).toBe(true);
    }
    stop = true;
    await Promise.all(loops);

    // No wrong decision at any point: the denial is always denied; the allow is
    // allowed until the revoke and denied for every check asked after it.
    expect(log.length).toBeGreaterThan(20);
    for (const e of log) {
      if (e.deny) expect(e.allowed).toBe(false);
      else if (e.startedAt > revokedAt) expect(e.allowed).toBe(false);
    }
    expect(log.some((e) => !e.deny && e.allowed)).toBe(true);

    // Hits resume.
    for (const r of [A, B]) {
      expect((await r.cache.authorizer.check(allowReq)).allowed).toBe(false);
      expect(await waitFor(async () => (await r.cache.authorizer.check(allowReq)).layer === 'l1', 3000)).toBe(true);
    }
    // And invalidation works again across replicas.
    await writeThrough(store.client, A, { writes: [tuple(user, 'admin', 'tenant:tA')] });
    expect((await B.cache.authorizer.check(allowReq)).allowed).toBe(true);
    expect(B.cache.metrics.counts.l1.bypass).toBeGreaterThan(0);
  });
});

describe('Redis slow (paused)', () => {
  let store: TestStore;
  let server: RedisServer;
  let A: Replica;
  let admin: Redis;

  beforeAll(async () => {
    store = await createTestStore();
    await writeHierarchy(store.client);
    server = await startRedis();
    A = await startReplica(store, { redisUrl: server.url, poller: false, redisTimeoutMs: 20 });
    admin = new Redis(server.url);
  });
  afterAll(async () => {
    await A?.cache.close();
    admin?.disconnect();
    await server?.stop();
  });

  it('gives up on Redis after its budget and answers from OpenFGA', async () => {
    const req = resourceCheck('user:tBadmin', 'tB', 'queue', 'slow');
    const other = resourceCheck('user:tAuser', 'tB', 'queue', 'slow');
    // A replica whose lookup connection is not ready skips Redis without waiting (a
    // bypass, not a timeout): on a loaded machine a 20 ms budget can delay that readiness.
    expect(await waitFor(async () => A.cache.status().redis === 'up', 10_000)).toBe(true);
    const errorsBefore = A.cache.metrics.counts.redis.error;
    await admin.client('PAUSE', 1500, 'ALL');
    const started = Date.now();
    const [d1, d2] = await Promise.all([A.cache.authorizer.check(req), A.cache.authorizer.check(other)]);
    const took = Date.now() - started;
    expect(d1).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(d2).toMatchObject({ allowed: false, layer: 'openfga' });
    expect(A.cache.metrics.counts.redis.error).toBeGreaterThan(errorsBefore);
    // far below the 1.5 s pause: the 20 ms budget per round trip was respected
    expect(took).toBeLessThan(1000);
  });
});

/**
 * A replica over an OpenFGA of its own (the tests stop it), the hierarchy written, and an
 * engine that gives up after 1 s. The server is stopped again if the rest fails.
 */
async function replicaOnItsOwnOpenFga(extra: Partial<DecisionCacheOptions> = {}): Promise<{ fga: OpenFgaServer; store: TestStore; replica: Replica }> {
  const fga = await startOpenFga();
  try {
    const store = await createTestStore({ apiUrl: fga.apiUrl });
    await writeHierarchy(store.client);
    const replica = await startReplica(store, { redisUrl: inject('redisUrl'), poller: false, engine: engineFor(store, 1000), ...extra });
    return { fga, store, replica };
  } catch (err) {
    await fga.stop();
    throw err;
  }
}

describe('OpenFGA gone: errors are never cached', () => {
  let fga: OpenFgaServer;
  let store: TestStore;
  let A: Replica;
  let redis: Redis;

  beforeAll(async () => {
    ({ fga, store, replica: A } = await replicaOnItsOwnOpenFga());
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(async () => {
    await A?.cache.close();
    redis?.disconnect();
    await fga?.stop();
  });

  it('rejects with a typed error, every time, and stores nothing', async () => {
    const cached = resourceCheck('user:tAadmin', 'tA', 'agent', '1');
    expect((await A.cache.authorizer.check(cached)).allowed).toBe(true);
    await fga.stop();

    const fresh = resourceCheck('user:tBadmin', 'tB', 'agent', '1');
    const callsBefore = A.engine.calls;
    const sizeBefore = A.cache.authorizer.l1Size;
    for (let i = 0; i < 3; i++) {
      const err = await Promise.resolve(fresh).then((q) => A.cache.authorizer.check(q)).then(
        (d) => d,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AuthorizerUnavailableError);
      expect((err as AuthorizerUnavailableError).failure).toBe('unreachable');
    }
    expect(A.engine.calls - callsBefore).toBe(3);
    expect(A.cache.authorizer.l1Size).toBe(sizeBefore);
    expect(A.cache.metrics.counts.engine.error).toBe(3);
    const key = decisionKey(store.storeId, store.authorizationModelId, fresh)!;
    expect(await redis.exists(`tg:${store.storeId}:d:${key}`)).toBe(0);
    await expect(A.cache.authorizer.check({ ...fresh, consistency: 'strong' })).rejects.toBeInstanceOf(AuthorizerUnavailableError);

    // a decision cached before the outage is still served (from memory, no engine needed)
    expect(await A.cache.authorizer.check(cached)).toMatchObject({ allowed: true, layer: 'l1' });
  });
});

describe('OpenFGA gone while a replica races it against Redis', () => {
  let fga: OpenFgaServer;
  let R: Replica;

  beforeAll(async () => {
    // Racing needs fill leases off (CachingAuthorizer.racing).
    ({ fga, replica: R } = await replicaOnItsOwnOpenFga({ fillWaitMs: 0 }));
  });
  afterAll(async () => {
    await R?.cache.close();
    await fga?.stop();
  });

  it("answers from Redis when it holds the answer, and rejects with the engine's error only when it does not", async () => {
    // 80 lookups that miss: the replica now asks the engine alongside each lookup.
    for (let i = 0; i < 40; i++) await R.cache.authorizer.check(resourceCheck(`user:nobody${i}`, 'tA', 'agent', '1'));
    expect(R.cache.metrics.counts.race.openfga).toBeGreaterThan(0);
    const cached = resourceCheck('user:tAadmin', 'tA', 'agent', '1');
    expect((await R.cache.authorizer.check(cached)).allowed).toBe(true);
    R.cache.authorizer.clearL1(); // in Redis only
    await fga.stop();

    const errorsBefore = R.cache.metrics.counts.engine.error;
    const racesBefore = R.cache.metrics.counts.race.redis;
    expect(await R.cache.authorizer.check(cached)).toMatchObject({ allowed: true, layer: 'redis' });
    expect(R.cache.metrics.counts.race.redis).toBe(racesBefore + 1);
    const fresh = resourceCheck('user:tBadmin', 'tB', 'agent', '1');
    const err = await Promise.resolve(fresh).then((q) => R.cache.authorizer.check(q)).then(
      (d) => d,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AuthorizerUnavailableError);
    expect((err as AuthorizerUnavailableError).failure).toBe('unreachable');
    // Both races asked the engine (which failed); only the second had no answer from Redis.
    expect(R.cache.metrics.counts.engine.error).toBe(errorsBefore + 2);
  });
});

describe('subscriber reconnect', () => {
  let store: TestStore;
  let server: RedisServer;
  let A: Replica;
  let B: Replica;
  let admin: Redis;

  beforeAll(async () => {
    store = await createTestStore();
    await writeHierarchy(store.client);
    server = await startRedis();
    [A, B] = await startReplicaPair(store, { redisUrl: server.url, poller: false });
    admin = new Redis(server.url);
  });
  afterAll(async () => {
    await closeReplicas(A, B);
    admin?.disconnect();
    await server?.stop();
  });

  it('drops everything held in process after a reconnect, since messages may have been missed', async () => {
    const reqs = [resourceCheck('user:tAadmin', 'tA', 'agent', 'r1'), resourceCheck('user:tBadmin', 'tB', 'agent', 'r1')];
    for (const req of reqs) {
      await B.cache.authorizer.check(req);
      expect((await B.cache.authorizer.check(req)).layer).toBe('l1');
    }
    expect(B.cache.status().l1Entries).toBeGreaterThanOrEqual(2);
    const resyncs = async () => Number(/tiergate_decision_resyncs_total (\d+)/.exec(await B.registry.metrics())![1]);
    const before = await resyncs();

    // Cut every subscriber connection; a write lands while they are away.
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await store.client.write({ deletes: [tuple('user:tAadmin', 'admin', 'tenant:tA')] });
    await A.cache.invalidator.tuplesChanged({ writes: [], deletes: [tuple('user:tAadmin', 'admin', 'tenant:tA')] });

    expect(await waitFor(async () => B.cache.status().subscriber === 'up' && (await resyncs()) > before, 5000)).toBe(true);
    expect(B.cache.status().l1Entries).toBe(0);
    expect((await B.cache.authorizer.check(reqs[0]!)).allowed).toBe(false);
    expect((await B.cache.authorizer.check(reqs[1]!)).allowed).toBe(true);
  });
});
