// The version store's memory bounds and the rules that keep them safe, without a real
// Redis: the in-process map (no Redis: the truth, role keys swept after roleTtlMs) and
// the bounded copy kept in front of Redis (a scripted stand-in for the link, so a read
// can be held mid-flight while a bus message and a forgetting happen).
import { describe, expect, it } from 'vitest';
import { structureOf } from '../../src/fga/hierarchy.js';
import { loadModel } from '../../src/fga/model.js';
import { bumpsFor, ROLE_COUNTER_KEY, VersionKeys } from '../../src/decisions/version-keys.js';
import type { RedisLink } from '../../src/decisions/redis-link.js';
import { LocalVersionStore } from '../../src/decisions/local-version-store.js';
import { RedisVersionStore } from '../../src/decisions/redis-version-store.js';
import type { VersionStore } from '../../src/decisions/version-store.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

const keys = new VersionKeys(structureOf(loadModel().request));

describe('LocalVersionStore (without Redis)', () => {
  function store(roleTtlMs = 1000) {
    let clock = 0;
    const versions = new LocalVersionStore({ keys, roleTtlMs, now: () => clock });
    return { versions, advance: (ms: number) => (clock += ms) };
  }
  const grant = (user: string, object: string) => bumpsFor({ writes: [{ user, relation: 'member', object }], deletes: [] }, keys);
  const bump = (v: VersionStore, b: ReturnType<typeof grant>) => v.bump(b.keys, b.roles);

  it('gives a role key the new value of the role counter, and never the same non-zero value twice', async () => {
    const { versions, advance } = store();
    const ru = keys.roleKey('user:u');
    const rv = keys.roleKey('user:v');
    expect(await versions.read([ru])).toEqual([0]);
    await bump(versions, grant('user:u', 'tenant:t1'));
    await bump(versions, grant('user:v', 'tenant:t1'));
    expect(await versions.read(['tenant:t1', ru, rv])).toEqual([2, 1, 2]);
    expect(versions.roleKeysHeld).toBe(2);

    // u's key is swept once roleTtlMs old (on the next bump), v's too a bit later
    advance(600);
    await bump(versions, grant('user:v', 'tenant:t1'));
    advance(500);
    await bump(versions, grant('user:w', 'tenant:t9'));
    expect(await versions.read([ru, rv])).toEqual([0, 3]);
    expect(versions.roleKeysHeld).toBe(2); // v (bumped 500 ms ago) and w
    expect(versions.matches([ru], [1])).toBe(false); // an entry recorded before the sweep
    expect(versions.matches([ru], [0])).toBe(true);

    // bumped again: a value u's key never had (1 was its last), so nothing recorded earlier validates
    await bump(versions, grant('user:u', 'tenant:t1'));
    expect(await versions.read([ru, ROLE_COUNTER_KEY])).toEqual([5, 5]);
    // a grant on another node moves the same key, past every value it had
    await bump(versions, grant('user:u', 'tenant:t9'));
    expect(await versions.read([ru, 'tenant:t1', 'tenant:t9'])).toEqual([6, 4, 2]);
  });

  it('stores nothing for reads, however many principals are read', async () => {
    const { versions } = store();
    const many = Array.from({ length: 1000 }, (_, i) => keys.roleKey(`user:p${i}`));
    expect((await versions.read(many)).every((v) => v === 0)).toBe(true);
    expect(versions.size).toBe(0);
    expect(versions.matches(many, many.map(() => 0))).toBe(true);
  });

  it('keeps node keys (they are bounded by the hierarchy) and the role counter, sweeping only role keys', async () => {
    const { versions, advance } = store(10);
    await bump(versions, bumpsFor({ writes: [{ user: 'division:d1', relation: 'division', object: 'tenant:t1' }], deletes: [] }, keys));
    advance(1000);
    await bump(versions, grant('user:u', 'tenant:t2'));
    advance(1000);
    await bump(versions, grant('user:v', 'tenant:t3'));
    const held = [keys.structureKey('tenant:t1'), 'tenant:t1', '#c|division:d1', ROLE_COUNTER_KEY, keys.roleKey('user:u'), keys.roleKey('user:v')];
    expect(await versions.read(held)).toEqual([1, 1, 1, 2, 0, 2]);
    expect(await versions.read(['tenant:t2'])).toEqual([1]);
  });
});

/** A stand-in for the Redis link: a key/value map behind mget, with reads that can be held. */
class ScriptedLink {
  data = new Map<string, number>();
  private held: Array<() => void> = [];
  holdReads = false;
  mgets = 0;
  readonly hot = {
    mget: async (...ks: string[]): Promise<(string | null)[]> => {
      this.mgets++;
      const snapshot = ks.map((k) => (this.data.has(k) ? String(this.data.get(k)) : null));
      if (this.holdReads) await new Promise<void>((r) => this.held.push(r));
      return snapshot;
    },
    eval: async (): Promise<string> => '1000',
  };
  batched() {
    return this.hot;
  }
  readonly bg = {};
  releaseReads(): void {
    for (const r of this.held.splice(0)) r();
  }
}

describe('RedisVersionStore (bounded in-process copy in front of Redis)', () => {
  function setup(localMax: number) {
    const link = new ScriptedLink();
    const versions = new RedisVersionStore({ keys, link: link as unknown as RedisLink, prefix: 'p:', trusted: () => true, localMax });
    return { link, versions };
  }

  it('holds at most localMax versions; a forgotten one is fetched from Redis again', async () => {
    const { link, versions } = setup(100);
    const many = Array.from({ length: 1000 }, (_, i) => keys.roleKey(`user:p${i}`));
    for (const k of many) link.data.set(`p:${k}`, 7);
    for (const k of many) expect(await versions.read([k])).toEqual([7]);
    expect(versions.size).toBeLessThanOrEqual(100);
    // recent ones are served from memory, early ones are unknown (no L1 match) until read again
    expect(versions.matches([many[999]!], [7])).toBe(true);
    expect(versions.matches([many[0]!], [7])).toBe(false);
    const before = link.mgets;
    expect(await versions.read([many[0]!])).toEqual([7]);
    expect(link.mgets).toBe(before + 1);
    expect(versions.matches([many[0]!], [7])).toBe(true);
  });

  it('keeps keys in use: a key matched in every generation is never forgotten', async () => {
    const { link, versions } = setup(10);
    const hot = keys.roleKey('user:hot');
    link.data.set(`p:${hot}`, 3);
    await versions.read([hot]);
    for (let i = 0; i < 200; i++) {
      await versions.read([keys.roleKey(`user:c${i}`)]);
      expect(versions.matches([hot], [3]), `after ${i}`).toBe(true);
    }
  });

  it('a read racing with a bus update does not insert the older value, even if the key was forgotten meanwhile', async () => {
    const { link, versions } = setup(4); // a generation of 2
    const k = keys.roleKey('user:u');
    link.data.set(`p:${k}`, 5);
    link.holdReads = true;
    const reading = versions.read([k]); // Redis answered 5 …
    await Promise.resolve();
    link.data.set(`p:${k}`, 6); // … then the revoke bumped it to 6 and the bus told us
    versions.apply([[k, 6]]);
    // enough other versions for k to be forgotten (two generations)
    versions.apply([
      ['a', 1],
      ['b', 1],
      ['c', 1],
      ['d', 1],
    ]);
    expect(versions.matches([k], [6])).toBe(false); // forgotten: unknown
    link.holdReads = false;
    link.releaseReads();
    expect(await reading).toEqual([5]); // what Redis said when asked
    // an entry recorded at 5 must not validate: 5 was not stored
    expect(versions.matches([k], [5])).toBe(false);
    expect(await versions.read([k])).toEqual([6]);
    expect(versions.matches([k], [6])).toBe(true);
  });

  it('a read during which keys were forgotten but nothing was applied still inserts what it read', async () => {
    const { link, versions } = setup(4);
    const k = keys.roleKey('user:u');
    link.data.set(`p:${k}`, 5);
    link.holdReads = true;
    const reading = versions.read([k]);
    await Promise.resolve();
    link.holdReads = false;
    for (const o of ['a', 'b', 'c', 'd', 'e']) await versions.read([o]); // forgets a generation, applies nothing
    link.releaseReads();
    expect(await reading).toEqual([5]);
    expect(versions.matches([k], [5])).toBe(true);
  });

  it('drop() forgets everything, and a read begun before it does not insert', async () => {
    const { link, versions } = setup(100);
    const k = keys.roleKey('user:u');
    link.data.set(`p:${k}`, 5);
    await versions.read([k]);
    link.holdReads = true;
    const reading = versions.read([keys.structureKey('tenant:t1')]);
    await Promise.resolve();
    versions.drop();
    link.holdReads = false;
    link.releaseReads();
    await reading;
    expect(versions.size).toBe(0);
    expect(versions.matches([k], [5])).toBe(false);
  });
});
