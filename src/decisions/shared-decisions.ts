// The shared layer: decisions in Redis, each stored with the version keys it depends
// on and the versions they had when it was computed. A reader validates those
// against the current versions before believing it.
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

export class SharedDecisions {
  constructor(
    private readonly link: RedisLink,
    /** e.g. `tg:<storeId>:d:` */
    private readonly prefix: string,
  ) {}

  async get(key: string): Promise<StoredDecision | undefined> {
    const raw = await this.link.batched().get(this.prefix + key);
    if (raw === null) return undefined;
    const d = decodeStored(raw);
    return d && d.expiresAt > Date.now() ? d : undefined;
  }

  set(key: string, d: StoredDecision, ttlMs: number): Promise<unknown> {
    return this.link.batched().set(this.prefix + key, encodeStored(d), 'PX', Math.max(1, Math.round(ttlMs)));
  }
}
