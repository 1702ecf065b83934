// Wires the decision cache together: versions, hierarchy, L1/L2 authorizer,
// invalidator, pub/sub bus, ReadChanges poller, metrics, and status for /readyz.
//
// Deployment notes (the soundness argument, ./soundness.ts, assumes them):
// - Several gateway processes (replicas, or node:cluster workers) need REDIS_URL:
//   without it each process only hears about other processes' writes from its own
//   ReadChanges poller, i.e. within READCHANGES_POLL_MS, not before the admin API answers.
// - Redis must never evict keys without a TTL (maxmemory-policy noeviction or
//   volatile-*): versions and the poll cursor have none; decisions do.
// - Structural relations are derived from `model` once, here. A new model that
//   changes which relations are structural needs a new DecisionCache (a restart);
//   one that doesn't is handled by re-pinning the id and calling modelChanged().
//   A tuple on a relation this process's model does not define is bumped
//   conservatively (as structural), so a newer model's new relations are covered.
// - All replicas sharing a Redis must run the same version scheme (./version-keys.ts): one
//   that bumped only a node's any-version for a role change (before principal-scoped
//   versions), or a per-node role-version `#r|…` (before one role-version per
//   principal), does not invalidate decisions recorded by one that depends on the
//   principal's role-version `#p|…` and structure-versions. Replace every replica, don't
//   mix them. (Entries an older replica left in Redis are never served stale: a plain
//   subject's entry is believed only if it names that subject's `#p|…` key, and the
//   others depend on any-versions, which every tuple change still bumps. The per-node
//   `#r|…` versions it left in Redis are read by nobody; they have no TTL, so delete
//   them once no older replica runs.)
import type { Registry } from 'prom-client';
import type { Config } from '../config.js';
import type { Authorizer } from '../authz/types.js';
import type { FgaRequestClient } from '../fga/request-client.js';
import { FgaStructureSource, HierarchyResolver, structureOf, type ModelTypes, type StructureSource } from '../fga/hierarchy.js';
import { InvalidationBus, newInstanceId } from './invalidation-bus.js';
import { CachingAuthorizer } from './caching-authorizer.js';
import { VersionInvalidator } from './version-invalidator.js';
import { SharedDecisions } from './shared-decisions.js';
import { DecisionMetrics } from './decision-metrics.js';
import { globalBump, VersionKeys } from './version-keys.js';
import { ParentQuestions } from './parent-questions.js';
import { ReadChangesPoller, type PollerStatus } from './read-changes-poller.js';
import type { Redis } from 'ioredis';
import { RedisLink } from './redis-link.js';
import { assertDecisionModel } from './soundness.js';
import { LocalVersionStore } from './local-version-store.js';
import { RedisVersionStore } from './redis-version-store.js';
import type { VersionStore } from './version-store.js';
import { LocalOwnWrites, ownWriteTtlMs, RedisOwnWrites, type OwnWriteMarkers } from './own-writes.js';

export interface DecisionCacheOptions {
  /** Who answers on a miss: normally an OpenFgaAuthorizer. */
  engine: Authorizer;
  /** Request-path client: structural reads and the ReadChanges poller; optional only with structureSource and poller: false. */
  api?: FgaRequestClient;
  storeId: string;
  /** The pinned model id; read on every check (part of every key). */
  modelId: () => string;
  /** The authorization model (its JSON form): structural relations are derived from it. */
  model: ModelTypes;
  registry: Registry;
  /** Shared Redis; absent = in-process only (one replica). */
  redisUrl?: string;
  /** REDIS_TIMEOUT_MS: request-path budget per Redis round trip. */
  redisTimeoutMs: number;
  /** Budget for background Redis commands (bumps, publish, poller); default max(1000, redisTimeoutMs). */
  redisBackgroundTimeoutMs?: number;
  l1Enabled: boolean;
  l1MaxEntries: number;
  allowTtlS: number;
  denyTtlS: number;
  ttlJitter: number;
  /** READCHANGES_POLL_MS */
  pollMs: number;
  /** Run the ReadChanges poller (default true). */
  poller?: boolean;
  instanceId?: string;
  /** How long tuplesChanged waits for replicas' acks (default 1000). */
  ackTimeoutMs?: number;
  /** Own-heartbeat period (default 250). */
  heartbeatMs?: number;
  /** In-process hits need an own heartbeat younger than this (default = ackTimeoutMs). */
  fenceMs?: number;
  /**
   * Without Redis: how long a principal's role-version is kept in process after its last
   * bump (in Redis they are kept). Must exceed the longest life of a cached decision,
   * max(allowTtlS, denyTtlS) × (1 + ttlJitter), by at least a minute. Default: the larger
   * of 15 minutes and three times that life.
   */
  roleVersionTtlMs?: number;
  /** With Redis: versions kept in process at most (default max(200 000, 2 × l1MaxEntries)). */
  localVersionsMax?: number;
  /**
   * Ask a resource's inherited permission of its contextual parent first and cache it per
   * parent (default true; ./parent-questions.ts).
   */
  parentQuestions?: boolean;
  /**
   * With the in-process layer and Redis: ask the engine alongside the Redis lookup while few
   * lookups find an answer there (CACHE_RACE_LOOKUPS, default true; CachingAuthorizer.racing).
   */
  raceLookups?: boolean;
  /**
   * With Redis: how long a miss waits for another replica that is asking the engine the
   * same question (holds the key's fill lease), and how long such a lease lasts; 0 = no
   * leases (CACHE_FILL_WAIT_MS, default OPENFGA_TIMEOUT_MS; here 1000; CachingAuthorizer.leaseOrWait).
   */
  fillWaitMs?: number;
  /** Replace the OpenFGA structure reader (unit tests, benchmarks). */
  structureSource?: StructureSource;
  /** Optional event log hook (Redis errors, poll errors, resyncs). */
  onEvent?: (event: string, detail: Record<string, unknown>) => void;
}

/** The subset of Config the cache reads. */
export function decisionCacheSettings(config: Config): Pick<
  DecisionCacheOptions,
  'redisUrl' | 'redisTimeoutMs' | 'l1Enabled' | 'l1MaxEntries' | 'allowTtlS' | 'denyTtlS' | 'ttlJitter' | 'pollMs' | 'raceLookups' | 'fillWaitMs'
> {
  return {
    ...(config.REDIS_URL ? { redisUrl: config.REDIS_URL } : {}),
    redisTimeoutMs: config.REDIS_TIMEOUT_MS,
    l1Enabled: config.CACHE_L1_ENABLED,
    l1MaxEntries: config.CACHE_L1_MAX_ENTRIES,
    allowTtlS: config.CACHE_ALLOW_TTL_S,
    denyTtlS: config.CACHE_DENY_TTL_S,
    ttlJitter: config.CACHE_TTL_JITTER,
    pollMs: config.READCHANGES_POLL_MS,
    raceLookups: config.CACHE_RACE_LOOKUPS,
    fillWaitMs: config.CACHE_FILL_WAIT_MS ?? config.OPENFGA_TIMEOUT_MS,
  };
}

export interface DecisionCacheStatus {
  /** 'disabled' without REDIS_URL. */
  redis: 'up' | 'down' | 'disabled';
  /** Invalidation subscriber: 'up' when subscribed and in sync. */
  subscriber: 'up' | 'down' | 'disabled';
  /** Whether in-process entries are being served right now. */
  l1: 'serving' | 'bypassed' | 'disabled';
  l1Entries: number;
  poller: PollerStatus;
  instanceId: string;
}

export class DecisionCache {
  readonly authorizer: CachingAuthorizer;
  readonly invalidator: VersionInvalidator;
  readonly hierarchy: HierarchyResolver;
  readonly metrics: DecisionMetrics;
  readonly versions: VersionStore;
  readonly instanceId: string;
  readonly poller: ReadChangesPoller | undefined;
  private readonly link: RedisLink | undefined;
  private readonly bus: InvalidationBus | undefined;
  private readonly l1Enabled: boolean;
  /**
   * Set when a Redis connection of this replica that had been ready closes; cleared
   * once the global epoch was bumped after the reconnect. While set, no cached decision
   * is served, in process or from Redis. Why: a version bump that failed meanwhile (the
   * admin API then answers invalidation-failed) is missing in Redis, yet a Redis that
   * kept its data (a partition, a restart from persisted data) still holds the decisions
   * and versions from before, which would validate until the ReadChanges poller bumps the
   * write (up to READCHANGES_POLL_MS, or the poll lease's expiry). The epoch bump makes
   * every entry recorded before it unusable, on every replica (see ./soundness.ts, 5).
   */
  private fenced = false;
  private closed = false;
  private unfenceTimer: NodeJS.Timeout | undefined;

  constructor(opts: DecisionCacheOptions) {
    assertDecisionModel(opts.model);
    const api = opts.api;
    if (!api && (opts.poller ?? true)) throw new Error('DecisionCache needs `api` for the ReadChanges poller');
    if (!opts.api && !opts.structureSource) throw new Error('DecisionCache needs `api` (or a structureSource) for structural reads');
    const emit = opts.onEvent ?? (() => {});
    this.instanceId = opts.instanceId ?? newInstanceId();
    this.l1Enabled = opts.l1Enabled;
    const prefix = `tg:${opts.storeId}:`;
    const structure = structureOf(opts.model);
    const keys = new VersionKeys(structure);
    const metrics = (this.metrics = new DecisionMetrics(opts.registry));

    const onRedisError = (op: string, err: unknown) => {
      metrics.redisError(op);
      emit('redis_error', { op, error: err instanceof Error ? err.message : String(err) });
    };
    if (opts.redisUrl) {
      this.link = new RedisLink({
        url: opts.redisUrl,
        hotTimeoutMs: opts.redisTimeoutMs,
        bgTimeoutMs: opts.redisBackgroundTimeoutMs ?? Math.max(1000, opts.redisTimeoutMs),
        name: `tiergate:${this.instanceId.slice(0, 8)}`,
        onError: (conn, err) => onRedisError(`connection_${conn}`, err),
      });
      const syncUp = () => metrics.redisUp(this.link!.up);
      for (const c of [this.link.hot, this.link.bg]) for (const ev of ['ready', 'close', 'end']) c.on(ev, syncUp);
    }
    const ackTimeoutMs = opts.ackTimeoutMs ?? 1000;
    // The longest an entry lives after its versions were read (./caching-authorizer.ts counts its TTL
    // from there): a role-version forgotten without Redis must outlive it (./local-version-store.ts).
    const longestEntryMs = Math.max(opts.allowTtlS, opts.denyTtlS) * 1000 * (1 + opts.ttlJitter);
    const roleTtlMs = opts.roleVersionTtlMs ?? Math.max(15 * 60_000, 3 * longestEntryMs);
    if (!(roleTtlMs >= longestEntryMs + 60_000)) {
      throw new RangeError(`roleVersionTtlMs (${roleTtlMs}) must exceed the longest decision TTL (${longestEntryMs} ms) by at least a minute`);
    }

    let bus: InvalidationBus | undefined;
    const versions: VersionStore = (this.versions = this.link
      ? new RedisVersionStore({
          keys,
          link: this.link,
          prefix: `${prefix}v:`,
          trusted: () => !this.fenced && (bus?.trusted() ?? false),
          onRedisError,
          localMax: opts.localVersionsMax ?? Math.max(200_000, 2 * opts.l1MaxEntries),
        })
      : new LocalVersionStore({ keys, roleTtlMs }));
    const hierarchy = (this.hierarchy = new HierarchyResolver({
      source: opts.structureSource ?? new FgaStructureSource(opts.api!),
      structure,
      versions,
    }));
    const authorizer = (this.authorizer = new CachingAuthorizer({
      engine: opts.engine,
      storeId: opts.storeId,
      modelId: opts.modelId,
      versions,
      hierarchy,
      ...(this.link ? { shared: new SharedDecisions(this.link, `${prefix}d:`, `${prefix}f:`), sharedUp: () => !this.fenced && this.link!.hot.status === 'ready' } : {}),
      l1Enabled: opts.l1Enabled,
      l1MaxEntries: opts.l1MaxEntries,
      allowTtlMs: opts.allowTtlS * 1000,
      denyTtlMs: opts.denyTtlS * 1000,
      ttlJitter: opts.ttlJitter,
      metrics,
      ...((opts.parentQuestions ?? true) ? { parentQuestions: new ParentQuestions(opts.model, structure) } : {}),
      raceLookups: opts.raceLookups ?? true,
      fillWaitMs: opts.fillWaitMs ?? 1000,
    }));
    const dropLocal = () => {
      versions.drop();
      authorizer.clearL1();
      hierarchy.clear();
    };

    let invalidator!: VersionInvalidator;
    if (this.link) {
      bus = this.bus = new InvalidationBus({
        link: this.link,
        prefix,
        instanceId: this.instanceId,
        heartbeatMs: opts.heartbeatMs ?? 250,
        fenceMs: opts.fenceMs ?? ackTimeoutMs,
        ackTimeoutMs,
        onInvalidation: (msg) => invalidator.applyRemote(msg),
        onResync: () => {
          dropLocal();
          metrics.resync();
          emit('resync', {});
        },
        onStateChange: (up) => {
          metrics.subscriberUp(up);
          emit('subscriber', { up });
        },
        onLag: (s) => metrics.pubsubLagSeconds(s),
        onError: onRedisError,
      });
    }
    // Own writes are marked where the poller that reads them looks: in Redis (whichever
    // replica polls), else in this process — and only if it polls.
    const polls = opts.poller ?? true;
    const ownWrites: OwnWriteMarkers | undefined = this.link
      ? new RedisOwnWrites({ link: this.link, prefix: `${prefix}rc:own:`, ttlMs: ownWriteTtlMs(opts.pollMs), scheme: keys.scheme })
      : polls
        ? new LocalOwnWrites(ownWriteTtlMs(opts.pollMs), keys.scheme)
        : undefined;
    invalidator = this.invalidator = new VersionInvalidator({
      versions,
      keys,
      ...(bus ? { bus } : {}),
      metrics,
      onLocalReset: dropLocal,
      ...(ownWrites ? { ownWrites } : {}),
      onMarkerError: onRedisError,
    });

    if (this.link) {
      const link = this.link;
      let everUp = false;
      let lost = 0;
      let unfencing = false;
      const unfence = () => {
        if (!this.fenced || unfencing || this.closed || !link.up) return;
        unfencing = true;
        const seen = lost;
        invalidator
          .bump(globalBump('redis_reconnect'), 'local', false)
          .then(
            () => {
              // Lost again while bumping: that loss needs a bump of its own.
              if (seen === lost) {
                this.fenced = false;
                emit('unfenced', {});
              }
            },
            (err: unknown) => emit('unfence_failed', { error: err instanceof Error ? err.message : String(err) }),
          )
          .finally(() => {
            unfencing = false;
            if (this.fenced && !this.closed) {
              clearTimeout(this.unfenceTimer);
              this.unfenceTimer = setTimeout(unfence, 100);
              this.unfenceTimer.unref();
            }
          });
      };
      for (const c of [link.hot, link.bg]) {
        c.on('ready', () => {
          if (link.up) everUp = true;
          unfence();
        });
        c.on('close', () => {
          if (!everUp || this.closed) return;
          lost++;
          if (!this.fenced) emit('fenced', {});
          this.fenced = true;
        });
      }
    }

    if (polls) {
      this.poller = new ReadChangesPoller({
        changes: api!,
        storeId: opts.storeId,
        intervalMs: opts.pollMs,
        keys,
        invalidator,
        metrics,
        ...(this.link ? { link: this.link } : {}),
        prefix,
        instanceId: this.instanceId,
        ...(ownWrites ? { ownWrites } : {}),
        onError: (err) => emit('poll_error', { error: err instanceof Error ? err.message : String(err) }),
        onMarkerError: (err) => onRedisError('own_write_consume', err),
      });
    }
  }

  /**
   * Subscribe and start polling. Resolves once subscribed, with the request-path
   * connections ready, and the first poll tick ran, or after `waitMs` (a dead Redis or
   * OpenFGA doesn't block the start: the cache then answers from the engine until they
   * come back).
   */
  async start(waitMs = 2000): Promise<void> {
    const deadline = Date.now() + waitMs;
    this.bus?.start();
    if (this.bus) {
      // Subscribed alone is not enough: until the lookup connection is ready too, every
      // check would skip Redis (correct, but not what a started replica should do).
      const ready = () => this.bus!.isSubscribed && this.link!.up;
      while (!ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    }
    if (this.poller) {
      this.poller.start();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.poller.firstTick, new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now()))))]);
      clearTimeout(timer);
    }
  }

  /**
   * The request-path Redis connection (fails fast: no offline queue, REDIS_TIMEOUT_MS),
   * for other request-path counters that share the replicas' Redis (the rate limits);
   * none without REDIS_URL.
   */
  get requestRedis(): Redis | undefined {
    return this.link?.hot;
  }

  status(): DecisionCacheStatus {
    const redis = this.link ? (this.link.up ? 'up' : 'down') : 'disabled';
    const subscriber = this.bus ? (this.bus.isSubscribed ? 'up' : 'down') : 'disabled';
    return {
      redis,
      subscriber,
      l1: this.l1Enabled ? (this.versions.trusted() ? 'serving' : 'bypassed') : 'disabled',
      l1Entries: this.authorizer.l1Size,
      poller: this.poller?.status() ?? { role: 'stopped' },
      instanceId: this.instanceId,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.unfenceTimer);
    await this.poller?.stop();
    this.bus?.close();
    this.link?.close();
  }
}
