// tiergate's own writes are bumped once: the admin API announces a write, bumps it and
// marks it done; the ReadChanges poller, reading it from the changelog, leaves the
// versions alone. Every other change — made straight in OpenFGA, or announced and never
// confirmed — is still bumped by the poller. A real OpenFGA, a real Redis, and the admin
// app writing through a real decision cache; the poller ticks by hand.
import { ClientWriteRequestOnDuplicateWrites } from '@openfga/sdk';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { TupleKey } from '../../src/authz/types.js';
import { markerName, RedisOwnWrites } from '../../src/decisions/own-writes.js';
import { RedisLink } from '../../src/decisions/redis-link.js';
import { createAdminFixture, expectStatus, seedTree, type AdminFixture } from '../support/admin-fixture.js';
import { closeReplicas, startReplica, tuple, type Replica } from '../support/decisions-fixture.js';
import { createTestStore, type TestStore } from '../support/fga.js';
import { waitFor } from '../support/wait.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

// Long enough that no scheduled tick runs during the file: every poll is a tick() below.
const BY_HAND = 3_600_000;

async function polled(r: Replica): Promise<{ bumped: number; skipped: number }> {
  const text = await r.registry.metrics();
  const n = (o: string) => Number(new RegExp(`tiergate_decision_readchanges_changes_total\\{outcome="${o}"\\} (\\d+)`).exec(text)?.[1] ?? NaN);
  return { bumped: n('bumped'), skipped: n('own_write_skipped') };
}

/** Ticks `r`'s poller until it has read `n` more changes; what it made of them. */
async function poll(r: Replica, n: number): Promise<{ bumped: number; skipped: number }> {
  const before = await polled(r);
  const read = async () => {
    const now = await polled(r);
    return now.bumped + now.skipped - before.bumped - before.skipped;
  };
  expect(
    await waitFor(async () => {
      expect(await r.cache.poller!.tick()).toBe('ok');
      return (await read()) >= n;
    }, 5000),
  ).toBe(true);
  const after = await polled(r);
  return { bumped: after.bumped - before.bumped, skipped: after.skipped - before.skipped };
}

/** Ticks until a tick reads nothing new (what was written before is behind the cursor). */
async function pollAll(r: Replica): Promise<void> {
  let last = -1;
  for (;;) {
    expect(await r.cache.poller!.tick()).toBe('ok');
    const { bumped, skipped } = await polled(r);
    if (bumped + skipped === last) return;
    last = bumped + skipped;
  }
}

describe('with Redis: own writes through the admin API', () => {
  let store: TestStore;
  let R: Replica;
  let fx: AdminFixture;
  let redis: Redis;
  const version = async (key: string) => Number((await redis.get(`tg:${store.storeId}:v:${key}`)) ?? 0);
  const marker = (deleted: boolean, t: TupleKey) => `tg:${store.storeId}:rc:own:${markerName(deleted, t)}`;

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    store = await createTestStore({ platformAdmins: ['pat'] });
    R = await startReplica(store, { redisUrl, pollMs: BY_HAND });
    expect(R.cache.status().poller.role).toBe('leader');
    fx = await createAdminFixture({ store, deps: { invalidator: R.cache.invalidator } });
    await seedTree(fx);
    redis = new Redis(redisUrl);
    await pollAll(R);
  });

  afterAll(async () => {
    await closeReplicas(R);
    await fx?.close();
    redis?.disconnect();
  });

  it('a grant is bumped once: the poller skips it and the decision made after it stays cached', async () => {
    const grant = tuple('user:newbie', 'member', 'tenant:emea-sales');
    expectStatus(await fx.call('olivia', 'PUT', '/tenants/emea-sales/roles/member/newbie'), 200);
    expect(await redis.get(marker(false, grant))).toMatch(/^done:/);
    expect(await redis.pttl(marker(false, grant))).toBeGreaterThan(0);

    expect(await R.check('user:newbie', 'can_view', 'tenant:emea-sales')).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(await R.check('user:newbie', 'can_view', 'tenant:emea-sales')).toMatchObject({ allowed: true, layer: 'l1' });
    const before = { role: await version('#p|user:newbie'), node: await version('tenant:emea-sales'), calls: R.engine.calls };
    expect(before.role).toBeGreaterThan(0);

    expect(await poll(R, 1)).toEqual({ bumped: 0, skipped: 1 });
    expect(await version('#p|user:newbie')).toBe(before.role);
    expect(await version('tenant:emea-sales')).toBe(before.node);
    expect(await redis.exists(marker(false, grant), marker(true, grant))).toBe(0);
    expect(await R.check('user:newbie', 'can_view', 'tenant:emea-sales')).toMatchObject({ allowed: true, layer: 'l1' });
    expect(R.engine.calls).toBe(before.calls);
  });

  it('a division move is bumped once: decisions beneath it, asked after the move, stay cached through the poll', async () => {
    const asks = [
      ['user:sam', 'can_view', 'tenant:north-sales', true],
      ['user:dana', 'can_view', 'tenant:north-sales', false], // emea's admin: emea-north moved away from under emea
      ['user:sam', 'can_manage_resources', 'tenant:north-sales', true],
    ] as const;
    expect((await R.check('user:dana', 'can_view', 'tenant:north-sales')).allowed).toBe(true);
    expectStatus(await fx.call('olivia', 'POST', '/divisions/emea-north/move', { parent: 'division:apac' }), 200);
    for (const [user, relation, object, allowed] of asks) {
      expect((await R.check(user, relation, object)).allowed).toBe(allowed);
      expect(await R.check(user, relation, object)).toMatchObject({ allowed, layer: 'l1' });
    }
    const structure = await version('#s|division:emea-north');
    const calls = R.engine.calls;

    expect(await poll(R, 2)).toEqual({ bumped: 0, skipped: 2 }); // the old link's delete and the new one's write
    expect(await version('#s|division:emea-north')).toBe(structure);
    for (const [user, relation, object, allowed] of asks) expect(await R.check(user, relation, object)).toMatchObject({ allowed, layer: 'l1' });
    expect(R.engine.calls).toBe(calls);
  });

  it('the same tuple changed straight in OpenFGA is bumped by the poller', async () => {
    const grant = tuple('user:newbie', 'member', 'tenant:emea-sales');
    expect(await R.check('user:newbie', 'can_view', 'tenant:emea-sales')).toMatchObject({ allowed: true, layer: 'l1' });
    const role = await version('#p|user:newbie');
    await store.client.write({ deletes: [grant] });

    expect(await poll(R, 1)).toEqual({ bumped: 1, skipped: 0 });
    expect(await version('#p|user:newbie')).toBeGreaterThan(role);
    expect(await R.check('user:newbie', 'can_view', 'tenant:emea-sales')).toMatchObject({ allowed: false, layer: 'openfga' });
  });

  it('an own write that left no change behind cannot swallow a later write of the tuple by someone else', async () => {
    const grant = tuple('user:twice', 'member', 'tenant:emea-support');
    await store.client.write({ writes: [grant] });
    expect(await poll(R, 1)).toEqual({ bumped: 1, skipped: 0 });
    // Written again through tiergate: OpenFGA ignores the duplicate, and the write's marker is confirmed.
    const announced = await R.cache.invalidator.announce({ writes: [grant], deletes: [] });
    expect(announced).toBeDefined();
    await store.client.write({ writes: [grant] }, { conflict: { onDuplicateWrites: ClientWriteRequestOnDuplicateWrites.Ignore } });
    await R.cache.invalidator.tuplesChanged({ writes: [grant], deletes: [] }, announced);
    expect(await redis.get(marker(false, grant))).toMatch(/^done:/);

    // Another tool deletes the tuple; the poller bumps that and clears the write's marker.
    await store.client.write({ deletes: [grant] });
    expect(await poll(R, 1)).toEqual({ bumped: 1, skipped: 0 });
    expect(await redis.exists(marker(false, grant))).toBe(0);
    expect(await R.check('user:twice', 'can_view', 'tenant:emea-support')).toMatchObject({ allowed: false, layer: 'openfga' });
    expect(await R.check('user:twice', 'can_view', 'tenant:emea-support')).toMatchObject({ allowed: false, layer: 'l1' });

    // And writes it again: bumped, so the cached denial goes.
    await store.client.write({ writes: [grant] });
    expect(await poll(R, 1)).toEqual({ bumped: 1, skipped: 0 });
    expect(await R.check('user:twice', 'can_view', 'tenant:emea-support')).toMatchObject({ allowed: true, layer: 'openfga' });
  });

  it('an announced write that was never confirmed (its bump failed, say) is bumped by the poller', async () => {
    const grant = tuple('user:unconfirmed', 'admin', 'tenant:apac-sales');
    const announced = await R.cache.invalidator.announce({ writes: [grant], deletes: [] });
    expect(announced).toBeDefined();
    expect(await redis.get(marker(false, grant))).toBe(`pending:${announced!.id}`);
    expect(await R.check('user:unconfirmed', 'can_view', 'tenant:apac-sales')).toMatchObject({ allowed: false, layer: 'openfga' });
    await store.client.write({ writes: [grant] });
    const role = await version('#p|user:unconfirmed');

    expect(await poll(R, 1)).toEqual({ bumped: 1, skipped: 0 });
    expect(await version('#p|user:unconfirmed')).toBeGreaterThan(role);
    expect(await redis.exists(marker(false, grant))).toBe(0);
    expect((await R.check('user:unconfirmed', 'can_view', 'tenant:apac-sales')).allowed).toBe(true);
  });

  it('a write confirmed under another version scheme (a replica on another model) is bumped by the poller', async () => {
    const link = new RedisLink({ url: inject('redisUrl'), hotTimeoutMs: 500, name: 'other-model' });
    try {
      expect(await waitFor(() => link.up, 3000)).toBe(true);
      const other = new RedisOwnWrites({ link, prefix: `tg:${store.storeId}:rc:own:`, ttlMs: 60_000, scheme: 'another-model' });
      const change = { writes: [tuple('user:elsewhere', 'member', 'tenant:apac-sales')], deletes: [] };
      await other.announce(change, 'w1');
      await store.client.write(change);
      await other.confirm(change, 'w1');
      expect(await redis.get(marker(false, change.writes[0]!))).toBe('done:another-model:w1');
      const role = await version('#p|user:elsewhere');
      expect(await poll(R, 1)).toEqual({ bumped: 1, skipped: 0 });
      expect(await version('#p|user:elsewhere')).toBeGreaterThan(role);
    } finally {
      link.close();
    }
  });

  it('a write bumped by a writer that did not announce it is bumped by the poller too', async () => {
    const revoke = { writes: [], deletes: [tuple('user:unconfirmed', 'admin', 'tenant:apac-sales')] };
    await store.client.write(revoke);
    await R.cache.invalidator.tuplesChanged(revoke);
    const role = await version('#p|user:unconfirmed');
    expect(await poll(R, 1)).toEqual({ bumped: 1, skipped: 0 });
    expect(await version('#p|user:unconfirmed')).toBeGreaterThan(role);
  });
});

describe('without Redis: the marks live in the process that writes and polls', () => {
  let store: TestStore;
  let L: Replica;
  beforeAll(async () => {
    store = await createTestStore();
    L = await startReplica(store, { pollMs: BY_HAND });
    expect(L.cache.status().poller.role).toBe('local');
  });
  afterAll(() => closeReplicas(L));

  it('skips its own confirmed write and bumps one made straight in OpenFGA', async () => {
    const change = { writes: [tuple('user:solo', 'member', 'tenant:s1')], deletes: [] };
    const announced = await L.cache.invalidator.announce(change);
    expect(announced).toBeDefined();
    await store.client.write(change);
    await L.cache.invalidator.tuplesChanged(change, announced);
    const role = (await L.cache.versions.read(['#p|user:solo']))[0]!;
    expect(await poll(L, 1)).toEqual({ bumped: 0, skipped: 1 });
    expect((await L.cache.versions.read(['#p|user:solo']))[0]).toBe(role);

    await store.client.write({ writes: [], deletes: change.writes });
    expect(await poll(L, 1)).toEqual({ bumped: 1, skipped: 0 });
    expect((await L.cache.versions.read(['#p|user:solo']))[0]).toBeGreaterThan(role);
  });
});
