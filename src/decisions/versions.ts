// Version counters: the source of truth is Redis (INCR, so monotonic and shared by
// every replica); each process keeps a copy of the counters it has seen, updated by
// the invalidation bus. Without Redis the in-process copy is the truth.
//
// Rules that keep the copy safe to validate against:
//   - values only move up (merge = max), so a slow read can't undo a newer message;
//   - every value learnt from the bus is stored, known key or not, so a read that
//     raced with it can't insert the older value afterwards;
//   - `drop()` (after the subscriber reconnected and may have missed messages)
//     forgets everything and starts a new generation; reads begun before it don't insert.
import type { NodeVersions } from '../fga/hierarchy.js';
import { GLOBAL_KEY, type VersionKeys } from './nodes.js';
import type { RedisLink } from './redis.js';

// Bumps every key atomically; a missing global epoch is created at a time-based
// value first, so it never repeats a value it held before Redis lost its data.
const BUMP_SCRIPT = `
local out = {}
for i, k in ipairs(KEYS) do
  if k == ARGV[1] and redis.call('EXISTS', k) == 0 then redis.call('SET', k, ARGV[2]) end
  out[i] = redis.call('INCR', k)
end
return out`;

const INIT_GLOBAL_SCRIPT = `
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1]); v = ARGV[1] end
return v`;

export class VersionsUnavailableError extends Error {
  override name = 'VersionsUnavailableError';
}

export interface VersionStoreOptions {
  keys: VersionKeys;
  /** Absent: in-process only (one replica), the local copy is authoritative. */
  link?: RedisLink;
  /** Redis key prefix, e.g. `tg:<storeId>:v:`. */
  prefix: string;
  /** True while the local copy is known to be current (subscriber in sync). */
  trusted: () => boolean;
  onRedisError?: (op: string, err: unknown) => void;
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
  private readonly local = new Map<string, number>();
  private readonly link: RedisLink | undefined;
  private readonly prefix: string;
  private readonly globalRedisKey: string;
  private readonly isTrusted: () => boolean;
  private readonly onRedisError: (op: string, err: unknown) => void;

  constructor(opts: VersionStoreOptions) {
    this.keys = opts.keys;
    this.link = opts.link;
    this.prefix = opts.prefix;
    this.globalRedisKey = opts.prefix + GLOBAL_KEY;
    this.isTrusted = opts.link ? opts.trusted : () => true;
    this.onRedisError = opts.onRedisError ?? (() => {});
  }

  get shared(): boolean {
    return this.link !== undefined;
  }

  trusted(): boolean {
    return this.isTrusted();
  }

  /** Hot path: do the locally known versions equal `versions`? Unknown never matches. */
  matches(keys: readonly string[], versions: readonly number[]): boolean {
    for (let i = 0; i < keys.length; i++) {
      if (this.local.get(keys[i]!) !== versions[i]) return false;
    }
    return true;
  }

  /** Number of versions held in process (for status). */
  get size(): number {
    return this.local.size;
  }

  /**
   * Current versions of `keys`. Uses the local copy when trusted, Redis for the rest.
   * Rejects with VersionsUnavailableError when Redis can't answer in time.
   */
  async read(keys: readonly string[]): Promise<number[]> {
    const out = new Array<number>(keys.length);
    if (!this.link) {
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        let v = this.local.get(k);
        if (v === undefined) this.local.set(k, (v = 0));
        out[i] = v;
      }
      return out;
    }
    const trustedAtStart = this.isTrusted();
    const missing: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const v = trustedAtStart ? this.local.get(keys[i]!) : undefined;
      if (v === undefined) missing.push(i);
      else out[i] = v;
    }
    if (missing.length === 0) return out;
    const generation = this.generation;
    const fetched = await this.fetch(missing.map((i) => keys[i]!));
    const insert = trustedAtStart && generation === this.generation && this.isTrusted();
    missing.forEach((i, j) => {
      const k = keys[i]!;
      let v = fetched[j]!;
      if (insert) {
        const cur = this.local.get(k);
        if (cur === undefined || v > cur) this.local.set(k, v);
        else v = cur;
      }
      out[i] = v;
    });
    return out;
  }

  private async fetch(keys: readonly string[]): Promise<number[]> {
    const link = this.link!;
    let raw: (string | null)[];
    try {
      raw = await link.hot.mget(...keys.map((k) => this.prefix + k));
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
        out[g] = Number(await link.hot.eval(INIT_GLOBAL_SCRIPT, 1, this.globalRedisKey, epochSeed()));
      } catch (err) {
        this.onRedisError('init_epoch', err);
        throw new VersionsUnavailableError(`versions unavailable: ${(err as Error).message}`, { cause: err });
      }
    }
    return out;
  }

  /** Increment `keys` (in Redis, or locally without Redis); returns the new values and applies them. */
  async bump(keys: readonly string[]): Promise<Array<[string, number]>> {
    if (keys.length === 0) return [];
    if (!this.link) {
      const updates = keys.map((k): [string, number] => [k, (this.local.get(k) ?? 0) + 1]);
      this.apply(updates);
      return updates;
    }
    let values: unknown;
    try {
      values = await this.link.bg.eval(BUMP_SCRIPT, keys.length, ...keys.map((k) => this.prefix + k), this.globalRedisKey, epochSeed());
    } catch (err) {
      this.onRedisError('bump', err);
      throw new VersionsUnavailableError(`could not bump versions: ${(err as Error).message}`, { cause: err });
    }
    const updates = keys.map((k, i): [string, number] => [k, Number((values as unknown[])[i])]);
    this.apply(updates);
    return updates;
  }

  /** Merge newer values (from a bump or the bus). */
  apply(updates: ReadonlyArray<readonly [string, number]>): void {
    for (const [k, v] of updates) {
      const cur = this.local.get(k);
      if (cur === undefined || v > cur) this.local.set(k, v);
    }
    this.seq++;
  }

  /** Forget every local value (missed messages possible); start a new generation. */
  drop(): void {
    this.local.clear();
    this.generation++;
    this.seq++;
  }

  objectVersions(objects: readonly string[]): Promise<number[]> {
    return this.read(objects.map((o) => this.keys.objectKey(o)));
  }

  childVersions(objects: readonly string[]): Promise<number[]> {
    return this.read(objects.map((o) => this.keys.childrenKey(o)));
  }
}
