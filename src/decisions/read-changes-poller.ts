// Picks up tuple changes made straight in OpenFGA (other tools, scripts, another
// tiergate) from its changelog (ReadChanges) and maps each one to the same version
// bumps as tiergate's own writes.
//
// Several replicas: one polls at a time, holding a lease in Redis (SET NX PX, renewed
// by its holder each tick). Correctness does not rest on the lease, though: a bump is
// an INCR, and bumping a key twice only costs a cache miss, so two pollers overlapping
// (a lease expiring mid-tick) are harmless. The cursor is written after the bumps
// (a crash in between re-reads those changes: bumped again, harmless) and only with
// compare-and-set, so a slow former holder cannot move it backwards.
//
// First run (no cursor in Redis): start from now (minus a small margin for clock skew),
// never replaying history, and bump the global epoch once so entries from before the
// cursor existed can't validate.
//
// tiergate's own writes are in the changelog too. One that its writer announced and then
// bumped fully carries a `done` marker, and is not bumped again (./own-writes.ts says why
// that is sound); every other change is.
import type { FgaRequestClient } from '../fga/request-client.js';
import type { TupleKey } from '../authz/types.js';
import type { VersionInvalidator } from './version-invalidator.js';
import type { DecisionMetrics } from './decision-metrics.js';
import { bumpsFor, globalBump, type VersionKeys } from './version-keys.js';
import type { RedisLink } from './redis-link.js';
import type { OwnWriteMarkers, ReadChange } from './own-writes.js';

const RENEW_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`;

const CAS_CURSOR = `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]); return 1 end
return 0`;

const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface ReadChangesPollerOptions {
  /** The store's changelog (the request-path client's lean ReadChanges: it runs every interval, busy or idle). */
  changes: Pick<FgaRequestClient, 'readChanges'>;
  storeId: string;
  intervalMs: number;
  keys: VersionKeys;
  invalidator: VersionInvalidator;
  metrics: DecisionMetrics;
  /** Absent: in-process cursor (single replica). */
  link?: RedisLink;
  /** Redis key prefix, e.g. `tg:<storeId>:`. */
  prefix: string;
  instanceId: string;
  pageSize?: number;
  /** Pages read per tick at most (the rest next tick). */
  maxPagesPerTick?: number;
  /** How far before "now" a fresh cursor starts (clock skew between us and OpenFGA). */
  startMarginMs?: number;
  /** Marks on tiergate's own writes (absent: every change is bumped). */
  ownWrites?: OwnWriteMarkers;
  onError?: (err: unknown) => void;
  /** Reading the own-write markers failed: the page is bumped in full. */
  onMarkerError?: (err: unknown) => void;
}

export interface PollerStatus {
  role: 'leader' | 'follower' | 'local' | 'stopped';
  lastPollAt?: string;
  lastError?: string;
}

/** Cursor encoding: `c:<continuation token>` or `t:<RFC 3339 start time>`. */
function cursorFromStart(ms: number): string {
  return `t:${new Date(ms).toISOString()}`;
}

export class ReadChangesPoller {
  private readonly opts: ReadChangesPollerOptions;
  private readonly leaseKey: string;
  private readonly cursorKey: string;
  private readonly leaseMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = true;
  private localCursor: string | undefined;
  private role: PollerStatus['role'] = 'stopped';
  private lastPollAt: number | undefined;
  private lastError: string | undefined;
  private ticking: Promise<unknown> = Promise.resolve();
  private firstTickDone!: () => void;
  /** Settles after the first tick (polled, skipped or failed). */
  readonly firstTick = new Promise<void>((r) => (this.firstTickDone = r));

  constructor(opts: ReadChangesPollerOptions) {
    this.opts = opts;
    this.leaseKey = `${opts.prefix}rc:lease`;
    this.cursorKey = `${opts.prefix}rc:cursor`;
    this.leaseMs = Math.max(3 * opts.intervalMs, 3000);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.role = this.opts.link ? 'follower' : 'local';
    // Without Redis the cursor starts now, at start, not at the first tick.
    if (!this.opts.link) this.localCursor ??= cursorFromStart(Date.now() - (this.opts.startMarginMs ?? 5000));
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    if (this.opts.link && this.role === 'leader') {
      await this.opts.link.bg.eval(RELEASE_LEASE, 1, this.leaseKey, this.opts.instanceId).catch((err: unknown) => this.opts.onError?.(err));
    }
    this.role = 'stopped';
  }

  status(): PollerStatus {
    return {
      role: this.role,
      ...(this.lastPollAt !== undefined ? { lastPollAt: new Date(this.lastPollAt).toISOString() } : {}),
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick()
        .catch((err: unknown) => {
          this.lastError = err instanceof Error ? err.message : String(err);
          this.opts.metrics.poll('error');
          this.opts.onError?.(err);
        })
        .finally(() => {
          this.firstTickDone();
          this.schedule(this.opts.intervalMs);
        });
    }, ms);
    this.timer.unref();
  }

  /** One poll: read every new change (up to maxPagesPerTick pages) and bump for it. */
  async tick(): Promise<'ok' | 'skipped'> {
    if (this.running) return 'skipped';
    this.running = true;
    try {
      const cursor = await this.currentCursor();
      if (cursor === undefined) {
        this.opts.metrics.poll('skipped');
        return 'skipped';
      }
      await this.drain(cursor);
      this.lastPollAt = Date.now();
      this.lastError = undefined;
      this.opts.metrics.poll('ok');
      return 'ok';
    } finally {
      this.running = false;
    }
  }

  /** The cursor to read from, or undefined when another replica holds the lease. */
  private async currentCursor(): Promise<string | undefined> {
    const link = this.opts.link;
    if (!link) return this.localCursor!;
    if (!link.up) throw new Error('Redis is not connected: polling resumes when it is');
    const held = await link.bg.eval(RENEW_LEASE, 1, this.leaseKey, this.opts.instanceId, String(this.leaseMs));
    if (Number(held) !== 1) {
      this.role = 'follower';
      return undefined;
    }
    this.role = 'leader';
    const cur = await link.bg.get(this.cursorKey);
    if (cur !== null) return cur;
    const fresh = cursorFromStart(Date.now() - (this.opts.startMarginMs ?? 5000));
    if ((await link.bg.set(this.cursorKey, fresh, 'NX')) === 'OK') {
      await this.opts.invalidator.bump(globalBump('cursor_reset'), 'readchanges', false);
      return fresh;
    }
    return (await link.bg.get(this.cursorKey)) ?? undefined;
  }

  private async saveCursor(from: string, to: string): Promise<boolean> {
    const link = this.opts.link;
    if (!link) {
      this.localCursor = to;
      return true;
    }
    return Number(await link.bg.eval(CAS_CURSOR, 1, this.cursorKey, from, to)) === 1;
  }

  /** Which of `read` are own writes bumped already; none when the markers can't be read. */
  private async ownWrites(read: readonly ReadChange[]): Promise<boolean[]> {
    const markers = this.opts.ownWrites;
    if (markers) {
      try {
        return await markers.consume(read);
      } catch (err) {
        this.opts.onMarkerError?.(err);
      }
    }
    return read.map(() => false);
  }

  private async drain(start: string): Promise<void> {
    const pageSize = this.opts.pageSize ?? 100;
    let cursor = start;
    for (let page = 0; page < (this.opts.maxPagesPerTick ?? 10); page++) {
      const res = await this.opts.changes.readChanges(
        cursor.startsWith('c:') ? { pageSize, continuationToken: cursor.slice(2) } : { pageSize, startTime: cursor.slice(2) },
      );
      const changes = res.changes;
      if (changes.length > 0) {
        const read: ReadChange[] = changes.map((c) => ({ tuple: c.tuple, deleted: c.operation === 'delete' }));
        const own = await this.ownWrites(read);
        const writes: TupleKey[] = [];
        const deletes: TupleKey[] = [];
        read.forEach((c, i) => {
          if (!own[i]) (c.deleted ? deletes : writes).push(c.tuple);
        });
        // Replicas are told, but not waited for: nobody is waiting on this write's answer.
        await this.opts.invalidator.bump(bumpsFor({ writes, deletes }, this.opts.keys), 'readchanges', false);
        const skipped = changes.length - writes.length - deletes.length;
        this.opts.metrics.readChanges('bumped', writes.length + deletes.length);
        if (skipped > 0) this.opts.metrics.readChanges('own_write_skipped', skipped);
        const now = Date.now();
        for (const c of changes) {
          const at = Date.parse(c.timestamp);
          if (Number.isFinite(at)) this.opts.metrics.pollLagSeconds(Math.max(0, now - at) / 1000);
        }
      }
      const next = res.continuationToken ? `c:${res.continuationToken}` : cursor;
      if (next !== cursor) {
        if (!(await this.saveCursor(cursor, next))) return; // someone else moved it: stop, they own it
        cursor = next;
      }
      if (changes.length < pageSize) return;
    }
  }
}
