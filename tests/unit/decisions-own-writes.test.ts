// Own-write markers (src/decisions/own-writes.ts) without Redis: the in-process marker
// store in every order a writer and the ReadChanges poller can meet in, and the poller
// skipping (or not) a page of changes read from a stand-in changelog.
import type { FgaRequestClient } from '../../src/fga/request-client.js';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { structureOf, tuplesetsOf } from '../../src/fga/hierarchy.js';
import { loadModel } from '../../src/fga/model.js';
import type { TupleChange, TupleKey } from '../../src/authz/types.js';
import { VersionKeys } from '../../src/decisions/version-keys.js';
import { LocalVersionStore } from '../../src/decisions/local-version-store.js';
import { VersionInvalidator } from '../../src/decisions/version-invalidator.js';
import { DecisionMetrics } from '../../src/decisions/decision-metrics.js';
import { ReadChangesPoller } from '../../src/decisions/read-changes-poller.js';
import type { InvalidationBus } from '../../src/decisions/invalidation-bus.js';
import { LocalOwnWrites, markerName, ownWriteTtlMs, type OwnWriteMarkers, type ReadChange } from '../../src/decisions/own-writes.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

const keys = new VersionKeys(structureOf(loadModel().request));
const t = (user: string, relation: string, object: string): TupleKey => ({ user, relation, object });
const grant = t('user:ann', 'admin', 'tenant:t1');
const write = (...w: TupleKey[]): TupleChange => ({ writes: w, deletes: [] });
const remove = (...d: TupleKey[]): TupleChange => ({ writes: [], deletes: d });
const readW = (tuple: TupleKey): ReadChange => ({ tuple, deleted: false });
const readD = (tuple: TupleKey): ReadChange => ({ tuple, deleted: true });

function markers(ttlMs = 1000) {
  let clock = 0;
  const m = new LocalOwnWrites(ttlMs, keys.scheme, () => clock);
  return { m, advance: (ms: number) => (clock += ms) };
}

describe('LocalOwnWrites (the marker store without Redis)', () => {
  it('skips a change only once its writer confirmed, and only once', async () => {
    const { m } = markers();
    await m.announce(write(grant), 'a');
    await m.confirm(write(grant), 'a');
    expect(await m.consume([readW(grant)])).toEqual([true]);
    // consumed: the same change read again (a re-read page) is bumped
    expect(await m.consume([readW(grant)])).toEqual([false]);
    expect(m.size).toBe(0);
  });

  it('never skips a pending marker, and a confirm after the poller took it changes nothing', async () => {
    const { m } = markers();
    await m.announce(write(grant), 'a');
    expect(await m.consume([readW(grant)])).toEqual([false]); // read before the writer's bump finished
    await m.confirm(write(grant), 'a');
    expect(m.size).toBe(0);
    expect(await m.consume([readW(grant)])).toEqual([false]);
  });

  it('skips nothing for a change that was never announced, or announced and not confirmed', async () => {
    const { m } = markers();
    expect(await m.consume([readW(grant), readD(grant)])).toEqual([false, false]);
    await m.announce(remove(grant), 'a');
    expect(await m.consume([readD(grant)])).toEqual([false]);
  });

  it('matches the operation: a confirmed write does not skip a delete of the tuple, and is cleared by it', async () => {
    const { m } = markers();
    await m.announce(write(grant), 'a');
    await m.confirm(write(grant), 'a');
    // Someone else deleted the tuple and wrote it again; the announced write itself was a
    // duplicate OpenFGA ignored, so the changelog holds only their delete and write.
    expect(await m.consume([readD(grant), readW(grant)])).toEqual([false, false]);
  });

  it('clears the marker of the other operation: a leftover write marker cannot swallow a later write', async () => {
    const { m } = markers();
    await m.announce(write(grant), 'a');
    await m.confirm(write(grant), 'a');
    expect(await m.consume([readD(grant)])).toEqual([false]); // the delete, read on its own page
    expect(await m.consume([readW(grant)])).toEqual([false]); // the later write: bumped
  });

  it('reads a page in changelog order: a write and a delete of the same tuple by the writer', async () => {
    const { m } = markers();
    await m.announce(write(grant), 'a');
    await m.confirm(write(grant), 'a');
    await m.announce(remove(grant), 'b');
    await m.confirm(remove(grant), 'b');
    // The write consumes both markers; the delete is then bumped (a cost, never a miss).
    expect(await m.consume([readW(grant), readD(grant)])).toEqual([true, false]);
  });

  it("does not confirm another writer's marker: the last announce owns it", async () => {
    const { m } = markers();
    await m.announce(write(grant), 'a');
    await m.announce(write(grant), 'b');
    await m.confirm(write(grant), 'a');
    expect(await m.consume([readW(grant)])).toEqual([false]);

    await m.announce(write(grant), 'a');
    await m.confirm(write(grant), 'a');
    await m.announce(write(grant), 'b'); // back to pending: b has not bumped yet
    expect(await m.consume([readW(grant)])).toEqual([false]);
  });

  it('confirms only the tuples of the change it is given', async () => {
    const { m } = markers();
    const other = t('user:bob', 'member', 'tenant:t1');
    await m.announce(write(grant, other), 'a');
    await m.confirm(write(grant), 'a');
    expect(await m.consume([readW(grant), readW(other)])).toEqual([true, false]);
  });

  it('forgets markers after their TTL, confirmed or not, and keeps the TTL on confirm', async () => {
    const { m, advance } = markers(1000);
    await m.announce(write(grant), 'a');
    advance(600);
    await m.confirm(write(grant), 'a');
    advance(400);
    expect(await m.consume([readW(grant)])).toEqual([false]);
    // expired and swept: memory stays bounded by what was announced within one TTL
    await m.announce(write(t('user:x', 'member', 'tenant:t1')), 'b');
    advance(1000);
    await m.announce(write(t('user:y', 'member', 'tenant:t1')), 'c');
    expect(m.size).toBe(1);
  });

  it('tells tuples apart whatever their ids contain', () => {
    expect(markerName(false, t('user:a|admin', 'x', 'tenant:t'))).not.toBe(markerName(false, t('user:a', 'admin|x', 'tenant:t')));
    expect(markerName(false, grant)).not.toBe(markerName(true, grant));
  });

  it('names the version scheme: the same for the same model, another when a relation changes kind', () => {
    const model = loadModel().request;
    expect(new VersionKeys(structureOf(model)).scheme).toBe(keys.scheme);
    // `tenant#division` no longer followed by any rewrite: a role relation, bumped differently.
    const flattened = structuredClone(model);
    for (const td of flattened.type_definitions) {
      for (const [name, rewrite] of Object.entries(td.relations ?? {})) {
        if (tuplesetsOf(rewrite).includes('division')) td.relations![name] = { this: {} };
      }
    }
    expect(new VersionKeys(structureOf(flattened)).scheme).not.toBe(keys.scheme);
    expect(new VersionKeys(structureOf(model), 512).scheme).not.toBe(keys.scheme);
  });

  it('lives at least a minute, and ten poll intervals', () => {
    expect(ownWriteTtlMs(1000)).toBe(60_000);
    expect(ownWriteTtlMs(30_000)).toBe(300_000);
  });
});

/** A changelog stand-in: each readChanges call answers, in order, every change made since the last. */
class Changelog {
  private unread: ReadChange[] = [];
  private token = 0;
  push(...changes: ReadChange[]): void {
    this.unread.push(...changes);
  }
  /** What FgaRequestClient.readChanges answers: everything unread, and a token to go on from. */
  feed(): Pick<FgaRequestClient, 'readChanges'> {
    return {
      readChanges: async () => {
        const page = this.unread.splice(0);
        if (page.length > 0) this.token++;
        return {
          changes: page.map((c) => ({ tuple: c.tuple, operation: c.deleted ? ('delete' as const) : ('write' as const), timestamp: new Date().toISOString() })),
          continuationToken: `tok${this.token}`,
        };
      },
    };
  }
}

const pollers: ReadChangesPoller[] = [];
afterEach(async () => {
  for (const p of pollers.splice(0)) await p.stop();
});

async function setup(opts: { ownWrites?: OwnWriteMarkers; bus?: InvalidationBus } = {}) {
  const registry = new Registry();
  const metrics = new DecisionMetrics(registry);
  const versions = new LocalVersionStore({ keys });
  const ownWrites = opts.ownWrites ?? new LocalOwnWrites(60_000, keys.scheme);
  const markerErrors: string[] = [];
  const invalidator = new VersionInvalidator({
    versions,
    keys,
    metrics,
    onLocalReset: () => {},
    ownWrites,
    ...(opts.bus ? { bus: opts.bus } : {}),
    onMarkerError: (op) => markerErrors.push(op),
  });
  const changelog = new Changelog();
  const poller = new ReadChangesPoller({
    changes: changelog.feed(),
    storeId: 's',
    intervalMs: 3_600_000,
    keys,
    invalidator,
    metrics,
    prefix: 'tg:s:',
    instanceId: 'i',
    ownWrites,
    onMarkerError: () => markerErrors.push('own_write_consume'),
  });
  pollers.push(poller);
  poller.start();
  await poller.firstTick;
  const counts = async () => {
    const text = await registry.metrics();
    const n = (o: string) => Number(new RegExp(`readchanges_changes_total\\{outcome="${o}"\\} (\\d+)`).exec(text)?.[1]);
    return { bumped: n('bumped'), skipped: n('own_write_skipped') };
  };
  const roleVersion = async (user: string) => (await versions.read([keys.roleKey(user)]))[0]!;
  /** What the admin API does: announce, write (to the changelog), bump, confirm. */
  const writeThrough = async (change: TupleChange) => {
    const announced = await invalidator.announce(change);
    changelog.push(...change.writes.map(readW), ...change.deletes.map(readD));
    await invalidator.tuplesChanged(change, announced);
  };
  return { versions, invalidator, changelog, poller, counts, roleVersion, writeThrough, markerErrors };
}

describe('ReadChangesPoller with own-write markers', () => {
  it("leaves an own write's versions alone, and counts it", async () => {
    const s = await setup();
    await s.writeThrough(write(grant));
    const after = await s.roleVersion('user:ann');
    expect(after).toBeGreaterThan(0);
    await s.poller.tick();
    expect(await s.roleVersion('user:ann')).toBe(after);
    expect(await s.counts()).toEqual({ bumped: 0, skipped: 1 });
  });

  it('bumps a page with own writes and other changes for the other changes only', async () => {
    const s = await setup();
    const move = { writes: [t('division:d2', 'division', 'tenant:t1')], deletes: [t('division:d1', 'division', 'tenant:t1')] };
    await s.writeThrough(move);
    s.changelog.push(readW(t('user:bob', 'member', 'tenant:t9')));
    const structure = (await s.versions.read([keys.structureKey('tenant:t1')]))[0];
    await s.poller.tick();
    expect((await s.versions.read([keys.structureKey('tenant:t1')]))[0]).toBe(structure);
    expect(await s.roleVersion('user:bob')).toBeGreaterThan(0);
    expect(await s.counts()).toEqual({ bumped: 1, skipped: 2 });
  });

  it('bumps a write read before its writer confirmed it', async () => {
    const s = await setup();
    const announced = await s.invalidator.announce(write(grant));
    s.changelog.push(readW(grant));
    await s.poller.tick(); // the poller is faster than the writer's bump
    const polled = await s.roleVersion('user:ann');
    expect(polled).toBeGreaterThan(0);
    await s.invalidator.tuplesChanged(write(grant), announced);
    expect(await s.roleVersion('user:ann')).toBeGreaterThan(polled);
    expect(await s.counts()).toEqual({ bumped: 1, skipped: 0 });
  });

  it('bumps an announced write that was never confirmed, and one made by another tool', async () => {
    const s = await setup();
    await s.invalidator.announce(write(grant)); // written, then the writer's bump failed
    s.changelog.push(readW(grant), readW(t('user:bob', 'member', 'tenant:t1')));
    await s.poller.tick();
    expect(await s.roleVersion('user:ann')).toBeGreaterThan(0);
    expect(await s.roleVersion('user:bob')).toBeGreaterThan(0);
    expect(await s.counts()).toEqual({ bumped: 2, skipped: 0 });
  });

  it('bumps a delete and a write by another tool after an own write of the same tuple', async () => {
    const s = await setup();
    await s.writeThrough(write(grant));
    s.changelog.push(readD(grant), readW(grant));
    const before = await s.roleVersion('user:ann');
    await s.poller.tick();
    expect(await s.roleVersion('user:ann')).toBeGreaterThan(before);
    expect(await s.counts()).toEqual({ bumped: 2, skipped: 1 });
  });

  it('does not confirm after an ack time-out: the poller bumps again', async () => {
    const bus = { instanceId: 'i', publish: async () => ({ receivers: 2, acked: 1, timedOut: true }) } as unknown as InvalidationBus;
    const s = await setup({ bus });
    await s.writeThrough(write(grant));
    const after = await s.roleVersion('user:ann');
    await s.poller.tick();
    expect(await s.roleVersion('user:ann')).toBeGreaterThan(after);
    expect(await s.counts()).toEqual({ bumped: 1, skipped: 0 });
  });

  it("does not confirm after a failed bump: the writer's call fails, the poller bumps", async () => {
    let publishes = 0;
    const bus = {
      instanceId: 'i',
      publish: async () => {
        if (publishes++ === 0) throw new Error('publish refused'); // the writer's
        return { receivers: 0, acked: 0, timedOut: false };
      },
    } as unknown as InvalidationBus;
    const s = await setup({ bus });
    const announced = await s.invalidator.announce(write(grant));
    s.changelog.push(readW(grant));
    await expect(s.invalidator.tuplesChanged(write(grant), announced)).rejects.toThrow('publish refused');
    const after = await s.roleVersion('user:ann');
    await s.poller.tick();
    expect(await s.roleVersion('user:ann')).toBeGreaterThan(after);
    expect(await s.counts()).toEqual({ bumped: 1, skipped: 0 });
  });

  it('treats marker errors as no marker: announce, confirm and consume never fail the write or the poll', async () => {
    const failing: OwnWriteMarkers = {
      announce: async () => {
        throw new Error('down');
      },
      confirm: async () => {
        throw new Error('down');
      },
      consume: async () => {
        throw new Error('down');
      },
    };
    const s = await setup({ ownWrites: failing });
    expect(await s.invalidator.announce(write(grant))).toBeUndefined();
    s.changelog.push(readW(grant));
    await s.invalidator.tuplesChanged(write(grant), { id: 'forged' });
    const after = await s.roleVersion('user:ann');
    expect(await s.poller.tick()).toBe('ok');
    expect(await s.roleVersion('user:ann')).toBeGreaterThan(after);
    expect(await s.counts()).toEqual({ bumped: 1, skipped: 0 });
    expect(s.markerErrors).toEqual(['own_write_announce', 'own_write_confirm', 'own_write_consume']);
  });

  it('bumps everything for a writer that does not announce', async () => {
    const s = await setup();
    s.changelog.push(readW(grant));
    await s.invalidator.tuplesChanged(write(grant));
    const after = await s.roleVersion('user:ann');
    await s.poller.tick();
    expect(await s.roleVersion('user:ann')).toBeGreaterThan(after);
    expect(await s.counts()).toEqual({ bumped: 1, skipped: 0 });
  });
});
