// A miss asks the engine alongside the Redis lookup while Redis has stopped holding the
// replica's answers (CachingAuthorizer.racing), and stops as soon as Redis answers again.
// Real OpenFGA, and a Redis of the file's own (it is paused).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { RACE_BELOW_HIT_SHARE } from '../../src/decisions/caching-authorizer.js';
import { decisionCacheSettings } from '../../src/decisions/decision-cache.js';
import { startRedis, type RedisServer } from '../../src/stack/redis-server.js';
import { createTestStore, type TestStore } from '../support/fga.js';
import { closeReplicas, resourceCheck, startReplica, writeHierarchy, type Replica } from '../support/decisions-fixture.js';

/** Denied checks nobody asked before: each is two Redis lookups that miss (the tenant's question, then the agent's own). */
async function missesInARow(r: Replica, prefix: string, users: number): Promise<void> {
  for (let i = 0; i < users; i++) {
    expect((await r.cache.authorizer.check(resourceCheck(`user:${prefix}${i}`, 'tA', 'agent', '1'))).allowed).toBe(false);
  }
}

describe('asking the engine alongside the Redis lookup', () => {
  let store: TestStore;
  let server: RedisServer;
  let admin: Redis;
  const replicas: Replica[] = [];

  beforeAll(async () => {
    store = await createTestStore();
    await writeHierarchy(store.client);
    server = await startRedis();
    admin = new Redis(server.url);
  });
  afterAll(async () => {
    await closeReplicas(...replicas);
    admin?.disconnect();
    await server?.stop();
  });

  async function replica(raceLookups: boolean): Promise<Replica> {
    // The settings as an operator gives them (CACHE_RACE_LOOKUPS; racing needs fill leases
    // off, CACHE_FILL_WAIT_MS=0), through the configuration.
    const settings = decisionCacheSettings(loadConfig({ REDIS_URL: server.url, CACHE_RACE_LOOKUPS: String(raceLookups), CACHE_FILL_WAIT_MS: '0' }));
    // A Redis budget longer than the pause below: a lookup that is waited for outlasts it.
    const r = await startReplica(store, {
      redisUrl: settings.redisUrl,
      raceLookups: settings.raceLookups,
      fillWaitMs: settings.fillWaitMs,
      poller: false,
      redisTimeoutMs: 3000,
    });
    replicas.push(r);
    return r;
  }

  it('does not race while Redis may hold answers: a new replica waits for its lookups', async () => {
    const A = await replica(true);
    await missesInARow(A, 'cold', 30); // 60 misses: not yet "Redis holds nothing"
    expect(A.cache.metrics.counts.race).toEqual({ redis: 0, openfga: 0 });
    expect(A.engine.calls).toBe(60);
  });

  it('once Redis has held none of its answers, a miss is answered without waiting for a slow Redis', async () => {
    const racing = await replica(true);
    const waiting = await replica(false);
    await missesInARow(racing, 'r', 40);
    await missesInARow(waiting, 'w', 40);
    expect(racing.cache.metrics.counts.race.openfga).toBeGreaterThan(0);
    expect(waiting.cache.metrics.counts.race).toEqual({ redis: 0, openfga: 0 });

    // A decision each has cached (so every version it depends on is known in process),
    // dropped from the in-process layer: the next check is a Redis lookup (which hits).
    const req = resourceCheck('user:tAadmin', 'tA', 'agent', '1');
    for (const r of [racing, waiting]) {
      expect((await r.cache.authorizer.check(req)).allowed).toBe(true);
      r.cache.authorizer.clearL1();
    }
    await admin.client('PAUSE', 1500, 'ALL');
    const timed = async (r: Replica) => {
      const started = Date.now();
      const d = await r.cache.authorizer.check(req);
      return { d, took: Date.now() - started };
    };
    const [fast, slow] = await Promise.all([timed(racing), timed(waiting)]);
    // The racing replica had its answer from OpenFGA while Redis was still paused …
    expect(fast.d).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(fast.took).toBeLessThan(1000);
    // … the other waited for Redis' answer, which came after the pause.
    expect(slow.d).toMatchObject({ allowed: true, layer: 'redis' });
    expect(slow.took).toBeGreaterThanOrEqual(1000);

    const exposed = await racing.registry.getSingleMetricAsString('tiergate_decision_races_total');
    expect(exposed).toMatch(/tiergate_decision_races_total\{winner="openfga"\} [1-9]/);
  });

  it('stops racing as soon as Redis answers again: decisions another replica cached cost no engine call', async () => {
    const filler = await replica(true);
    const reader = await replica(true);
    await missesInARow(reader, 'x', 40); // the reader races now
    expect(reader.cache.metrics.counts.race.openfga).toBeGreaterThan(0);

    await missesInARow(filler, 'shared', 24); // cached in Redis by another replica
    const setsBefore = await setCalls();
    const racesBefore = { ...reader.cache.metrics.counts.race };
    const calls: number[] = [];
    for (let i = 0; i < 24; i++) {
      const before = reader.engine.calls;
      const d = await reader.cache.authorizer.check(resourceCheck(`user:shared${i}`, 'tA', 'agent', '1'));
      expect(d.allowed).toBe(false);
      calls.push(reader.engine.calls - before);
    }
    // A few hits lift the share of lookups that hit over RACE_BELOW_HIT_SHARE (0.1): the
    // first users may still cost engine calls, made for nothing; none after that.
    expect(RACE_BELOW_HIT_SHARE).toBe(0.1);
    expect(calls.slice(4)).toEqual(new Array(20).fill(0));
    expect(reader.cache.metrics.counts.redis.hit).toBeGreaterThanOrEqual(40);
    // The races Redis won wrote nothing back to it (it already held the answer); only a
    // race the engine won may have filled Redis.
    const races = reader.cache.metrics.counts.race;
    expect(races.redis - racesBefore.redis).toBeGreaterThan(0);
    expect((await setCalls()) - setsBefore).toBeLessThanOrEqual(races.openfga - racesBefore.openfga);
  });

  /**
   * SET commands Redis has run so far (the fills; nothing else here writes with SET). A
   * fill's SET leaves at the end of its tick, after the check has answered: let the last
   * one arrive before counting.
   */
  async function setCalls(): Promise<number> {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stats = await admin.info('commandstats');
    return Number(/cmdstat_set:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  }
});
