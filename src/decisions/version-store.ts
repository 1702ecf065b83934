// Version counters, the decision cache's way to tell a cached answer from a stale one.
// Two implementations of one interface: RedisVersionStore (Redis is the truth, shared by
// every replica; each process keeps a bounded copy updated by the invalidation bus) and
// LocalVersionStore (one replica, no Redis: the in-process map is the truth).
//
// Values only grow. A role key (`#p|…`, ./version-keys.ts) is always set to the new value
// of the role counter (`#p`), which the same bump increments and which is never
// forgotten, so it grows too and a non-zero value is never given to it twice — even
// after it was forgotten and read 0 again.
import type { NodeVersions } from '../fga/hierarchy.js';
import type { VersionKeys } from './version-keys.js';

export class VersionsUnavailableError extends Error {
  override name = 'VersionsUnavailableError';
}

export const DEFAULT_ROLE_TTL_MS = 15 * 60_000;

export interface VersionStore extends NodeVersions {
  /** Incremented by drop(): entries and reads from an older generation are void. */
  readonly generation: number;
  /** Incremented whenever any version changes locally (coalescing must not join older flights). */
  readonly seq: number;
  readonly keys: VersionKeys;
  /** True with Redis (versions shared by replicas). */
  readonly shared: boolean;
  /** Number of versions held in process (for status and tests). */
  readonly size: number;
  /** True while the local copy is known to be current (always, without Redis). */
  trusted(): boolean;
  /** Hot path: do the locally known versions equal `versions`? With Redis, unknown never matches. */
  matches(keys: readonly string[], versions: readonly number[]): boolean;
  /** Hot path: `matches` for one key (a principal's role-version). */
  matchesKey(key: string, version: number): boolean;
  /**
   * Current versions of `keys`. With Redis: the local copy when trusted, Redis for the rest;
   * rejects with VersionsUnavailableError when Redis can't answer in time.
   */
  read(keys: readonly string[]): Promise<number[]>;
  /**
   * Increment `keys`, and set each role key in `roles` to the new value of the counter it
   * is paired with (added to `keys` if missing). Returns the new values and applies them.
   */
  bump(keys: readonly string[], roles?: ReadonlyArray<readonly [key: string, from: string]>): Promise<Array<[string, number]>>;
  /** Merge newer values (from a bump or the bus). */
  apply(updates: ReadonlyArray<readonly [string, number]>): void;
  /** Forget every local value (missed messages possible); start a new generation. */
  drop(): void;
}

/** The keys to increment for a bump: `keys` and every role key's counter, once each. */
export function keysToIncrement(keys: readonly string[], roles: ReadonlyArray<readonly [key: string, from: string]>): string[] {
  return [...new Set([...keys, ...roles.map(([, from]) => from)])];
}
