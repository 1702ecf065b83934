// Two decision cache instances (standing in for two gateway replicas) sharing one real
// redis-server and one engine: a miss both replicas have at the same moment is asked of
// the engine once, by the replica that took the key's fill lease, and the other serves
// that answer from Redis once it validates (CachingAuthorizer.leaseOrWait).
// In the first tests the engine is a table that can hold its answers, so the tests decide
// when the lease holder's answer comes, and the hierarchy is a table too; the last ones
// ask a real OpenFGA store, the way the gateway's replicas do after a move.
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { DecisionCache, decisionCacheSettings } from '../../src/decisions/index.js';
import { AuthorizerUnavailableError } from '../../src/fga/authorizer.js';
import type { ChildLink, StructureSource } from '../../src/fga/hierarchy.js';
import type { Authorizer, CheckRequest, Decision } from '../../src/authz/types.js';
import { owned, useCleanup } from '../support/cleanup.js';
import { closeReplicas, MODEL, resourceCheck, startReplicaPair, tuple, writeHierarchy, writeThrough, type Replica } from '../support/decisions-fixture.js';
import { createTestStore } from '../support/fga.js';
import { waitFor } from '../support/wait.js';

useCleanup();

/** One engine for both replicas: answers from a table, counts every call, can hold them. */
class SharedEngine implements Authorizer {
  calls: CheckRequest[] = [];
  answers = new Map<string, boolean>();
  /** The next this many calls fail (after the hold, if any). */
  failNext = 0;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  set(user: string, relation: string, object: string, allowed: boolean): void {
    this.answers.set(`${user} ${relation} ${object}`, allowed);
  }
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  async check(req: CheckRequest): Promise<Decision> {
    this.calls.push(req);
    // The answer as the table says when asked; a held call answers it later.
    const allowed = this.answers.get(`${req.user} ${req.relation} ${req.object}`) ?? false;
    if (this.gate) await this.gate;
    if (this.failNext > 0) {
      this.failNext--;
      throw new AuthorizerUnavailableError('timeout', 'the engine did not answer');
    }
    return { allowed, layer: 'openfga', durationMs: 0 };
  }
}

/** platform:root > organization:o1 > division:d1 > tenant:tA, tenant:tB */
class TableStructure implements StructureSource {
  private readonly parentsOf = new Map<string, string[]>([
    ['organization:o1', ['platform:root']],
    ['division:d1', ['organization:o1']],
    ['tenant:tA', ['division:d1']],
    ['tenant:tB', ['division:d1']],
  ]);
  async parents(object: string): Promise<string[]> {
    return this.parentsOf.get(object) ?? [];
  }
  async children(parent: string, links: readonly ChildLink[]): Promise<string[]> {
    const types = new Set(links.map((l) => l.type));
    return [...this.parentsOf].filter(([c, ps]) => ps.includes(parent) && types.has(c.split(':')[0]!)).map(([c]) => c);
  }
}

interface Pair {
  A: DecisionCache;
  B: DecisionCache;
  engine: SharedEngine;
  registries: Map<DecisionCache, Registry>;
}

/** Two replicas of one store (a store of their own: keys no other test touches). */
async function replicas(fillWaitMs: string): Promise<Pair> {
  // The settings as an operator gives them (CACHE_FILL_WAIT_MS), through the configuration.
  const settings = decisionCacheSettings(loadConfig({ REDIS_URL: inject('redisUrl'), CACHE_FILL_WAIT_MS: fillWaitMs }));
  const engine = new SharedEngine();
  const storeId = `fill-lease-${randomUUID()}`;
  const registries = new Map<DecisionCache, Registry>();
  const start = async () => {
    const registry = new Registry();
    const cache = new DecisionCache({
      ...settings,
      engine,
      storeId,
      modelId: () => 'model1',
      model: MODEL,
      registry,
      structureSource: new TableStructure(),
      // Generous: the shared 2-core test machine is slow at times.
      redisTimeoutMs: 500,
      poller: false,
      parentQuestions: false,
      heartbeatMs: 100,
      ackTimeoutMs: 3000,
      fenceMs: 3000,
    });
    registries.set(cache, registry);
    owned(() => cache.close());
    await cache.start();
    return cache;
  };
  const A = await start();
  const B = await start();
  return { A, B, engine, registries };
}

async function check(cache: DecisionCache, user: string, object = 'tenant:tA'): Promise<Decision> {
  return cache.authorizer.check({ user, relation: 'can_view', object, contextualTuples: [] });
}

/** Both replicas' first lookups are done (each found no valid answer), and one of them asked the engine. */
async function bothMissedAndOneAsked(p: Pair, misses = 2): Promise<void> {
  const missed = () => p.A.metrics.counts.redis.miss + p.B.metrics.counts.redis.miss + p.A.metrics.counts.redis.stale + p.B.metrics.counts.redis.stale;
  expect(await waitFor(() => missed() >= misses && p.engine.calls.length === 1, 5000, 5)).toBe(true);
}

function leases(p: Pair) {
  const a = p.A.metrics.counts.lease;
  const b = p.B.metrics.counts.lease;
  return {
    acquired: a.acquired + b.acquired,
    waited_served: a.waited_served + b.waited_served,
    waited_filled: a.waited_filled + b.waited_filled,
  };
}

describe('a miss both replicas have at once is asked of the engine once', () => {
  it('identical concurrent misses split over both replicas make one engine call', async () => {
    const p = await replicas('5000');
    p.engine.set('user:same', 'can_view', 'tenant:tA', true);
    p.engine.hold();
    const asked = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => check(i % 2 === 0 ? p.A : p.B, 'user:same'));
    await bothMissedAndOneAsked(p);
    // The replica without the lease is polling Redis meanwhile; let it look a few times.
    await new Promise((r) => setTimeout(r, 50));
    p.engine.release();
    const answers = await Promise.all(asked);

    expect(answers.every((d) => d.allowed)).toBe(true);
    expect(p.engine.calls).toHaveLength(1);
    // One answer from the engine, one from Redis (the waiting replica), the rest joined those in process.
    expect(answers.map((d) => d.layer).sort()).toEqual(['coalesced', 'coalesced', 'coalesced', 'coalesced', 'coalesced', 'coalesced', 'openfga', 'redis']);
    expect(leases(p)).toEqual({ acquired: 1, waited_served: 1, waited_filled: 0 });
    // Both now hold it in process.
    expect(await check(p.A, 'user:same')).toMatchObject({ allowed: true, layer: 'l1' });
    expect(await check(p.B, 'user:same')).toMatchObject({ allowed: true, layer: 'l1' });
    expect(p.engine.calls).toHaveLength(1);

    // What operators see: the waiting replica's /metrics.
    const waiter = p.A.metrics.counts.lease.waited_served === 1 ? p.A : p.B;
    const exposed = await p.registries.get(waiter)!.getSingleMetricAsString('tiergate_decision_fill_leases_total');
    expect(exposed).toMatch(/tiergate_decision_fill_leases_total\{outcome="waited_served"\} 1\n/);
    expect(exposed).toMatch(/tiergate_decision_fill_leases_total\{outcome="acquired"\} 0\n/);
  });

  it('distinct questions asked on both replicas at once cost one engine call each', async () => {
    const p = await replicas('5000');
    const users = ['user:d0', 'user:d1', 'user:d2', 'user:d3', 'user:d4', 'user:d5'];
    users.forEach((u, i) => p.engine.set(u, 'can_view', i % 2 === 0 ? 'tenant:tA' : 'tenant:tB', i % 3 !== 0));
    const asked = users.flatMap((u, i) => {
      const object = i % 2 === 0 ? 'tenant:tA' : 'tenant:tB';
      return [p.A, p.B, p.A, p.B, p.A, p.B].map(async (r) => ({ u, allowed: (await check(r, u, object)).allowed }));
    });
    const answers = await Promise.all(asked);

    for (const a of answers) expect(a.allowed).toBe(users.indexOf(a.u) % 3 !== 0);
    expect(p.engine.calls.map((c) => c.user).sort()).toEqual(users);
    expect(leases(p).acquired).toBe(users.length);
    expect(leases(p).waited_filled).toBe(0);
  });

  it("the lease holder's engine error: the waiting replica asks itself at once, and answers", async () => {
    const p = await replicas('10000');
    p.engine.set('user:err', 'can_view', 'tenant:tA', true);
    p.engine.failNext = 1;
    p.engine.hold();
    const settle = (d: Promise<Decision>) => d.then((v) => ({ v, at: performance.now() }), (err: unknown) => ({ err, at: performance.now() }));
    const asked = [settle(check(p.A, 'user:err')), settle(check(p.B, 'user:err'))];
    await bothMissedAndOneAsked(p);
    const released = performance.now();
    p.engine.release();
    const [a, b] = await Promise.all(asked);

    // The holder rejects as without a lease (errors are never cached); the other, told by
    // the released lease that no answer is coming, asks the engine itself — long before its
    // 10 s budget.
    const failed = [a!, b!].filter((r) => 'err' in r);
    const answered = [a!, b!].filter((r) => 'v' in r);
    expect(failed).toHaveLength(1);
    expect((failed[0] as { err: unknown }).err).toBeInstanceOf(AuthorizerUnavailableError);
    expect(answered).toHaveLength(1);
    expect((answered[0] as { v: Decision }).v).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(answered[0]!.at - released).toBeLessThan(2000);
    expect(p.engine.calls).toHaveLength(2);
    expect(leases(p)).toEqual({ acquired: 1, waited_served: 0, waited_filled: 1 });
  });

  it('when the engine keeps failing, the waiting replica rejects too, without waiting out its budget', async () => {
    const p = await replicas('10000');
    p.engine.failNext = 2;
    p.engine.hold();
    const started = performance.now();
    const asked = [check(p.A, 'user:down'), check(p.B, 'user:down')].map((d) => d.then(() => 'answered', () => 'rejected'));
    await bothMissedAndOneAsked(p);
    p.engine.release();
    expect(await Promise.all(asked)).toEqual(['rejected', 'rejected']);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(p.engine.calls).toHaveLength(2);
  });

  it("a waiting replica does not serve the holder's answer once a version it depends on was bumped", async () => {
    const p = await replicas('5000');
    p.engine.set('user:moved', 'can_view', 'tenant:tA', true);
    p.engine.hold();
    const asked = [check(p.A, 'user:moved'), check(p.B, 'user:moved')];
    await bothMissedAndOneAsked(p);
    // While the holder's engine call is out, the user's role on tenant:tA is revoked: the
    // holder's answer records the role-version from before.
    p.engine.set('user:moved', 'can_view', 'tenant:tA', false);
    await p.A.invalidator.tuplesChanged({ writes: [], deletes: [tuple('user:moved', 'admin', 'tenant:tA')] });
    p.engine.release();
    const answers = await Promise.all(asked);

    // The holder answers as the engine did when asked (before the revoke resolved); the
    // waiting replica finds that answer stale and asks the engine itself: the revoke holds.
    expect(answers.map((d) => d.allowed).sort()).toEqual([false, true]);
    expect(answers.every((d) => d.layer === 'openfga')).toBe(true);
    expect(p.engine.calls).toHaveLength(2);
    expect(leases(p)).toEqual({ acquired: 1, waited_served: 0, waited_filled: 1 });
    for (const r of [p.A, p.B]) expect((await check(r, 'user:moved')).allowed).toBe(false);
  });

  it('a replica whose Redis lookups have long found nothing still waits for the lease holder: it never races with leases on', async () => {
    const p = await replicas('5000');
    // Misses nobody else asked: Redis holds none of A's answers. Without fill leases A would
    // now ask the engine alongside each lookup (CachingAuthorizer.racing), before knowing
    // whether another replica is asking the same question.
    for (let i = 0; i < 80; i++) await check(p.A, `user:lone${i}`);
    const calls = p.engine.calls.length;
    expect(calls).toBe(80);

    // B asks first and holds the lease; then A asks three times, and B twice more.
    p.engine.set('user:late', 'can_view', 'tenant:tA', true);
    p.engine.hold();
    const byB = check(p.B, 'user:late');
    expect(await waitFor(() => p.B.metrics.counts.lease.acquired === 1 && p.engine.calls.length === calls + 1, 5000, 5)).toBe(true);
    const asked = [byB, check(p.A, 'user:late'), check(p.A, 'user:late'), check(p.B, 'user:late'), check(p.A, 'user:late'), check(p.B, 'user:late')];
    expect(await waitFor(() => p.A.metrics.counts.redis.miss === 81, 5000, 5)).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(p.engine.calls).toHaveLength(calls + 1);
    p.engine.release();
    const answers = await Promise.all(asked);

    expect(answers.every((d) => d.allowed)).toBe(true);
    expect(p.engine.calls).toHaveLength(calls + 1);
    expect(answers.map((d) => d.layer).sort()).toEqual(['coalesced', 'coalesced', 'coalesced', 'coalesced', 'openfga', 'redis']);
    expect(p.A.metrics.counts.lease).toMatchObject({ acquired: 80, waited_served: 1, waited_filled: 0 });
    expect(p.A.metrics.counts.race).toEqual({ redis: 0, openfga: 0 });

    // And the other way round: A takes the lease, B waits.
    p.engine.set('user:late2', 'can_view', 'tenant:tA', true);
    p.engine.hold();
    const byA = check(p.A, 'user:late2');
    expect(await waitFor(() => p.A.metrics.counts.lease.acquired === 81 && p.engine.calls.length === calls + 2, 5000, 5)).toBe(true);
    const byB2 = check(p.B, 'user:late2');
    expect(await waitFor(() => p.B.metrics.counts.redis.miss === 2, 5000, 5)).toBe(true);
    p.engine.release();
    expect((await Promise.all([byA, byB2])).map((d) => d.layer)).toEqual(['openfga', 'redis']);
    expect(p.engine.calls).toHaveLength(calls + 2);
  });

  it('with CACHE_FILL_WAIT_MS=0 each replica asks for itself', async () => {
    const p = await replicas('0');
    p.engine.set('user:solo', 'can_view', 'tenant:tA', true);
    p.engine.hold();
    const asked = [check(p.A, 'user:solo'), check(p.B, 'user:solo')];
    expect(await waitFor(() => p.engine.calls.length === 2, 5000, 5)).toBe(true);
    p.engine.release();
    expect((await Promise.all(asked)).map((d) => d.layer)).toEqual(['openfga', 'openfga']);
    expect(leases(p)).toEqual({ acquired: 0, waited_served: 0, waited_filled: 0 });
  });
});

describe('the miss storm after a move, real OpenFGA', () => {
  /**
   * Each question (user, agent of tenant tA) asked `times` times at once, alternating
   * replicas; every other user's first ask goes to B, so each replica is first for some.
   */
  async function storm(A: Replica, B: Replica, users: readonly string[], times: number): Promise<Map<string, boolean[]>> {
    const asked = users.flatMap((u, j) =>
      Array.from({ length: times }, async (_, i) => ({ u, allowed: (await ((i + j) % 2 === 0 ? A : B).cache.authorizer.check(resourceCheck(u, 'tA', 'agent', 'probe'))).allowed })),
    );
    const out = new Map<string, boolean[]>();
    for (const { u, allowed } of await Promise.all(asked)) out.set(u, [...(out.get(u) ?? []), allowed]);
    return out;
  }

  it('every question asked at once on both replicas costs one OpenFGA check, on a replica that would have raced too', async () => {
    const store = await createTestStore();
    await writeHierarchy(store.client);
    // The settings as an operator gives them, with a wait that outlasts a slow test machine.
    const settings = decisionCacheSettings(loadConfig({ REDIS_URL: inject('redisUrl'), CACHE_FILL_WAIT_MS: '5000' }));
    expect(settings.raceLookups).toBe(true);
    const [A, B] = await startReplicaPair(store, { redisUrl: settings.redisUrl, raceLookups: settings.raceLookups, fillWaitMs: settings.fillWaitMs, poller: false });
    owned(() => closeReplicas(A, B));

    // Warm on both replicas (and in Redis), then move division d2 (with tA) from d1 to d3.
    const users = ['user:tAuser', 'user:tAadmin', 'user:d1admin', 'user:d2admin', 'user:d3admin', 'user:orgadmin', 'user:tBadmin'];
    const before = await storm(A, B, users, 2);
    expect(Object.fromEntries([...before].map(([u, a]) => [u, a]))).toMatchObject({ 'user:d1admin': [true, true], 'user:d3admin': [false, false], 'user:tBadmin': [false, false] });
    await writeThrough(store.client, A, {
      deletes: [tuple('division:d1', 'parent', 'division:d2')],
      writes: [tuple('division:d3', 'parent', 'division:d2')],
    });
    // Then misses nobody else asks, on A: Redis has held none of A's answers lately, the
    // state in which a replica without fill leases asks OpenFGA alongside its lookups.
    for (let i = 0; i < 40; i++) expect((await A.cache.authorizer.check(resourceCheck(`user:lone${i}`, 'tC', 'agent', '1'))).allowed).toBe(false);

    const calls = A.engine.calls + B.engine.calls;
    const leases = { ...A.cache.metrics.counts.lease };
    const leasesB = { ...B.cache.metrics.counts.lease };
    const after = await storm(A, B, users, 6);

    const allowed = new Set(['user:tAuser', 'user:tAadmin', 'user:d2admin', 'user:d3admin', 'user:orgadmin']);
    for (const u of users) expect(after.get(u)).toEqual(new Array(6).fill(allowed.has(u)));
    // One check per question: the tenant's question for everyone, and the agent's own for the
    // two the tenant's question denies (./parent-questions.ts).
    expect(A.engine.calls + B.engine.calls - calls).toBe(users.length + 2);
    const acquired = A.cache.metrics.counts.lease.acquired - leases.acquired + B.cache.metrics.counts.lease.acquired - leasesB.acquired;
    const filled = A.cache.metrics.counts.lease.waited_filled - leases.waited_filled + B.cache.metrics.counts.lease.waited_filled - leasesB.waited_filled;
    expect({ acquired, filled }).toEqual({ acquired: users.length + 2, filled: 0 });
    expect(A.cache.metrics.counts.race).toEqual({ redis: 0, openfga: 0 });
  });
});
