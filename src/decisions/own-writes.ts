// Marks on tiergate's own writes, so the ReadChanges poller does not bump them a second time.
//
// A write through tiergate is bumped by its writer (VersionInvalidator.tuplesChanged) before
// the API answers; the poller then reads the same write from the changelog about one poll
// interval later. Bumping it again would invalidate every decision cached between the two
// bumps — after a division move, every question asked in that second beneath it. So the
// writer leaves a marker per (operation, tuple), `w` or `d`:
//   1. before the OpenFGA write, every marker of the change is set to `pending:<id>`, with a
//      TTL, overwriting whatever was there (awaited: a marker set after the write could
//      outlive the change it was meant for);
//   2. after its bump succeeded fully (in Redis, published, every replica's ack in time),
//      each marker still equal to `pending:<id>` becomes `done:<scheme>:<id>`, keeping its
//      TTL; one the poller has already taken stays gone. After a failed bump or an ack
//      time-out nothing is confirmed, and the poller bumps as it would without a marker;
//   3. the poller, for each change it reads, in changelog order, reads the marker of
//      (operation, tuple) and deletes the markers of both operations on that tuple. It skips
//      the change's bump only if the marker read was `done:<its own scheme>:*`.
// Why skipping is sound: a done marker means writer <id> bumped after its write of that
// (operation, tuple) had returned, i.e. after the tuple was in that state. The same
// operation on the same tuple bumps the same versions (bumpsFor depends on the operation
// only for the metric's kind) given the same version scheme (VersionKeys.scheme, named in
// the marker: a poller on another model skips nothing), so the poller's bump would add
// nothing for a change that committed before that bump. And a change read with a done
// marker did: a later change of the same operation on the tuple has the opposite operation
// between them in the changelog, and reading that one deleted the marker, which cannot
// become done for <id> again (<id> is set once, before the write). So a marker left behind
// by a change never read (a duplicate write OpenFGA ignored, a write that failed) cannot
// swallow another tool's later change. `pending` never skips; a marker nobody reads (the
// cursor was reset, which happens only when Redis lost the cursor, and the markers with
// it) dies by its TTL. Any error setting, confirming or reading markers counts as "no
// marker": the poller bumps.
import type { TupleChange, TupleKey } from '../authz/types.js';
import type { RedisLink } from './redis-link.js';

/** One change as the poller reads it from the changelog. */
export interface ReadChange {
  tuple: TupleKey;
  deleted: boolean;
}

export interface OwnWriteMarkers {
  /** Step 1: set every marker of `change` to `pending:<id>`. Rejects if they may not all be set. */
  announce(change: TupleChange, id: string): Promise<void>;
  /** Step 2: markers of `change` still `pending:<id>` become `done:<scheme>:<id>`. */
  confirm(change: TupleChange, id: string): Promise<void>;
  /** Step 3, for a page of changes in changelog order: which of them were confirmed own writes (of this scheme). */
  consume(changes: readonly ReadChange[]): Promise<boolean[]>;
}

/** How long a marker lives: longer than the poller takes to read a change (10 intervals), at least a minute. */
export function ownWriteTtlMs(pollMs: number): number {
  return Math.max(60_000, 10 * pollMs);
}

/** The marker name of (operation, tuple): unambiguous whatever the ids contain. */
export function markerName(deleted: boolean, t: TupleKey): string {
  return `${deleted ? 'd' : 'w'}:${JSON.stringify([t.user, t.relation, t.object])}`;
}

function markersOf(change: TupleChange): string[] {
  return [...change.writes.map((t) => markerName(false, t)), ...change.deletes.map((t) => markerName(true, t))];
}

/** Without Redis: one process writes and polls, so markers live in its memory. */
export class LocalOwnWrites implements OwnWriteMarkers {
  /** Marker → value and expiry; insertion order is expiry order (one TTL, re-inserted on set). */
  private readonly markers = new Map<string, { value: string; expiresAt: number }>();

  private readonly done: string;

  constructor(
    private readonly ttlMs: number,
    /** The version scheme the bumps were made in (VersionKeys.scheme). */
    scheme: string,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.done = `done:${scheme}:`;
  }

  get size(): number {
    return this.markers.size;
  }

  private sweep(now: number): void {
    for (const [k, m] of this.markers) {
      if (m.expiresAt > now) break;
      this.markers.delete(k);
    }
  }

  private live(k: string, now: number): { value: string; expiresAt: number } | undefined {
    const m = this.markers.get(k);
    return m !== undefined && m.expiresAt > now ? m : undefined;
  }

  async announce(change: TupleChange, id: string): Promise<void> {
    const now = this.now();
    this.sweep(now);
    for (const k of markersOf(change)) {
      this.markers.delete(k);
      this.markers.set(k, { value: `pending:${id}`, expiresAt: now + this.ttlMs });
    }
  }

  async confirm(change: TupleChange, id: string): Promise<void> {
    const now = this.now();
    for (const k of markersOf(change)) {
      const m = this.live(k, now);
      if (m?.value === `pending:${id}`) m.value = this.done + id;
    }
  }

  async consume(changes: readonly ReadChange[]): Promise<boolean[]> {
    const now = this.now();
    this.sweep(now);
    return changes.map(({ tuple, deleted }) => {
      const own = this.live(markerName(deleted, tuple), now)?.value.startsWith(this.done) ?? false;
      this.markers.delete(markerName(false, tuple));
      this.markers.delete(markerName(true, tuple));
      return own;
    });
  }
}

// KEYS: the markers. ARGV: 1 value, 2 TTL in ms.
const ANNOUNCE = `
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
return #KEYS`;

// KEYS: the markers. ARGV: 1 the pending value, 2 the done value. The TTL is kept.
const CONFIRM = `
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl > 0 then redis.call('SET', KEYS[i], ARGV[2], 'PX', ttl); n = n + 1 end
  end
end
return n`;

// KEYS: per change, its own marker then the opposite operation's. ARGV: 1 the done prefix
// (`done:<scheme>:`). Returns 1 per confirmed own write.
const CONSUME = `
local out = {}
for i = 1, #KEYS, 2 do
  local v = redis.call('GET', KEYS[i])
  redis.call('DEL', KEYS[i], KEYS[i + 1])
  out[#out + 1] = (v and string.sub(v, 1, #ARGV[1]) == ARGV[1]) and 1 or 0
end
return out`;

export interface RedisOwnWritesOptions {
  link: RedisLink;
  /** Redis key prefix of the markers, e.g. `tg:<storeId>:rc:own:`. */
  prefix: string;
  ttlMs: number;
  /** The version scheme the bumps were made in (VersionKeys.scheme). */
  scheme: string;
}

/** With Redis: every replica writes, one polls; the markers are shared. */
export class RedisOwnWrites implements OwnWriteMarkers {
  constructor(private readonly opts: RedisOwnWritesOptions) {}

  private keys(change: TupleChange): string[] {
    return markersOf(change).map((m) => this.opts.prefix + m);
  }

  async announce(change: TupleChange, id: string): Promise<void> {
    const keys = this.keys(change);
    if (keys.length === 0) return;
    // Not connected: fail now rather than hold the writer's transaction for a time-out.
    if (!this.opts.link.up) throw new Error('Redis is not connected');
    await this.opts.link.bg.eval(ANNOUNCE, keys.length, ...keys, `pending:${id}`, String(this.opts.ttlMs));
  }

  async confirm(change: TupleChange, id: string): Promise<void> {
    const keys = this.keys(change);
    if (keys.length === 0) return;
    await this.opts.link.bg.eval(CONFIRM, keys.length, ...keys, `pending:${id}`, `done:${this.opts.scheme}:${id}`);
  }

  async consume(changes: readonly ReadChange[]): Promise<boolean[]> {
    if (changes.length === 0) return [];
    const keys = changes.flatMap(({ tuple, deleted }) => [this.opts.prefix + markerName(deleted, tuple), this.opts.prefix + markerName(!deleted, tuple)]);
    const out = (await this.opts.link.bg.eval(CONSUME, keys.length, ...keys, `done:${this.opts.scheme}:`)) as unknown[];
    if (!Array.isArray(out) || out.length !== changes.length) throw new Error('unexpected reply to the own-write markers script');
    return out.map((v) => Number(v) === 1);
  }
}
