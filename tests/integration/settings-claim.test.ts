// The gateway's settings claim (src/gateway/settings-claim.ts) on a real database:
// computed once per node and version set, computed again when any document on the
// node's path changes version or the path itself changes, and the assertion signed
// again (with the new claim) when the claim changes.
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateAdmin } from '../../src/admin/app.js';
import { openDb, type Db } from '../../src/db/index.js';
import { LocalVersionStore } from '../../src/decisions/local-version-store.js';
import { GLOBAL_KEY, VersionKeys } from '../../src/decisions/version-keys.js';
import { structureOf } from '../../src/fga/hierarchy.js';
import { loadModel } from '../../src/fga/model.js';
import { createAssertionSigner } from '../../src/gateway/assertion-signer.js';
import { createSettingsClaims } from '../../src/gateway/settings-claim.js';
import { loadRegistry } from '../../src/settings/registry.js';
import { writeDiff } from '../../src/settings/store.js';
import { useCleanup } from '../support/cleanup.js';
import { timersStartedBy } from '../support/timers.js';

useCleanup();

let db: Db;
const versions = new LocalVersionStore({ keys: new VersionKeys(structureOf(loadModel().request)) });
// Nearest first, as HierarchyResolver.ancestors answers; a test moves t1 by changing it
// and bumping t1's structure-version, as a move's write does.
const above: Record<string, string[]> = {
  'tenant:t1': ['division:d1', 'organization:o', 'platform:root'],
  'division:d1': ['organization:o', 'platform:root'],
};
const claims = () =>
  createSettingsClaims({
    db,
    registry: loadRegistry('policy/settings.yaml'),
    hierarchy: {
      ancestors: async (node) => above[node] ?? [],
      // HierarchyResolver.closure: each node's structure-version, read before its parents.
      closure: async ([node]) => {
        const objects = [node!, ...(above[node!] ?? [])];
        return { objects, versions: await versions.structureVersions(objects) };
      },
    },
    versions,
  });

async function write(node: string, key: string, entry: Record<string, unknown>): Promise<void> {
  await writeDiff(db, node, { upserts: { [key]: entry }, deletes: [] }, 'user:test');
  await versions.bump([versions.keys.settingsKey(node)]);
}

beforeAll(async () => {
  db = await openDb({});
  await migrateAdmin(db);
});
afterAll(async () => {
  await db?.close();
});

describe('settings claims', () => {
  it('computes once per version set, again when any node on the path changes', async () => {
    const c = claims();
    const scope = { type: 'tenant' as const, id: 't1' };
    await write('organization:o', 'timezone', { set: 'Europe/Berlin' });
    const first = await c.claimFor(scope);
    expect(first.claim).toMatchObject({ node: 'tenant:t1' });
    expect(first.claim.values.timezone).toBe('Europe/Berlin');
    expect(first.claim.sources.timezone).toBe('organization:o');
    expect(await c.claimFor(scope)).toBe(first);
    expect(c.counts).toEqual({ cached: 1, computed: 1 });

    await write('division:d1', 'quota.agents', { set: 7 });
    const second = await c.claimFor(scope);
    expect(second.claim.values['quota.agents']).toBe(7);
    expect(second.digest).not.toBe(first.digest);

    // A document written without its version bump is not seen until the bump: the
    // cached claim stands for the versions it was read at.
    await writeDiff(db, 'organization:o', { upserts: { locale: { set: 'de-DE' } }, deletes: [] }, 'user:test');
    expect((await c.claimFor(scope)).claim.values.locale).toBe('en-US');
    await versions.bump([versions.keys.settingsKey('organization:o')]);
    expect((await c.claimFor(scope)).claim.values.locale).toBe('de-DE');
    expect(c.counts.computed).toBe(3);
  });

  it('answers from the cache without starting a timer', async () => {
    // Every request reads its claim: a timer per lookup (lru-cache's clock with a
    // ttlResolution) would be one more timer, and one more wake-up, per request.
    const c = claims();
    const scope = { type: 'tenant' as const, id: 't1' };
    const first = await c.claimFor(scope);
    expect(await timersStartedBy(() => c.claimFor(scope), 5)).toBe(0);
    // At hand: no promise to await.
    expect(c.claimFor(scope)).toBe(first);
    expect(c.counts).toEqual({ cached: 6, computed: 1 });
  });

  it("follows a move: the moved node's structure-version makes the cached claim stale", async () => {
    const c = claims();
    const scope = { type: 'tenant' as const, id: 't1' };
    const before = await c.claimFor(scope);
    expect(before.claim.values['quota.agents']).toBe(7);
    expect(await c.claimFor(scope)).toBe(before);
    // The path changes; until its version is bumped the cached claim stands for the versions it was read at.
    above['tenant:t1'] = ['division:d2', 'organization:o', 'platform:root'];
    expect(await c.claimFor(scope)).toBe(before);
    await versions.bump([versions.keys.structureKey('tenant:t1')]);
    const after = await c.claimFor(scope);
    expect(after.claim.values['quota.agents']).toBe(50);
    expect(after.claim.sources['quota.agents']).not.toBe('division:d1');
    expect(c.counts).toEqual({ cached: 2, computed: 2 });
  });

  it("a division's move above the node, the global epoch, and a bump of any node on the path each make the claim stale", async () => {
    const c = claims();
    const scope = { type: 'tenant' as const, id: 't1' };
    const first = await c.claimFor(scope);
    let previous = first;
    for (const key of [versions.keys.structureKey('division:d2'), GLOBAL_KEY, versions.keys.settingsKey('organization:o'), versions.keys.structureKey('platform:root')]) {
      const computed = c.counts.computed;
      await versions.bump([key]);
      const again = await c.claimFor(scope);
      expect(again).not.toBe(previous);
      expect(again.digest).toBe(first.digest);
      expect(c.counts.computed).toBe(computed + 1);
      expect(await c.claimFor(scope)).toBe(again);
      previous = again;
    }
    // A version of a node off the path changes nothing.
    await versions.bump([versions.keys.structureKey('division:d1'), versions.keys.settingsKey('tenant:t2')]);
    const computed = c.counts.computed;
    await c.claimFor(scope);
    expect(c.counts.computed).toBe(computed);
  });

  it('the signer signs again when the claim changes, and the token carries it', async () => {
    const signer = await createAssertionSigner({ audience: 'up', ttlSeconds: 60 });
    const c = claims();
    const scope = { type: 'division' as const, id: 'd1' };
    const a = signer.sign('olivia', scope, ['t1'], 'GET', '/x', await c.claimFor(scope));
    expect(signer.sign('olivia', scope, ['t1'], 'GET', '/x', await c.claimFor(scope))).toBe(a);
    await write('division:d1', 'timezone', { set: 'Asia/Tokyo' });
    const b = signer.sign('olivia', scope, ['t1'], 'GET', '/x', await c.claimFor(scope));
    expect(b).not.toBe(a);
    const { payload } = await jwtVerify(b, createLocalJWKSet(signer.jwks), { audience: 'up' });
    expect(payload.settings).toMatchObject({ node: 'division:d1', values: { timezone: 'Asia/Tokyo' }, sources: { timezone: 'division:d1' } });
  });
});
