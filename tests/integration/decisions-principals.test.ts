// Principal-scoped invalidation against the real servers: a role grant or revocation for
// one user invalidates that user's cached decisions (one role-version per user, wherever
// the role is), and nobody else's; a structural change still invalidates everyone's
// beneath the moved node. Two cache instances (replicas) share one Redis and one OpenFGA
// store; hit and engine counters prove which decisions stayed warm.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestStore, type TestStore } from '../support/fga.js';
import { resourceCheck, startReplicaPair, closeReplicas, tuple, writeHierarchy, writeThrough, type Replica } from '../support/decisions-fixture.js';
import { waitFor } from '../support/wait.js';
import { useCleanup } from '../support/cleanup.js';
import type { CheckRequest } from '../../src/authz/types.js';

useCleanup();

const ask = (user: string, relation: string, object: string): CheckRequest => ({ user, relation, object, contextualTuples: [] });

interface Counters {
  /** In-process hits. */
  hits: number;
  /** Calls that reached OpenFGA. */
  engine: number;
  /** Hits in Redis (a fresh answer the other replica just stored). */
  redis: number;
}
const counters = (r: Replica): Counters => ({ hits: r.cache.metrics.counts.l1.hit, engine: r.engine.calls, redis: r.cache.metrics.counts.redis.hit });
const since = (r: Replica, c: Counters): Counters => {
  const now = counters(r);
  return { hits: now.hits - c.hits, engine: now.engine - c.engine, redis: now.redis - c.redis };
};
/** Not served from memory: asked anew, from OpenFGA or from the entry another replica just stored. */
const REASKED = ['openfga', 'redis'];

async function answer(r: Replica, req: CheckRequest) {
  const d = await r.cache.authorizer.check(req);
  return { allowed: d.allowed, layer: d.layer };
}

/** Caches `reqs` on `r` and proves each is then served from memory with the expected answer. */
async function warm(r: Replica, reqs: CheckRequest[], expected: boolean[]): Promise<void> {
  for (const [i, req] of reqs.entries()) expect((await answer(r, req)).allowed, `${req.user} ${req.relation} ${req.object}`).toBe(expected[i]);
  const ok = await waitFor(async () => {
    for (const req of reqs) if ((await answer(r, req)).layer !== 'l1') return false;
    return true;
  }, 3000);
  expect(ok).toBe(true);
}

let store: TestStore;

beforeAll(async () => {
  store = await createTestStore();
  await writeHierarchy(store.client);
});

describe('role changes through tiergate (DecisionInvalidator)', () => {
  let A: Replica;
  let B: Replica;

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    // No pollers: they would re-bump tiergate's own writes when reading them back from
    // the changelog (one extra miss for the user concerned), blurring exact counts.
    [A, B] = await startReplicaPair(store, { redisUrl, poller: false });
  });
  afterAll(() => closeReplicas(A, B));

  it("revoking user U on tenant T: U's next check denies on both replicas, V's decisions on T stay warm", async () => {
    await store.client.write({ writes: [tuple('user:ru', 'member', 'tenant:tA'), tuple('user:rv', 'member', 'tenant:tA')] });
    const of = (u: string) => [resourceCheck(u, 'tA', 'agent', 'p1'), ask(u, 'can_view', 'tenant:tA'), resourceCheck(u, 'tA', 'queue', 'p1')];
    for (const r of [A, B]) {
      await warm(r, of('user:ru'), [true, true, true]);
      await warm(r, of('user:rv'), [true, true, true]);
    }
    const before = { A: counters(A), B: counters(B) };

    await writeThrough(store.client, A, { deletes: [tuple('user:ru', 'member', 'tenant:tA')] });

    // B first: the replica that did not make the write
    for (const req of of('user:ru')) expect(await answer(B, req), req.object).toEqual({ allowed: false, layer: 'openfga' });
    for (const req of of('user:rv')) expect(await answer(B, req), req.object).toEqual({ allowed: true, layer: 'l1' });
    for (const req of of('user:ru')) {
      const d = await answer(A, req);
      expect(d.allowed, req.object).toBe(false);
      expect(REASKED, req.object).toContain(d.layer);
    }
    for (const req of of('user:rv')) expect(await answer(A, req), req.object).toEqual({ allowed: true, layer: 'l1' });
    // exactly U's decisions were asked anew on each replica, V's three were in-process hits.
    // U's: the tenant's can_view, and the tenant's can_read_operational that the agent and
    // the queue are asked as first (once: the queue finds its "no" in memory); after that
    // "no", the agent and the queue are each asked as they are. So 4 questions, 4 hits.
    expect(since(B, before.B)).toEqual({ hits: 4, engine: 4, redis: 0 });
    const a = since(A, before.A);
    expect([a.hits, a.engine + a.redis]).toEqual([4, 4]);
  });

  it("granting U a role on tenant X: U's decisions on X and on tenant Y are asked anew on both replicas, V's on both stay warm", async () => {
    await store.client.write({ writes: [tuple('user:xv', 'member', 'tenant:tA'), tuple('user:xv', 'member', 'tenant:tC')] });
    const of = (u: string) => [ask(u, 'can_view', 'tenant:tA'), ask(u, 'can_view', 'tenant:tC')];
    for (const r of [A, B]) {
      await warm(r, of('user:xu'), [false, false]);
      await warm(r, of('user:xv'), [true, true]);
    }
    const before = { A: counters(A), B: counters(B) };

    await writeThrough(store.client, A, { writes: [tuple('user:xu', 'member', 'tenant:tA')] });

    for (const r of [B, A]) {
      const name = r === A ? 'A' : 'B';
      // on X the answer changes; on Y it does not, but U's role-version moved: asked again
      for (const [i, req] of of('user:xu').entries()) {
        const d = await answer(r, req);
        expect(d.allowed, `${name} ${req.object}`).toBe([true, false][i]);
        expect(r === B ? ['openfga'] : REASKED, `${name} ${req.object}`).toContain(d.layer);
      }
      for (const req of of('user:xv')) expect(await answer(r, req), `${name} ${req.object}`).toEqual({ allowed: true, layer: 'l1' });
    }
    expect(since(B, before.B)).toEqual({ hits: 2, engine: 2, redis: 0 });
    const a = since(A, before.A);
    expect([a.hits, a.engine + a.redis]).toEqual([2, 2]);
  });

  it("granting U division admin on D: U's decisions beneath D change on both replicas, U's elsewhere are asked anew, V's stay warm", async () => {
    await store.client.write({ writes: [tuple('user:gv', 'admin', 'tenant:tB')] });
    const uUnder = [resourceCheck('user:gu', 'tB', 'queue', 'g1', 'can_write'), ask('user:gu', 'can_rename', 'division:d2'), ask('user:gu', 'can_read_reports', 'tenant:tA')];
    const uElsewhere = [ask('user:gu', 'can_view', 'tenant:tC'), ask('user:gu', 'can_view', 'division:d3')];
    const vUnder = [resourceCheck('user:gv', 'tB', 'queue', 'g1', 'can_write'), ask('user:gv', 'can_rename', 'division:d2'), ask('user:gv', 'can_view', 'tenant:tB')];
    for (const r of [A, B]) {
      await warm(r, uUnder, [false, false, false]);
      await warm(r, uElsewhere, [false, false]);
      await warm(r, vUnder, [true, false, true]);
    }
    const before = { A: counters(A), B: counters(B) };

    await writeThrough(store.client, A, { writes: [tuple('user:gu', 'admin', 'division:d1')] });

    for (const r of [B, A]) {
      for (const req of uUnder) {
        const d = await answer(r, req);
        expect(d.allowed, `${r === A ? 'A' : 'B'} ${req.object}`).toBe(true);
        expect(r === B ? ['openfga'] : REASKED, req.object).toContain(d.layer);
      }
      for (const req of uElsewhere) {
        const d = await answer(r, req);
        expect(d.allowed, req.object).toBe(false);
        expect(r === B ? ['openfga'] : REASKED, req.object).toContain(d.layer);
      }
      for (const [i, req] of vUnder.entries()) expect(await answer(r, req), req.object).toEqual({ allowed: [true, false, true][i], layer: 'l1' });
    }
    expect(since(B, before.B)).toEqual({ hits: 3, engine: 5, redis: 0 });
    const a = since(A, before.A);
    expect([a.hits, a.engine + a.redis]).toEqual([3, 5]);
  });

  it("a structural change (a tenant moved) still invalidates everyone's decisions beneath the moved node", async () => {
    await store.client.write({
      writes: [tuple('division:d2', 'division', 'tenant:tM'), tuple('user:mw1', 'member', 'tenant:tM'), tuple('user:mw2', 'admin', 'tenant:tM')],
    });
    // beneath tM: answers that change with the move and answers that don't — all must be re-asked
    const moved = [
      { req: resourceCheck('user:mw1', 'tM', 'agent', 'm1'), before: true, after: true },
      { req: resourceCheck('user:mw2', 'tM', 'configuration', 'm1', 'can_write'), before: true, after: true },
      { req: ask('user:d2admin', 'can_manage_resources', 'tenant:tM'), before: true, after: false },
      { req: ask('user:d3admin', 'can_manage_resources', 'tenant:tM'), before: false, after: true },
      { req: ask('user:d1admin', 'can_move', 'tenant:tM'), before: true, after: false },
    ];
    // the old and new parents' own decisions, and a sibling tenant's, are not beneath tM
    const beside = [
      { req: ask('user:d2admin', 'can_view', 'division:d2'), allowed: true },
      { req: ask('user:d3admin', 'can_view', 'division:d3'), allowed: true },
      { req: resourceCheck('user:tBadmin', 'tB', 'agent', 'm1'), allowed: true },
    ];
    for (const r of [A, B]) {
      await warm(r, moved.map((m) => m.req), moved.map((m) => m.before));
      await warm(r, beside.map((b) => b.req), beside.map((b) => b.allowed));
    }
    const before = { A: counters(A), B: counters(B) };

    await writeThrough(store.client, A, {
      deletes: [tuple('division:d2', 'division', 'tenant:tM')],
      writes: [tuple('division:d3', 'division', 'tenant:tM')],
    });

    for (const r of [B, A]) {
      for (const m of moved) {
        const d = await answer(r, m.req);
        expect(d.allowed, `${m.req.user} ${m.req.object}`).toBe(m.after);
        expect(r === B ? ['openfga'] : REASKED, `${m.req.user} ${m.req.object}`).toContain(d.layer);
      }
      for (const b of beside) expect(await answer(r, b.req), `${b.req.user} ${b.req.object}`).toEqual({ allowed: b.allowed, layer: 'l1' });
    }
    expect(since(B, before.B)).toEqual({ hits: beside.length, engine: moved.length, redis: 0 });
    const a = since(A, before.A);
    expect([a.hits, a.engine + a.redis]).toEqual([beside.length, moved.length]);
  });
});

describe('role changes made straight in OpenFGA (ReadChanges pollers)', () => {
  let C: Replica;
  let D: Replica;

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    [C, D] = await startReplicaPair(store, { redisUrl, pollMs: 200 });
  });
  afterAll(() => closeReplicas(C, D));

  /**
   * Waits until both replicas have applied every change written so far: a denial cached
   * before a grant written now turns into an allow only once the poller bumped that grant,
   * and it reads the changelog in order.
   */
  async function caughtUp(marker: string): Promise<void> {
    const req = ask(marker, 'can_view', 'tenant:tC');
    for (const r of [C, D]) await warm(r, [req], [false]);
    await store.client.write({ writes: [tuple(marker, 'member', 'tenant:tC')] });
    for (const r of [C, D]) expect(await waitFor(async () => (await answer(r, req)).allowed, 5000)).toBe(true);
  }

  it("a revocation written straight to OpenFGA: U is denied within poll interval + 1 s, V's decisions stay warm", async () => {
    await store.client.write({ writes: [tuple('user:pu', 'member', 'tenant:tC'), tuple('user:pv', 'member', 'tenant:tC')] });
    await caughtUp('user:marker1');
    const of = (u: string) => [resourceCheck(u, 'tC', 'agent', 'q1'), ask(u, 'can_view', 'tenant:tC')];
    for (const r of [C, D]) {
      await warm(r, of('user:pu'), [true, true]);
      await warm(r, of('user:pv'), [true, true]);
    }

    await store.client.write({ deletes: [tuple('user:pu', 'member', 'tenant:tC')] });
    const started = Date.now();
    for (const r of [C, D]) {
      const denied = await waitFor(async () => {
        for (const req of of('user:pu')) if ((await answer(r, req)).allowed) return false;
        return true;
      }, 1200, 10);
      expect(denied).toBe(true);
    }
    expect(Date.now() - started).toBeLessThanOrEqual(1200 + 100);
    // V's entries, cached before the revocation and not asked since, are still served from memory
    const before = { C: counters(C), D: counters(D) };
    for (const r of [C, D]) for (const req of of('user:pv')) expect(await answer(r, req)).toEqual({ allowed: true, layer: 'l1' });
    expect(since(C, before.C)).toEqual({ hits: 2, engine: 0, redis: 0 });
    expect(since(D, before.D)).toEqual({ hits: 2, engine: 0, redis: 0 });
    // learnt from the changelog, as a role revocation
    let polled = 0;
    for (const r of [C, D]) polled += Number(/tiergate_decision_invalidations_total\{kind="role_revoke",source="readchanges"\} (\d+)/.exec(await r.registry.metrics())?.[1] ?? 0);
    expect(polled).toBeGreaterThanOrEqual(1);
  });

  it("a division admin grant written straight to OpenFGA: U's decisions beneath D change, U's elsewhere are asked anew, V's stay warm", async () => {
    await store.client.write({ writes: [tuple('user:qv', 'member', 'tenant:tC')] });
    await caughtUp('user:marker2');
    const uUnder = [ask('user:qu', 'can_manage_resources', 'tenant:tC'), resourceCheck('user:qu', 'tC', 'ivr', 'q2', 'can_write')];
    const uElsewhere = [ask('user:qu', 'can_view', 'tenant:tA')];
    const vUnder = [resourceCheck('user:qv', 'tC', 'ivr', 'q2'), ask('user:qv', 'can_manage_resources', 'tenant:tC')];
    for (const r of [C, D]) {
      await warm(r, uUnder, [false, false]);
      await warm(r, uElsewhere, [false]);
      await warm(r, vUnder, [true, false]);
    }

    await store.client.write({ writes: [tuple('user:qu', 'admin', 'division:d3')] });
    for (const r of [C, D]) {
      const granted = await waitFor(async () => {
        for (const req of uUnder) if (!(await answer(r, req)).allowed) return false;
        return true;
      }, 1200, 10);
      expect(granted).toBe(true);
    }
    const before = { C: counters(C), D: counters(D) };
    for (const r of [C, D]) {
      for (const req of uElsewhere) {
        const d = await answer(r, req);
        expect(d.allowed).toBe(false);
        expect(REASKED).toContain(d.layer);
      }
      for (const [i, req] of vUnder.entries()) expect(await answer(r, req)).toEqual({ allowed: [true, false][i], layer: 'l1' });
    }
    for (const [r, c] of [[C, before.C], [D, before.D]] as const) {
      const d = since(r, c);
      expect([d.hits, d.engine + d.redis]).toEqual([2, 1]);
    }
  });
});
