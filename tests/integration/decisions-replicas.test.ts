// Two decision cache instances, each with its own in-process layer, sharing one
// real Redis and one real OpenFGA store: they stand in for two gateway replicas.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decisionKey } from '../../src/decisions/index.js';
import { decodeStored, encodeStored } from '../../src/decisions/shared-decisions.js';
import { createTestStore, type TestStore } from '../support/fga.js';
import {
  resourceCheck,
  closeReplicas,
  startReplica,
  startReplicaPair,
  tuple,
  writeHierarchy,
  writeThrough,
  type Replica,
} from '../support/decisions-fixture.js';
import { waitFor } from '../support/wait.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

let store: TestStore;
let A: Replica;
let B: Replica;
let redis: Redis;

beforeAll(async () => {
  store = await createTestStore();
  await writeHierarchy(store.client);
  const redisUrl = inject('redisUrl');
  // No pollers here: the poller re-bumps writes it reads from the changelog unless their
  // writer announced them (writeThrough here does not), one extra miss each, which would
  // blur the hit counts these tests assert. The ReadChanges tests below run replicas with pollers.
  [A, B] = await startReplicaPair(store, { redisUrl, poller: false });
  redis = new Redis(redisUrl);
});

afterAll(async () => {
  await closeReplicas(A, B);
  redis?.disconnect();
});

describe('decision cache across two replicas', () => {
  it('reports both layers up', () => {
    for (const r of [A, B]) {
      expect(r.cache.status()).toMatchObject({ redis: 'up', subscriber: 'up', l1: 'serving' });
    }
  });

  it('a revoke through replica A is denied by replica B on the very next check', async () => {
    const user = 'user:flipper';
    for (let i = 0; i < 15; i++) {
      await writeThrough(store.client, A, { writes: [tuple(user, 'admin', 'tenant:tB')] });
      // B holds the allow in its in-process layer...
      expect((await B.check(user, 'can_manage_resources', 'tenant:tB')).allowed).toBe(true);
        expect(await B.check(user, 'can_manage_resources', 'tenant:tB')).toMatchObject({ allowed: true, layer: 'l1' });
      // ...until A's revoke resolves: no wait, no poll, the next check denies.
      await writeThrough(store.client, A, { deletes: [tuple(user, 'admin', 'tenant:tB')] });
      expect((await B.check(user, 'can_manage_resources', 'tenant:tB')).allowed).toBe(false);
      expect((await A.check(user, 'can_manage_resources', 'tenant:tB')).allowed).toBe(false);
    }
  });

  it('shares decisions through Redis: a decision computed by A is a Redis hit for B', async () => {
    const req = resourceCheck('user:tBadmin', 'tB', 'queue', 'q-shared');
    expect(await A.cache.authorizer.check(req)).toMatchObject({ allowed: true, layer: 'openfga' });
    const callsBefore = B.engine.calls;
    expect(await B.cache.authorizer.check(req)).toMatchObject({ allowed: true, layer: 'redis' });
    expect(await B.cache.authorizer.check(req)).toMatchObject({ allowed: true, layer: 'l1' });
    expect(B.engine.calls).toBe(callsBefore);
  });

  it('a grant inside tenant A leaves tenant B warm on both replicas (hit counters)', async () => {
    const inB = [resourceCheck('user:tBadmin', 'tB', 'agent', '7'), resourceCheck('user:d2admin', 'tB', 'configuration', 'c1', 'can_write')];
    const inA = resourceCheck('user:newcomer', 'tA', 'agent', '7');
    for (const r of [A, B]) {
      for (const req of inB) expect((await r.cache.authorizer.check(req)).allowed).toBe(true);
      expect((await r.cache.authorizer.check(inA)).allowed).toBe(false);
    }
    const hitsBefore = { A: A.cache.metrics.counts.l1.hit, B: B.cache.metrics.counts.l1.hit };
    const engineBefore = { A: A.engine.calls, B: B.engine.calls };

    await writeThrough(store.client, A, { writes: [tuple('user:newcomer', 'member', 'tenant:tA')] });

    for (const r of [A, B]) {
      for (const req of inB) expect(await r.cache.authorizer.check(req)).toMatchObject({ allowed: true, layer: 'l1' });
    }
    expect(A.cache.metrics.counts.l1.hit - hitsBefore.A).toBe(2);
    expect(B.cache.metrics.counts.l1.hit - hitsBefore.B).toBe(2);
    expect(A.engine.calls).toBe(engineBefore.A);
    expect(B.engine.calls).toBe(engineBefore.B);
    // while tenant A's decision was invalidated and now allows
    expect((await B.cache.authorizer.check(inA)).allowed).toBe(true);
  });

  it('moving a tenant to another division takes effect for the old and the new division admins', async () => {
    const asks = [
      ['user:d2admin', 'can_manage_resources', 'tenant:tB'],
      ['user:d3admin', 'can_manage_resources', 'tenant:tB'],
      ['user:d1admin', 'can_manage_resources', 'tenant:tB'],
    ] as const;
    for (const r of [A, B]) {
      expect((await r.check(...asks[0])).allowed).toBe(true);
      expect((await r.check(...asks[1])).allowed).toBe(false);
      expect((await r.check(...asks[2])).allowed).toBe(true);
      expect((await r.cache.authorizer.check(resourceCheck('user:d3admin', 'tB', 'agent', '1'))).allowed).toBe(false);
    }
    await writeThrough(store.client, A, {
      deletes: [tuple('division:d2', 'division', 'tenant:tB')],
      writes: [tuple('division:d3', 'division', 'tenant:tB')],
    });
    for (const r of [B, A]) {
      expect((await r.check(...asks[0])).allowed).toBe(false);
      expect((await r.check(...asks[1])).allowed).toBe(true);
      expect((await r.check(...asks[2])).allowed).toBe(false); // d1 was above d2, not above d3
      expect((await r.cache.authorizer.check(resourceCheck('user:d3admin', 'tB', 'agent', '1'))).allowed).toBe(true);
    }
    expect(await B.cache.hierarchy.ancestors('tenant:tB')).toEqual(['division:d3', 'organization:o1', 'platform:root']);
    expect((await B.cache.hierarchy.tenantsUnder('division:d3')).sort()).toEqual(['tenant:tB', 'tenant:tC']);
    // and back, so the other tests keep their hierarchy
    await writeThrough(store.client, B, {
      deletes: [tuple('division:d3', 'division', 'tenant:tB')],
      writes: [tuple('division:d2', 'division', 'tenant:tB')],
    });
    expect((await A.check(...asks[0])).allowed).toBe(true);
    expect((await A.check(...asks[1])).allowed).toBe(false);
  });

  it('ids crafted to collide under naive concatenation get distinct answers', async () => {
    // tenant "tK" with business id "2/100" and tenant "tK/2" with business id "100"
    // name the same object `agent:tK/2/100`; only the contextual tenant link differs.
    await writeThrough(store.client, A, {
      writes: [tuple('division:d3', 'division', 'tenant:tK'), tuple('division:d3', 'division', 'tenant:tK/2'), tuple('user:kadmin', 'admin', 'tenant:tK')],
    });
    const inK = resourceCheck('user:kadmin', 'tK', 'agent', '2/100');
    const inK2 = resourceCheck('user:kadmin', 'tK/2', 'agent', '100');
    expect(inK.object).toBe(inK2.object);
    expect(`${inK.user}|${inK.relation}|${inK.object}`).toBe(`${inK2.user}|${inK2.relation}|${inK2.object}`);
    expect(decisionKey(store.storeId, store.authorizationModelId, inK)).not.toBe(decisionKey(store.storeId, store.authorizationModelId, inK2));
    for (const r of [A, B]) {
      for (let i = 0; i < 2; i++) {
        expect((await r.cache.authorizer.check(inK)).allowed).toBe(true);
        expect((await r.cache.authorizer.check(inK2)).allowed).toBe(false);
      }
    }
    // and ids carrying the delimiter itself
    await writeThrough(store.client, A, { writes: [tuple('user:a|can_view', 'admin', 'tenant:tC')] });
    for (const r of [A, B]) {
      for (let i = 0; i < 2; i++) {
        expect((await r.check('user:a|can_view', 'can_view', 'tenant:tC')).allowed).toBe(true);
        expect((await r.check('user:a', 'can_view', 'tenant:tC')).allowed).toBe(false);
      }
    }
  });

  it('coalesces N concurrent identical checks into one engine call', async () => {
    const req = resourceCheck('user:tAadmin', 'tA', 'ivr', 'coalesce-me');
    const before = A.engine.calls;
    const coalescedBefore = A.cache.metrics.counts.coalesced;
    const results = await Promise.all(Array.from({ length: 25 }, () => A.cache.authorizer.check(req)));
    expect(A.engine.calls - before).toBe(1);
    expect(results.every((d) => d.allowed)).toBe(true);
    expect(A.cache.metrics.counts.coalesced - coalescedBefore).toBe(24);
  });

  it("answers a tenant's resources from one OpenFGA check of the tenant, on both replicas", async () => {
    const user = 'user:tAuser';
    const agents = ['fold-1', 'fold-2', 'fold-3', 'fold-4'].map((id) => resourceCheck(user, 'tA', 'agent', id));
    const before = { a: A.engine.calls, b: B.engine.calls, parent: A.cache.metrics.counts.parent.allowed };
    const onA = await Promise.all(agents.map(async (req) => (await A.cache.authorizer.check(req)).allowed));
    expect(onA).toEqual([true, true, true, true]);
    expect(A.engine.calls - before.a).toBe(1);
    expect(A.cache.metrics.counts.parent.allowed - before.parent).toBe(4);
    // B finds the tenant's answer in Redis: no OpenFGA call for any of the four.
    expect((await B.cache.authorizer.check(resourceCheck(user, 'tA', 'agent', 'fold-5'))).layer).toBe('redis');
    expect(B.engine.calls - before.b).toBe(0);
    // A call record, whose can_read is the same tenant permission, is the same decision.
    expect(await A.cache.authorizer.check(resourceCheck(user, 'tA', 'call_record', 'c-77'))).toMatchObject({ allowed: true, layer: 'l1' });
  });

  it('asks the resource itself when the tenant says no: a link stored in OpenFGA still lets its tenant in, and its removal is seen', async () => {
    // tBadmin holds nothing in tA; agent tA/linked also hangs under tB by a stored tuple.
    const link = tuple('tenant:tB', 'tenant', 'agent:tA/linked');
    await writeThrough(store.client, A, { writes: [link] });
    const req = resourceCheck('user:tBadmin', 'tA', 'agent', 'linked', 'can_write');
    const before = A.engine.calls;
    expect(await A.cache.authorizer.check(req)).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(A.engine.calls - before).toBe(2); // the tenant's "no", then the agent's own question
    // That first answer named tB, whose versions were not read before asking: not kept. The
    // next fill follows the stored link first, and is kept.
    expect(await A.cache.authorizer.check(req)).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(await A.cache.authorizer.check(req)).toMatchObject({ allowed: true, layer: 'l1' });
    expect((await A.cache.authorizer.check(resourceCheck('user:tBadmin', 'tA', 'agent', 'unlinked', 'can_write'))).allowed).toBe(false);
    await writeThrough(store.client, A, { deletes: [link] });
    for (const r of [B, A]) expect((await r.cache.authorizer.check(req)).allowed).toBe(false);
  });

  it('stores allows and denials in Redis with their own TTLs (plus jitter)', async () => {
    const allow = resourceCheck('user:tAadmin', 'tA', 'report', 'ttl-allow', 'can_read');
    const deny = resourceCheck('user:tBadmin', 'tA', 'report', 'ttl-deny', 'can_read');
    expect((await A.cache.authorizer.check(allow)).allowed).toBe(true);
    expect((await A.cache.authorizer.check(deny)).allowed).toBe(false);
    const key = (r: typeof allow) => `tg:${store.storeId}:d:${decisionKey(store.storeId, store.authorizationModelId, r)}`;
    // The allow came from the tenant (the report's permission is inherited from it), and is
    // stored under the tenant's question; the denial under the tenant's and the report's.
    const allowedAt = { user: 'user:tAadmin', relation: 'can_read_reports', object: 'tenant:tA', contextualTuples: [] };
    // The write to Redis is fire-and-forget after the answer: wait for it to land.
    expect(await waitFor(async () => (await redis.exists(key(allowedAt), key(deny))) === 2, 2000)).toBe(true);
    expect(await redis.exists(key(allow))).toBe(0);
    const allowTtl = await redis.pttl(key(allowedAt));
    const denyTtl = await redis.pttl(key(deny));
    expect(allowTtl).toBeGreaterThan(250_000);
    expect(allowTtl).toBeLessThanOrEqual(330_000);
    expect(denyTtl).toBeGreaterThan(20_000);
    expect(denyTtl).toBeLessThanOrEqual(33_000);
  });

  it('never believes a Redis entry recorded under per-node role-versions, and replaces it', async () => {
    // An entry as the scheme before one role-version per principal wrote it: the epoch, the
    // path's structure-versions and the user's per-node role-versions (`#r|…`), all at
    // their current values, with an allow that a revocation since has made wrong: that
    // revocation bumped the user's `#p|…`, which the entry does not name.
    const reader = await startReplica(store, { redisUrl: inject('redisUrl'), poller: false, l1Enabled: false });
    try {
      const req = { user: 'user:formerAdmin', relation: 'can_view', object: 'tenant:tB', contextualTuples: [] };
      const redisKey = `tg:${store.storeId}:d:${decisionKey(store.storeId, store.authorizationModelId, req)}`;
      const path = ['tenant:tB', 'division:d2', 'division:d1', 'organization:o1', 'platform:root'];
      const deps = ['#g', ...path.map((n) => `#s|${n}`), ...path.map((n) => `#r|${n.length}:${n}${req.user}`)];
      const versions = await reader.cache.versions.read(deps);
      await redis.set(redisKey, encodeStored({ allowed: true, deps, versions, expiresAt: Date.now() + 60_000 }), 'PX', 60_000);
      const stale = reader.cache.metrics.counts.redis.stale;

      expect(await reader.cache.authorizer.check(req)).toMatchObject({ allowed: false, layer: 'openfga' });
      expect(reader.cache.metrics.counts.redis.stale - stale).toBe(1);
      // the fill wrote the current form over it (fire-and-forget): named by the user's role key, and believed
      expect(await waitFor(async () => decodeStored((await redis.get(redisKey)) ?? '')?.allowed === false, 2000)).toBe(true);
      expect(decodeStored((await redis.get(redisKey))!)!.deps.at(-1)).toBe(`#p|${req.user}`);
      expect(await reader.cache.authorizer.check(req)).toMatchObject({ allowed: false, layer: 'redis' });
    } finally {
      await closeReplicas(reader);
    }
  });

  it('consistency "strong" goes to OpenFGA past both layers', async () => {
    const req = { ...resourceCheck('user:tAadmin', 'tA', 'agent', '5'), consistency: 'strong' as const };
    await A.cache.authorizer.check({ ...req, consistency: 'cached' });
    const before = A.engine.calls;
    expect(await A.cache.authorizer.check(req)).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(A.engine.calls).toBe(before + 1);
  });

  it('exposes its metrics on the registry', async () => {
    const text = await B.registry.metrics();
    expect(text).toMatch(/tiergate_decision_cache_lookups_total\{layer="l1",result="hit"\} [1-9]/);
    expect(text).toMatch(/tiergate_decision_invalidations_total\{kind="role_revoke",source="pubsub"\} [1-9]/);
    expect(text).toMatch(/tiergate_decision_pubsub_lag_seconds_count [1-9]/);
    expect(text).toMatch(/tiergate_decision_redis_up 1/);
  });
});

describe('writes made straight in OpenFGA (ReadChanges pollers)', () => {
  let C: Replica;
  let D: Replica;
  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    [C, D] = await startReplicaPair(store, { redisUrl, pollMs: 200 });
  });
  afterAll(() => closeReplicas(C, D));

  it('one replica holds the poll lease', () => {
    expect([C.cache.status().poller.role, D.cache.status().poller.role].sort()).toEqual(['follower', 'leader']);
  });

  it('a tuple deleted straight in OpenFGA is denied by both replicas within poll interval + 1 s', async () => {
    const user = 'user:direct';
    await store.client.write({ writes: [tuple(user, 'admin', 'tenant:tC')] });
    // the grant made outside tiergate is picked up the same way; wait for it first
    expect(await waitFor(async () => (await C.check(user, 'can_view', 'tenant:tC')).allowed, 2000)).toBe(true);
    expect(await waitFor(async () => (await D.check(user, 'can_view', 'tenant:tC')).allowed, 2000)).toBe(true);
    // once the poller has applied the grant too, both serve it from memory
    for (const r of [C, D]) expect(await waitFor(async () => (await r.check(user, 'can_view', 'tenant:tC')).layer === 'l1', 2000)).toBe(true);

    await store.client.write({ deletes: [tuple(user, 'admin', 'tenant:tC')] });
    const deleted = Date.now();
    const bound = 200 + 1000;
    const [a, b] = await Promise.all(
      [C, D].map((r) => waitFor(async () => !(await r.check(user, 'can_view', 'tenant:tC')).allowed, bound, 10).then((ok) => ({ ok, ms: Date.now() - deleted }))),
    );
    expect(a!.ok).toBe(true);
    expect(b!.ok).toBe(true);
    expect(Math.max(a!.ms, b!.ms)).toBeLessThanOrEqual(bound + 50);
  });

  it('measures the poll lag', async () => {
    const leader = [C, D].find((r) => r.cache.status().poller.role === 'leader')!;
    expect(await leader.registry.metrics()).toMatch(/tiergate_decision_readchanges_lag_seconds_count [1-9]/);
  });
});

describe('without Redis (one process, in-process layer only)', () => {
  let E: Replica;
  beforeAll(async () => {
    E = await startReplica(store, { pollMs: 200 });
  });
  afterAll(async () => {
    await E?.cache.close();
  });

  it('reports Redis disabled and still picks up writes made straight in OpenFGA', async () => {
    expect(E.cache.status()).toMatchObject({ redis: 'disabled', subscriber: 'disabled', l1: 'serving', poller: { role: 'local' } });
    const user = 'user:solo';
    await store.client.write({ writes: [tuple(user, 'member', 'tenant:tC')] });
    expect(await waitFor(async () => (await E.check(user, 'can_view', 'tenant:tC')).layer === 'l1', 3000)).toBe(true);
    await store.client.write({ deletes: [tuple(user, 'member', 'tenant:tC')] });
    expect(await waitFor(async () => !(await E.check(user, 'can_view', 'tenant:tC')).allowed, 1200, 10)).toBe(true);
    // and its own invalidator works synchronously
    await store.client.write({ writes: [tuple(user, 'member', 'tenant:tC')] });
    await E.cache.invalidator.tuplesChanged({ writes: [tuple(user, 'member', 'tenant:tC')], deletes: [] });
    expect((await E.check(user, 'can_view', 'tenant:tC')).allowed).toBe(true);
  });
});
