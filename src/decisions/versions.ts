// Version counters: the source of truth is Redis (shared by every replica); each process
// keeps a bounded copy of the counters it has seen, updated by the invalidation bus.
// Without Redis the in-process map is the truth.
//
// Values only grow. A role key (`#r|…`, ./nodes.ts) is always set to the new value of
// its slot's any-key, which the same bump increments, so it grows too and a non-zero
// value is never given to it twice — even after it was forgotten and read 0 again.
//
// How many are kept:
//   - in Redis, every version that was ever bumped (role keys included: one per principal
//     and slot that saw a grant or revocation). None has a TTL: with maxmemory-policy
//     volatile-* Redis may evict keys that have one, and a role key evicted before every
//     entry recorded under its old value is gone would let those entries validate again;
//   - with Redis, in process: a bounded copy in two generations (`cur`, `prev`); lookups
//     promote from `prev`; when `cur` holds half of `localMax`, it becomes `prev` and the
//     old `prev` is forgotten. A forgotten key is just unknown: an in-process entry
//     depending on it does not validate, and the next read fetches it from Redis;
//   - without Redis, in process (the truth): only bumped keys are stored (unknown reads
//     0, so reads add nothing); node keys are kept, role keys are swept `roleTtlMs` after
//     their last bump (monotonic clock) and read 0 again. Safe because roleTtlMs exceeds
//     the longest life of a cached decision counted from when its versions were read
//     (DecisionCache enforces it): every entry that recorded 0 before the key's last bump
//     is gone by then, and the next bump gives a value it never had (./soundness.ts, V).
//
// Rules that keep the in-process copy safe with Redis:
//   - values only move up (merge = max), so a slow read can't undo a newer message;
//   - every value learnt from the bus is stored, known key or not, so a read that raced
//     with it can't insert the older value afterwards — unless the key was forgotten in
//     between: a read inserts a key it does not find only if no generation was forgotten
//     or no value was applied since the read began (`rotations`, `seq`);
//   - `drop()` (after the subscriber reconnected and may have missed messages) forgets
//     everything and starts a new generation; reads begun before it don't insert.
import type { NodeVersions } from '../fga/hierarchy.js';
import { GLOBAL_KEY, type VersionKeys } from './nodes.js';
import type { RedisLink } from './redis.js';

// Increments KEYS[1..n] (a missing global epoch is created at a time-based value first,
// so it never repeats a value it held before Redis lost its data), then sets each role
// key KEYS[n+j] to the new value of KEYS[ARGV[3+j]].
// ARGV: 1 global key, 2 epoch seed, 3 n, 4.. index of each role key's any-key.
const BUMP_SCRIPT = `
local n = tonumber(ARGV[3])
local out = {}
for i = 1, n do
  local k = KEYS[i]
  if k == ARGV[1] and redis.call('EXISTS', k) == 0 then redis.call('SET', k, ARGV[2]) end
  out[i] = redis.call('INCR', k)
end
for i = n + 1, #KEYS do
  local v = out[tonumber(ARGV[3 + i - n])]
  redis.call('SET', KEYS[i], v)
  out[i] = v
end
return out`;

const INIT_GLOBAL_SCRIPT = `
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1]); v = ARGV[1] end
return v`;

export class VersionsUnavailableError extends Error {
  override name = 'VersionsUnavailableError';
}

export const DEFAULT_ROLE_TTL_MS = 15 * 60_000;

export interface VersionStoreOptions {
  keys: VersionKeys;
  /** Absent: in-process only (one replica), the local map is authoritative. */
  link?: RedisLink;
  /** Redis key prefix, e.g. `tg:<storeId>:v:`. */
  prefix: string;
  /** True while the local copy is known to be current (subscriber in sync). */
  trusted: () => boolean;
  onRedisError?: (op: string, err: unknown) => void;
  /**
   * Without Redis: how long a role key is kept after its last bump. Must exceed the
   * longest life of a cached decision (DecisionCache enforces it). Default 15 min.
   */
  roleTtlMs?: number;
  /** With Redis: versions kept in process at most (default 200 000). */
  localMax?: number;
  /** Monotonic clock in ms for sweeping role keys without Redis (tests replace it). */
  now?: () => number;
}

function epochSeed(): string {
  // Microseconds since the epoch: a restarted Redis gets a value the old one never had.
  return String(Date.now() * 1000);
}

export class VersionStore implements NodeVersions {
  /** Incremented by drop(): entries and reads from an older generation are void. */
  generation = 0;
  /** Incremented whenever any version changes locally (coalescing must not join older flights). */
  seq = 0;
  readonly keys: VersionKeys;
  readonly roleTtlMs: number;
  private cur = new Map<string, number>();
  private prev = new Map<string, number>();
  /** Generations forgotten so far (with Redis). */
  private rotations = 0;
  /** `cur` becomes `prev` at this size (with Redis; never without). */
  private readonly half: number;
  /** Without Redis: role keys by time of their last bump, oldest first. */
  private readonly roleBumpedAt = new Map<string, number>();
  private readonly link: RedisLink | undefined;
  private readonly prefix: string;
  private readonly globalRedisKey: string;
  private readonly isTrusted: () => boolean;
  private readonly onRedisError: (op: string, err: unknown) => void;
  private readonly now: () => number;

  constructor(opts: VersionStoreOptions) {
    this.keys = opts.keys;
    this.link = opts.link;
    this.prefix = opts.prefix;
    this.globalRedisKey = opts.prefix + GLOBAL_KEY;
    this.isTrusted = opts.link ? opts.trusted : () => true;
    this.onRedisError = opts.onRedisError ?? (() => {});
    this.roleTtlMs = opts.roleTtlMs ?? DEFAULT_ROLE_TTL_MS;
    if (!(this.roleTtlMs >= 1)) throw new RangeError('roleTtlMs must be at least 1 ms');
    this.half = opts.link ? Math.max(1, Math.floor((opts.localMax ?? 200_000) / 2)) : Number.POSITIVE_INFINITY;
    this.now = opts.now ?? (() => performance.now());
  }

  get shared(): boolean {
    return this.link !== undefined;
  }

  trusted(): boolean {
    return this.isTrusted();
  }

  /** Hot path: do the locally known versions equal `versions`? With Redis, unknown never matches. */
  matches(keys: readonly string[], versions: readonly number[]): boolean {
    if (this.link === undefined) {
      for (let i = 0; i < keys.length; i++) {
        if ((this.cur.get(keys[i]!) ?? 0) !== versions[i]) return false;
      }
      return true;
    }
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const v = this.cur.get(k) ?? this.promote(k);
      if (v !== versions[i]) return false;
    }
    return true;
  }

  /** Number of versions held in process (for status and tests). */
  get size(): number {
    return this.cur.size + this.prev.size;
  }

  /** With Redis: the known value of `k`, moved into the current generation; undefined when unknown. */
  private known(k: string): number | undefined {
    return this.cur.get(k) ?? this.promote(k);
  }

  private promote(k: string): number | undefined {
    const v = this.prev.get(k);
    if (v !== undefined) {
      this.prev.delete(k);
      this.put(k, v);
    }
    return v;
  }

  private put(k: string, v: number): void {
    this.cur.set(k, v);
    if (this.cur.size >= this.half) {
      this.prev = this.cur;
      this.cur = new Map();
      this.rotations++;
    }
  }

  /**
   * Current versions of `keys`. Uses the local copy when trusted, Redis for the rest.
   * Rejects with VersionsUnavailableError when Redis can't answer in time.
   */
  async read(keys: readonly string[]): Promise<number[]> {
    const out = new Array<number>(keys.length);
    if (!this.link) {
      for (let i = 0; i < keys.length; i++) out[i] = this.cur.get(keys[i]!) ?? 0;
      return out;
    }
    const trustedAtStart = this.isTrusted();
    const missing: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const v = trustedAtStart ? this.known(keys[i]!) : undefined;
      if (v === undefined) missing.push(i);
      else out[i] = v;
    }
    if (missing.length === 0) return out;
    const { generation, seq, rotations } = this;
    const fetched = await this.fetch(missing.map((i) => keys[i]!));
    const insert = trustedAtStart && generation === this.generation && this.isTrusted();
    for (let j = 0; j < missing.length; j++) {
      const i = missing[j]!;
      const k = keys[i]!;
      let v = fetched[j]!;
      if (insert) {
        const cur = this.known(k);
        if (cur !== undefined) {
          if (v > cur) this.put(k, v);
          else v = cur;
        } else if (rotations === this.rotations || seq === this.seq) {
          // Not found: either it was unknown when the read began and no bump of it has
          // been applied since (it would be known now, nothing having been forgotten), or
          // nothing at all was applied since — either way no newer value was learnt.
          this.put(k, v);
        }
      }
      out[i] = v;
    }
    return out;
  }

  private async fetch(keys: readonly string[]): Promise<number[]> {
    const link = this.link!;
    let raw: (string | null)[];
    try {
      raw = await link.batched().mget(...keys.map((k) => this.prefix + k));
    } catch (err) {
      this.onRedisError('mget', err);
      throw new VersionsUnavailableError(`versions unavailable: ${(err as Error).message}`, { cause: err });
    }
    const out = raw.map((v) => (v === null ? 0 : Number(v)));
    const g = keys.indexOf(GLOBAL_KEY);
    if (g >= 0 && raw[g] === null) {
      // Redis lost its data (or this is the first start): the epoch is re-created
      // with a value it never had, so nothing recorded before can validate.
      try {
        out[g] = Number(await link.batched().eval(INIT_GLOBAL_SCRIPT, 1, this.globalRedisKey, epochSeed()));
      } catch (err) {
        this.onRedisError('init_epoch', err);
        throw new VersionsUnavailableError(`versions unavailable: ${(err as Error).message}`, { cause: err });
      }
    }
    return out;
  }

  /**
   * Increment `keys`, and set each role key in `roles` to the new value of the any-key it
   * is paired with (added to `keys` if missing), in Redis or locally without Redis.
   * Returns the new values and applies them.
   */
  async bump(keys: readonly string[], roles: ReadonlyArray<readonly [key: string, from: string]> = []): Promise<Array<[string, number]>> {
    const incr = [...new Set([...keys, ...roles.map(([, from]) => from)])];
    if (incr.length === 0) return [];
    if (!this.link) {
      const updates: Array<[string, number]> = [];
      for (const k of incr) {
        const v = (this.cur.get(k) ?? 0) + 1;
        this.cur.set(k, v);
        updates.push([k, v]);
      }
      const now = this.now();
      for (const [k, from] of roles) {
        const v = this.cur.get(from)!;
        this.cur.set(k, v);
        this.roleBumpedAt.delete(k); // re-inserted last: the map stays ordered by bump time
        this.roleBumpedAt.set(k, now);
        updates.push([k, v]);
      }
      this.sweepRoles(now);
      this.seq++;
      return updates;
    }
    const all = [...incr, ...roles.map(([k]) => k)];
    let values: unknown;
    try {
      values = await this.link.bg.eval(
        BUMP_SCRIPT,
        all.length,
        ...all.map((k) => this.prefix + k),
        this.globalRedisKey,
        epochSeed(),
        String(incr.length),
        ...roles.map(([, from]) => String(incr.indexOf(from) + 1)),
      );
    } catch (err) {
      this.onRedisError('bump', err);
      throw new VersionsUnavailableError(`could not bump versions: ${(err as Error).message}`, { cause: err });
    }
    const updates = all.map((k, i): [string, number] => [k, Number((values as unknown[])[i])]);
    this.apply(updates);
    return updates;
  }

  /** Without Redis: forget role keys last bumped roleTtlMs ago or earlier (they read 0 again). */
  private sweepRoles(now: number): void {
    const cutoff = now - this.roleTtlMs;
    for (const [k, at] of this.roleBumpedAt) {
      if (at > cutoff) break;
      this.roleBumpedAt.delete(k);
      this.cur.delete(k);
    }
  }

  /** Role keys held without Redis (tests). */
  get roleKeysHeld(): number {
    return this.roleBumpedAt.size;
  }

  /** Merge newer values (from a bump or the bus). */
  apply(updates: ReadonlyArray<readonly [string, number]>): void {
    for (const [k, v] of updates) {
      const cur = this.link ? this.known(k) : this.cur.get(k);
      if (cur === undefined || v > cur) this.put(k, v);
    }
    this.seq++;
  }

  /** Forget every local value (missed messages possible); start a new generation. */
  drop(): void {
    this.cur.clear();
    this.prev.clear();
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
