// Version counters in Redis, the truth shared by every replica; each process keeps a
// bounded copy of the counters it has seen, updated by the invalidation bus.
//
// How many are kept:
//   - in Redis, every version that was ever bumped (role keys included: one per principal
//     that saw a grant or revocation). None has a TTL: with maxmemory-policy
//     volatile-* Redis may evict keys that have one, and a role key evicted before every
//     entry recorded under its old value is gone would let those entries validate again;
//   - in process: a bounded copy in two generations (`cur`, `prev`); lookups promote from
//     `prev`; when `cur` holds half of `localMax`, it becomes `prev` and the old `prev` is
//     forgotten. A forgotten key is just unknown: an in-process entry depending on it does
//     not validate, and the next read fetches it from Redis.
//
// Rules that keep the in-process copy safe:
//   - values only move up (merge = max), so a slow read can't undo a newer message;
//   - every value learnt from the bus is stored, known key or not, so a read that raced
//     with it can't insert the older value afterwards — unless the key was forgotten in
//     between: a read inserts a key it does not find only if no generation was forgotten
//     or no value was applied since the read began (`rotations`, `seq`);
//   - `drop()` (after the subscriber reconnected and may have missed messages) forgets
//     everything and starts a new generation; reads begun before it don't insert.
import type { RedisLink } from './redis-link.js';
import { GLOBAL_KEY, type VersionKeys } from './version-keys.js';
import { keysToIncrement, VersionsUnavailableError, type VersionStore } from './version-store.js';

// Increments KEYS[1..n] (a missing global epoch is created at a time-based value first,
// so it never repeats a value it held before Redis lost its data), then sets each role
// key KEYS[n+j] to the new value of KEYS[ARGV[3+j]] (the role counter).
// ARGV: 1 global key, 2 epoch seed, 3 n, 4.. index of each role key's counter.
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

export interface RedisVersionStoreOptions {
  keys: VersionKeys;
  link: RedisLink;
  /** Redis key prefix, e.g. `tg:<storeId>:v:`. */
  prefix: string;
  /** True while the local copy is known to be current (subscriber in sync). */
  trusted: () => boolean;
  onRedisError?: (op: string, err: unknown) => void;
  /** Versions kept in process at most (default 200 000). */
  localMax?: number;
}

function epochSeed(): string {
  // Microseconds since the epoch: a restarted Redis gets a value the old one never had.
  return String(Date.now() * 1000);
}

export class RedisVersionStore implements VersionStore {
  generation = 0;
  seq = 0;
  readonly shared = true;
  readonly keys: VersionKeys;
  private cur = new Map<string, number>();
  private prev = new Map<string, number>();
  /** Generations forgotten so far. */
  private rotations = 0;
  /** `cur` becomes `prev` at this size. */
  private readonly half: number;
  private readonly link: RedisLink;
  private readonly prefix: string;
  private readonly globalRedisKey: string;
  private readonly isTrusted: () => boolean;
  private readonly onRedisError: (op: string, err: unknown) => void;

  constructor(opts: RedisVersionStoreOptions) {
    this.keys = opts.keys;
    this.link = opts.link;
    this.prefix = opts.prefix;
    this.globalRedisKey = opts.prefix + GLOBAL_KEY;
    this.isTrusted = opts.trusted;
    this.onRedisError = opts.onRedisError ?? (() => {});
    this.half = Math.max(1, Math.floor((opts.localMax ?? 200_000) / 2));
  }

  trusted(): boolean {
    return this.isTrusted();
  }

  matches(keys: readonly string[], versions: readonly number[]): boolean {
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const v = this.cur.get(k) ?? this.promote(k);
      if (v !== versions[i]) return false;
    }
    return true;
  }

  matchesKey(key: string, version: number): boolean {
    return (this.cur.get(key) ?? this.promote(key)) === version;
  }

  get size(): number {
    return this.cur.size + this.prev.size;
  }

  /** The known value of `k`, moved into the current generation; undefined when unknown. */
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

  async read(keys: readonly string[]): Promise<number[]> {
    const out = new Array<number>(keys.length);
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
    const link = this.link;
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

  async bump(keys: readonly string[], roles: ReadonlyArray<readonly [key: string, from: string]> = []): Promise<Array<[string, number]>> {
    const incr = keysToIncrement(keys, roles);
    if (incr.length === 0) return [];
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

  apply(updates: ReadonlyArray<readonly [string, number]>): void {
    for (const [k, v] of updates) {
      const cur = this.known(k);
      if (cur === undefined || v > cur) this.put(k, v);
    }
    this.seq++;
  }

  drop(): void {
    this.cur.clear();
    this.prev.clear();
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
