// The shared layer: decisions in Redis, each stored with the version keys it depends
// on and the versions they had when it was computed. A reader validates those
// against the current versions before believing it.
//
// Fill leases: replicas that miss the same key at the same moment would each ask the
// engine. A lookup that finds no entry takes the key's lease in the same round trip (one
// script: GET, else SET NX PX); the holder asks the engine, writes the entry, and releases
// the lease. Another replica that finds the lease held polls for the holder's entry
// (CachingAuthorizer.lookupShared). A lease only saves engine calls: an entry is served
// after validation whoever wrote it, and a lost or expired lease costs an engine call.
import { randomBytes } from 'node:crypto';
import type { RedisLink } from './redis-link.js';

export interface StoredDecision {
  allowed: boolean;
  /** Version keys the decision depends on. */
  deps: string[];
  /** Their versions, read before the engine was asked. */
  versions: number[];
  /** Date.now() after which it is no longer served (the TTL safety net). */
  expiresAt: number;
}

interface Wire {
  a: 0 | 1;
  d: string[];
  v: number[];
  x: number;
}

export function encodeStored(d: StoredDecision): string {
  const w: Wire = { a: d.allowed ? 1 : 0, d: d.deps, v: d.versions, x: d.expiresAt };
  return JSON.stringify(w);
}

/** Undefined for anything that is not a well-formed entry (treated as a miss). */
export function decodeStored(raw: string): StoredDecision | undefined {
  let w: Partial<Wire>;
  try {
    w = JSON.parse(raw) as Partial<Wire>;
  } catch {
    return undefined; // not ours or corrupted: a miss, never an answer
  }
  if ((w.a !== 0 && w.a !== 1) || !Array.isArray(w.d) || !Array.isArray(w.v) || w.d.length !== w.v.length || typeof w.x !== 'number') {
    return undefined;
  }
  if (!w.d.every((k) => typeof k === 'string') || !w.v.every((n) => typeof n === 'number')) return undefined;
  return { allowed: w.a === 1, deps: w.d, versions: w.v, expiresAt: w.x };
}

/** A stored entry that is well-formed and not past its TTL, else undefined. */
export function unexpiredStored(raw: string): StoredDecision | undefined {
  const d = decodeStored(raw);
  return d && d.expiresAt > Date.now() ? d : undefined;
}

/** A key's fill lease, held by one miss until its fill is done. */
export interface FillLease {
  key: string;
  token: string;
}

/** What one look at a key found. */
export interface SharedLook {
  /** The entry stored there, unless it was the one the caller called unusable. */
  raw: string | undefined;
  /** Without such an entry: the key's lease, taken for the caller, or 'held' by another. */
  lease: FillLease | 'held' | undefined;
}

/**
 * KEYS: the entry, its lease. ARGV: the lease token, its life in ms, the entry the caller
 * found unusable ('' = none). An entry other than that one is returned as it is; otherwise
 * the lease is taken if free. Reply: {entry, 0} | {nil, 1 = taken} | {nil, 2 = held}.
 */
const LOOK_OR_LEASE = `
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[3] then return {v, 0} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {false, 1} end
return {false, 2}`;

/** Deletes the lease only while it is still the caller's (it may have expired and been taken since). */
const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** The scripts, defined on the request-path connection (EVALSHA, EVAL once per connection). */
interface LeaseCommands {
  tiergateLookOrLease(entryKey: string, leaseKey: string, token: string, leaseMs: number, unusable: string): Promise<[string | null, number]>;
  tiergateReleaseLease(leaseKey: string, token: string): Promise<number>;
}

export class SharedDecisions {
  /** Unique to this process: a lease token names its holder. */
  private readonly tokenBase = randomBytes(9).toString('base64url');
  private leases = 0;

  constructor(
    private readonly link: RedisLink,
    /** e.g. `tg:<storeId>:d:` */
    private readonly prefix: string,
    /** e.g. `tg:<storeId>:f:` */
    private readonly leasePrefix: string,
  ) {
    link.hot.defineCommand('tiergateLookOrLease', { numberOfKeys: 2, lua: LOOK_OR_LEASE });
    link.hot.defineCommand('tiergateReleaseLease', { numberOfKeys: 1, lua: RELEASE_LEASE });
  }

  /** The entry stored at `key` as it is (read with unexpiredStored), if any. */
  async get(key: string): Promise<string | undefined> {
    return (await this.link.batched().get(this.prefix + key)) ?? undefined;
  }

  /**
   * The entry at `key`, or, when there is none (or only `unusable`), its lease for `leaseMs`
   * if no one holds it: one round trip.
   */
  async look(key: string, leaseMs: number, unusable = ''): Promise<SharedLook> {
    const token = `${this.tokenBase}.${++this.leases}`;
    const redis = this.link.batched() as unknown as LeaseCommands;
    const [raw, outcome] = await redis.tiergateLookOrLease(this.prefix + key, this.leasePrefix + key, token, Math.max(1, Math.round(leaseMs)), unusable);
    if (outcome === 0 && raw !== null) return { raw, lease: undefined };
    return { raw: undefined, lease: outcome === 1 ? { key, token } : 'held' };
  }

  /** Gives the lease up (the entry, if any, was written before on the same connection). */
  release(lease: FillLease): Promise<unknown> {
    return (this.link.batched() as unknown as LeaseCommands).tiergateReleaseLease(this.leasePrefix + lease.key, lease.token);
  }

  set(key: string, d: StoredDecision, ttlMs: number): Promise<unknown> {
    return this.link.batched().set(this.prefix + key, encodeStored(d), 'PX', Math.max(1, Math.round(ttlMs)));
  }
}
