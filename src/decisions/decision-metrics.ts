// Decision cache metrics, registered on the Registry the gateway exposes.
// Hot-path counters are plain numbers (an inc() on a labelled prom-client counter
// hashes its labels every call); they are copied into the prom counters at scrape
// time by collect(), and read directly by stats() and the tests.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { countMetric, countsMetric } from '../shared/counts-metric.js';
import { INVALIDATION_KINDS, type InvalidationKind } from './version-keys.js';

export type LookupResult = 'hit' | 'miss' | 'stale' | 'bypass' | 'error';
export type InvalidationSource = 'local' | 'pubsub' | 'readchanges';
/** What the poller did with a change it read: bumped it, or left an own write its writer had bumped. */
export type ReadChangeOutcome = 'bumped' | 'own_write_skipped';
const READ_CHANGE_OUTCOMES: readonly ReadChangeOutcome[] = ['bumped', 'own_write_skipped'];

const RESULTS: readonly LookupResult[] = ['hit', 'miss', 'stale', 'bypass', 'error'];
const LAG_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface DecisionCounts {
  l1: Record<LookupResult, number>;
  redis: Record<LookupResult, number>;
  engine: { allowed: number; denied: number; error: number };
  coalesced: number;
  /** Resource checks asked of the contextual parent first: allowed there (answered), or not (asked as they are). */
  parent: { allowed: number; denied: number };
  /** Engine asked alongside the Redis lookup (CachingAuthorizer.racing; without fill leases only): which answered first. */
  race: { redis: number; openfga: number };
  /**
   * Redis misses by what the key's fill lease made of them (CachingAuthorizer.lookupShared):
   * acquired = this replica asked the engine, the others wait for it; waited_served = another
   * replica was asking, its answer was served; waited_filled = another was asking, no valid
   * answer came in time and this one asked itself.
   */
  lease: { acquired: number; waited_served: number; waited_filled: number };
  /** Checks that asked for strong consistency and skipped the cache. */
  strong: number;
  /** Engine answers not stored: their dependencies could not be read (Redis/OpenFGA trouble, unkeyable input). */
  uncached: number;
}

function zeroLookups(): Record<LookupResult, number> {
  return { hit: 0, miss: 0, stale: 0, bypass: 0, error: 0 };
}

export class DecisionMetrics {
  /** Live counts; the hot path increments these fields directly. */
  readonly counts: DecisionCounts = {
    l1: zeroLookups(),
    redis: zeroLookups(),
    engine: { allowed: 0, denied: 0, error: 0 },
    coalesced: 0,
    parent: { allowed: 0, denied: 0 },
    race: { redis: 0, openfga: 0 },
    lease: { acquired: 0, waited_served: 0, waited_filled: 0 },
    strong: 0,
    uncached: 0,
  };
  private readonly invalidations: Counter<'kind' | 'source'>;
  private readonly resyncs: Counter;
  private readonly ackTimeouts: Counter;
  private readonly redisErrors: Counter<'op'>;
  private readonly pubsubLag: Histogram;
  private readonly pollLag: Histogram;
  private readonly polls: Counter<'outcome'>;
  private readonly polledChanges: Counter<'outcome'>;
  private readonly redisUpGauge: Gauge;
  private readonly subscriberUpGauge: Gauge;

  constructor(registry: Registry, prefix = 'tiergate_decision_') {
    const counts = this.counts;
    const reported = { l1: zeroLookups(), redis: zeroLookups() };
    new Counter({
      name: `${prefix}cache_lookups_total`,
      help: 'Decision cache lookups by layer and result (stale = found but outdated; bypass = layer not trusted or not reachable)',
      labelNames: ['layer', 'result'] as const,
      registers: [registry],
      collect() {
        for (const layer of ['l1', 'redis'] as const) {
          for (const r of RESULTS) {
            const d = counts[layer][r] - reported[layer][r];
            this.inc({ layer, result: r }, d);
            reported[layer][r] += d;
          }
        }
      },
    });
    countsMetric(registry, `${prefix}engine_calls_total`, 'Checks answered by the engine (OpenFGA) on a cache miss, by outcome', 'outcome', counts.engine);
    countMetric(registry, `${prefix}coalesced_total`, 'Checks that waited for an identical in-flight check instead of calling the engine', () => counts.coalesced);
    countsMetric(
      registry,
      `${prefix}parent_answers_total`,
      "Resource checks asked of the resource's contextual parent first, by the parent's answer (allowed = answered by it; denied = then asked of the resource)",
      'outcome',
      counts.parent,
    );
    countsMetric(
      registry,
      `${prefix}races_total`,
      'Misses on which the engine was asked alongside the Redis lookup, by the layer that answered first (redis = an engine call made for nothing)',
      'winner',
      counts.race,
    );
    countsMetric(
      registry,
      `${prefix}fill_leases_total`,
      "Redis misses by the key's fill lease: acquired = this replica asked the engine for all; waited_served = another replica's answer was waited for and served; waited_filled = waited, then asked the engine itself",
      'outcome',
      counts.lease,
    );
    countMetric(registry, `${prefix}strong_total`, 'Checks that asked for strong consistency and went to the engine past the cache', () => counts.strong);
    countMetric(
      registry,
      `${prefix}uncached_total`,
      'Engine answers that were not cached because their dependencies could not be read (Redis or OpenFGA trouble)',
      () => counts.uncached,
    );
    this.invalidations = new Counter({
      name: `${prefix}invalidations_total`,
      help: 'Tuple changes applied to the cache, by kind and where they were learnt from',
      labelNames: ['kind', 'source'] as const,
      registers: [registry],
    });
    // Every kind/source series exists from the start, so dashboards see zeros, not gaps.
    for (const k of INVALIDATION_KINDS) for (const s of ['local', 'pubsub', 'readchanges'] as const) this.invalidations.labels(k, s).inc(0);
    this.resyncs = new Counter({
      name: `${prefix}resyncs_total`,
      help: 'Full drops of the in-process layer after the invalidation subscriber (re)subscribed',
      registers: [registry],
    });
    this.ackTimeouts = new Counter({
      name: `${prefix}invalidation_ack_timeouts_total`,
      help: 'Invalidations some subscribed replica did not acknowledge in time (it fences its in-process layer)',
      registers: [registry],
    });
    this.redisErrors = new Counter({
      name: `${prefix}redis_errors_total`,
      help: 'Failed or timed-out Redis operations by operation',
      labelNames: ['op'] as const,
      registers: [registry],
    });
    this.pubsubLag = new Histogram({
      name: `${prefix}pubsub_lag_seconds`,
      help: 'Time from publishing an invalidation to a replica receiving it',
      buckets: LAG_BUCKETS,
      registers: [registry],
    });
    this.pollLag = new Histogram({
      name: `${prefix}readchanges_lag_seconds`,
      help: 'Time from a tuple change in OpenFGA (changelog timestamp) to the poller applying it',
      buckets: LAG_BUCKETS,
      registers: [registry],
    });
    this.polls = new Counter({
      name: `${prefix}readchanges_polls_total`,
      help: 'ReadChanges poll ticks by outcome (skipped = another replica holds the lease)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    });
    this.polledChanges = new Counter({
      name: `${prefix}readchanges_changes_total`,
      help: "Tuple changes read by the ReadChanges poller, by outcome (own_write_skipped = tiergate's own write, already bumped by its writer)",
      labelNames: ['outcome'] as const,
      registers: [registry],
    });
    for (const o of READ_CHANGE_OUTCOMES) this.polledChanges.labels(o).inc(0);
    this.redisUpGauge = new Gauge({ name: `${prefix}redis_up`, help: '1 when the decision cache Redis connections are ready', registers: [registry] });
    this.subscriberUpGauge = new Gauge({
      name: `${prefix}subscriber_up`,
      help: '1 when the invalidation subscriber is subscribed and in sync (in-process hits allowed)',
      registers: [registry],
    });
  }

  invalidation(kind: InvalidationKind, source: InvalidationSource, n = 1): void {
    this.invalidations.labels(kind, source).inc(n);
  }
  resync(): void {
    this.resyncs.inc();
  }
  ackTimeout(): void {
    this.ackTimeouts.inc();
  }
  redisError(op: string): void {
    this.redisErrors.labels(op).inc();
  }
  pubsubLagSeconds(s: number): void {
    this.pubsubLag.observe(s);
  }
  pollLagSeconds(s: number): void {
    this.pollLag.observe(s);
  }
  poll(outcome: 'ok' | 'error' | 'skipped'): void {
    this.polls.labels(outcome).inc();
  }
  readChanges(outcome: ReadChangeOutcome, n: number): void {
    this.polledChanges.labels(outcome).inc(n);
  }
  redisUp(up: boolean): void {
    this.redisUpGauge.set(up ? 1 : 0);
  }
  subscriberUp(up: boolean): void {
    this.subscriberUpGauge.set(up ? 1 : 0);
  }
}
