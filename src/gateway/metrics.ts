// Prometheus metrics (prom-client) of the request path; src/server/ serves them on a
// separate listener.
//
// The per-request histograms are LatencyHistograms: prom-client's Histogram.observe
// validates and hashes its label object on every call, while the label sets here are
// few and known (route, method, status; layer; upstream status). A LatencyHistogram keeps one child per
// label set, found once, whose observe() is a bucket search and three additions;
// prom-client reads it like any metric (registry.registerMetric + get()), and the
// node:cluster primary aggregates it across workers (aggregator: sum).
import { collectDefaultMetrics, Counter, Registry, type Metric } from 'prom-client';
import type { UpstreamObserver } from './forward.js';

/** What prom-client's Registry reads from a metric (get()), histogram-shaped. */
interface HistogramSnapshot {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }>;
}

export interface HistogramChild {
  observe(seconds: number): void;
}

interface Series {
  labels: Record<string, string>;
  /** Per bucket (not cumulative); the last one is +Inf. */
  counts: Float64Array;
  sum: number;
  count: number;
  child: HistogramChild;
}

export class LatencyHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  private readonly labelNames: readonly L[];
  private readonly bounds: Float64Array;
  private readonly series = new Map<string, Series>();

  constructor(opts: { name: string; help: string; labelNames: readonly L[]; buckets: readonly number[]; registers: Registry[] }) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    this.bounds = Float64Array.from([...opts.buckets].sort((a, b) => a - b));
    // A Registry reads only name, help, type, aggregator and get(), which this class has;
    // prom-client types registerMetric() with its own Metric class.
    for (const r of opts.registers) r.registerMetric(this as unknown as Metric<L>);
  }

  /** The child for one label set (values in labelNames order); cache it where the set is fixed. */
  labels(...values: string[]): HistogramChild {
    const key = values.length === 1 ? values[0]! : values.join('\u0000');
    const found = this.series.get(key);
    if (found !== undefined) return found.child;
    const labels: Record<string, string> = {};
    this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''));
    const bounds = this.bounds;
    const s: Series = {
      labels,
      counts: new Float64Array(bounds.length + 1),
      sum: 0,
      count: 0,
      child: {
        observe(v: number) {
          if (!Number.isFinite(v)) return;
          let i = 0;
          while (i < bounds.length && v > bounds[i]!) i++;
          s.counts[i]! += 1;
          s.sum += v;
          s.count += 1;
        },
      },
    };
    this.series.set(key, s);
    return s.child;
  }

  observe(labels: Record<L, string>, v: number): void {
    this.labels(...this.labelNames.map((n) => labels[n])).observe(v);
  }

  reset(): void {
    this.series.clear();
  }

  get(): HistogramSnapshot {
    const values: HistogramSnapshot['values'] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += s.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: this.bounds[i]! }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }
}

export interface GatewayMetrics {
  registry: Registry;
  requestDuration: LatencyHistogram<'route' | 'method' | 'status'>;
  decisionDuration: LatencyHistogram<'layer' | 'allowed'>;
  upstreamDuration: LatencyHistogram<'upstream' | 'status'>;
  openfgaDuration: LatencyHistogram<'call' | 'outcome'>;
  /** Per upstream: answers by status class and failures, counted as plain numbers (see upstreamObserver). */
  upstreamCounts: Map<string, UpstreamCounts>;
  /**
   * The edge policies a request's scope node sets (network, authentication strength,
   * rate limit, residency): per policy and outcome, counted as plain numbers.
   */
  edgePolicyCounts: Map<string, number>;
  /** Counts one outcome (`passed`, `refused`, `degraded`, …) of one edge policy. */
  countEdgePolicy(policy: string, outcome: string): void;
}

/** One upstream's counts: answers by status class (index 1..5 = 1xx..5xx), and failures without an answer. */
interface UpstreamCounts {
  classes: number[];
  timeout: number;
  unreachable: number;
}

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/**
 * The observer of one upstream's exchanges, built once per upstream: the duration child
 * per status is found once, and the counts are plain numbers copied into the counters at
 * scrape time (a labelled prom-client counter hashes its labels on every inc()).
 */
export function upstreamObserver(metrics: GatewayMetrics, upstream: string): UpstreamObserver {
  let counts = metrics.upstreamCounts.get(upstream);
  if (counts === undefined) metrics.upstreamCounts.set(upstream, (counts = { classes: [0, 0, 0, 0, 0, 0], timeout: 0, unreachable: 0 }));
  const c = counts;
  const children = new Map<number | string, HistogramChild>();
  return (outcome, seconds) => {
    let child = children.get(outcome);
    if (child === undefined) children.set(outcome, (child = metrics.upstreamDuration.labels(upstream, String(outcome))));
    child.observe(seconds);
    if (outcome === 'timeout') c.timeout += 1;
    else if (outcome === 'error') c.unreachable += 1;
    else c.classes[Math.min(5, Math.max(1, Math.floor(outcome / 100)))]! += 1;
  };
}

const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/**
 * Decisions from the in-process layer take microseconds: finer buckets at the low end.
 * Misses and OpenFGA calls land at 1–10 ms: a bucket per millisecond or so there, so a
 * p99 estimate is not rounded to 2.5 or 5 ms.
 */
const DECISION_BUCKETS = [
  0.000005, 0.00001, 0.00002, 0.000035, 0.00005, 0.000075, 0.0001, 0.00015, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025, 0.003,
  0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

export interface RuntimeMetricsOptions {
  /** prom-client's default metrics (process, heap, GC, event loop); off when nothing scrapes them. Default on. */
  runtime?: boolean;
  /** METRICS_EVENT_LOOP_PRECISION_MS: the event-loop delay histogram's sampling interval. */
  eventLoopPrecisionMs?: number;
}

export function createGatewayMetrics(registry = new Registry(), opts: RuntimeMetricsOptions = {}): GatewayMetrics {
  // nodejs_eventloop_lag_* and process metrics. The delay histogram is a libuv timer that
  // wakes the process at every sample, busy or idle: sampled as often as configured.
  if (opts.runtime !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: opts.eventLoopPrecisionMs ?? 100 });
  const upstreamCounts = new Map<string, UpstreamCounts>();
  const edgePolicyCounts = new Map<string, number>();
  new Counter({
    name: 'tiergate_upstream_requests_total',
    help: 'Answers from each upstream service, by upstream and status class (1xx..5xx); failures without an answer are in tiergate_upstream_errors_total.',
    labelNames: ['upstream', 'class'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [upstream, c] of upstreamCounts) STATUS_CLASSES.forEach((cls, i) => this.inc({ upstream, class: cls }, c.classes[i + 1]!));
    },
  });
  new Counter({
    name: 'tiergate_upstream_errors_total',
    help: 'Requests an upstream service did not answer, by upstream and reason: timeout (answered 504) or unreachable (refused, reset or failed before an answer; 502).',
    labelNames: ['upstream', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [upstream, c] of upstreamCounts) {
        this.inc({ upstream, reason: 'timeout' }, c.timeout);
        this.inc({ upstream, reason: 'unreachable' }, c.unreachable);
      }
    },
  });
  new Counter({
    name: 'tiergate_edge_policy_total',
    help: "Edge policies applied to requests (the scope node's effective security.*, api.* and data.* settings), by policy and outcome.",
    labelNames: ['policy', 'outcome'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [key, n] of edgePolicyCounts) {
        const [policy, outcome] = key.split('\u0000') as [string, string];
        this.inc({ policy, outcome }, n);
      }
    },
  });
  return {
    upstreamCounts,
    edgePolicyCounts,
    countEdgePolicy(policy, outcome) {
      const key = `${policy}\u0000${outcome}`;
      edgePolicyCounts.set(key, (edgePolicyCounts.get(key) ?? 0) + 1);
    },
    registry,
    requestDuration: new LatencyHistogram({
      name: 'tiergate_request_duration_seconds',
      help: 'Gateway request duration, from arrival to the last byte of the response, by route template, method and status.',
      labelNames: ['route', 'method', 'status'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    decisionDuration: new LatencyHistogram({
      name: 'tiergate_decision_duration_seconds',
      help: 'Time to an authorization decision, by the cache layer that answered (l1, redis, openfga, coalesced) and the answer.',
      labelNames: ['layer', 'allowed'],
      buckets: DECISION_BUCKETS,
      registers: [registry],
    }),
    upstreamDuration: new LatencyHistogram({
      name: 'tiergate_upstream_duration_seconds',
      help: 'Upstream service response time as seen by the gateway (request sent to last byte), by upstream and its status (or error/timeout).',
      labelNames: ['upstream', 'status'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    openfgaDuration: new LatencyHistogram({
      name: 'tiergate_openfga_request_duration_seconds',
      help: 'OpenFGA calls on the request path as the gateway sees them (queueing for a connection included), by call (check, read) and outcome (ok, error).',
      labelNames: ['call', 'outcome'],
      buckets: DECISION_BUCKETS,
      registers: [registry],
    }),
  };
}
