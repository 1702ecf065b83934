// Version counters without Redis (one replica): the in-process map is the truth.
//
// Only bumped keys are stored (unknown reads 0, so reads add nothing); node keys and the
// role counter are kept, principals' role keys are swept `roleTtlMs` after their last
// bump (monotonic clock) and read 0 again. Safe because roleTtlMs exceeds the longest
// life of a cached decision counted from when its versions were read (DecisionCache
// enforces it): every entry that recorded 0 before the key's last bump is gone by then,
// and the next bump gives a value it never had (./soundness.ts, V).
import { DEFAULT_ROLE_TTL_MS, keysToIncrement, type VersionStore } from './version-store.js';
import type { VersionKeys } from './version-keys.js';

export interface LocalVersionStoreOptions {
  keys: VersionKeys;
  /**
   * How long a role key is kept after its last bump. Must exceed the longest life of a
   * cached decision (DecisionCache enforces it). Default 15 min.
   */
  roleTtlMs?: number;
  /** Monotonic clock in ms for sweeping role keys (tests replace it). */
  now?: () => number;
}

export class LocalVersionStore implements VersionStore {
  generation = 0;
  seq = 0;
  readonly shared = false;
  readonly keys: VersionKeys;
  readonly roleTtlMs: number;
  private readonly versions = new Map<string, number>();
  /** Role keys by time of their last bump, oldest first. */
  private readonly roleBumpedAt = new Map<string, number>();
  private readonly now: () => number;

  constructor(opts: LocalVersionStoreOptions) {
    this.keys = opts.keys;
    this.roleTtlMs = opts.roleTtlMs ?? DEFAULT_ROLE_TTL_MS;
    if (!(this.roleTtlMs >= 1)) throw new RangeError('roleTtlMs must be at least 1 ms');
    this.now = opts.now ?? (() => performance.now());
  }

  trusted(): boolean {
    return true;
  }

  matches(keys: readonly string[], versions: readonly number[]): boolean {
    for (let i = 0; i < keys.length; i++) {
      if ((this.versions.get(keys[i]!) ?? 0) !== versions[i]) return false;
    }
    return true;
  }

  matchesKey(key: string, version: number): boolean {
    return (this.versions.get(key) ?? 0) === version;
  }

  get size(): number {
    return this.versions.size;
  }

  /** Role keys held (tests). */
  get roleKeysHeld(): number {
    return this.roleBumpedAt.size;
  }

  async read(keys: readonly string[]): Promise<number[]> {
    const out = new Array<number>(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = this.versions.get(keys[i]!) ?? 0;
    return out;
  }

  async bump(keys: readonly string[], roles: ReadonlyArray<readonly [key: string, from: string]> = []): Promise<Array<[string, number]>> {
    const incr = keysToIncrement(keys, roles);
    if (incr.length === 0) return [];
    const updates: Array<[string, number]> = [];
    for (const k of incr) {
      const v = (this.versions.get(k) ?? 0) + 1;
      this.versions.set(k, v);
      updates.push([k, v]);
    }
    const now = this.now();
    for (const [k, from] of roles) {
      const v = this.versions.get(from)!;
      this.versions.set(k, v);
      this.roleBumpedAt.delete(k); // re-inserted last: the map stays ordered by bump time
      this.roleBumpedAt.set(k, now);
      updates.push([k, v]);
    }
    this.sweepRoles(now);
    this.seq++;
    return updates;
  }

  /** Forget role keys last bumped roleTtlMs ago or earlier (they read 0 again). */
  private sweepRoles(now: number): void {
    const cutoff = now - this.roleTtlMs;
    for (const [k, at] of this.roleBumpedAt) {
      if (at > cutoff) break;
      this.roleBumpedAt.delete(k);
      this.versions.delete(k);
    }
  }

  apply(updates: ReadonlyArray<readonly [string, number]>): void {
    for (const [k, v] of updates) {
      const cur = this.versions.get(k);
      if (cur === undefined || v > cur) this.versions.set(k, v);
    }
    this.seq++;
  }

  drop(): void {
    this.versions.clear();
    this.roleBumpedAt.clear();
    this.generation++;
    this.seq++;
  }

  structureVersions(objects: readonly string[]): Promise<number[]> {
    return this.read(objects.map((o) => this.keys.structureKey(o)));
  }

  childVersions(objects: readonly string[]): Promise<number[]> {
    return this.read(objects.map((o) => this.keys.childrenKey(o)));
  }
}
