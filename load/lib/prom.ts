// Reads the gateway's /metrics (Prometheus text) and diffs two scrapes.
import { histogramQuantile } from './stats.js';

export type Scrape = Map<string, number>;

/** `name{a="x",b="y"} value` lines into a map keyed by the series as written (labels sorted). */
export function parseProm(text: string): Scrape {
  const out: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = m[3] ? [...m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}=${l[2]}`).sort() : [];
    out.set(`${m[1]}{${labels.join(',')}}`, Number(m[4]));
  }
  return out;
}

/** One scrape; a failed one is tried again (twice, 1 s apart) before giving up. */
export async function scrape(url: string | undefined): Promise<Scrape> {
  if (!url) return new Map();
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 1000));
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      if (res.ok) return parseProm(text);
      last = `${res.status} ${text.slice(0, 200)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    process.stderr.write(`  (scrape of ${url} failed: ${last})\n`);
  }
  throw new Error(`${url}: ${last}`);
}

function labelsOf(series: string): Record<string, string> {
  const inner = series.slice(series.indexOf('{') + 1, -1);
  const out: Record<string, string> = {};
  for (const part of inner ? inner.split(',') : []) {
    const eq = part.indexOf('=');
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** after - before, summed over the series of `name` whose labels match `where`, grouped by `by`. */
export function deltaBy(before: Scrape, after: Scrape, name: string, by: string, where: Record<string, string> = {}): Map<string, number> {
  const out = new Map<string, number>();
  for (const [series, value] of after) {
    if (!series.startsWith(`${name}{`)) continue;
    const labels = labelsOf(series);
    if (Object.entries(where).some(([k, v]) => labels[k] !== v)) continue;
    const key = labels[by] ?? '';
    out.set(key, (out.get(key) ?? 0) + value - (before.get(series) ?? 0));
  }
  return out;
}

/** Quantile of a histogram's increase between two scrapes, for series matching `where`. */
export function deltaQuantile(before: Scrape, after: Scrape, name: string, q: number, where: Record<string, string> = {}): number {
  const byLe = deltaBy(before, after, `${name}_bucket`, 'le', where);
  const buckets = [...byLe.entries()]
    .map(([le, count]) => ({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count }))
    .sort((a, b) => a.le - b.le);
  return histogramQuantile(buckets, q);
}

/** Decisions by the layer that answered (from tiergate_decision_duration_seconds_count). */
export function decisionsByLayer(before: Scrape, after: Scrape): Record<string, number> {
  return Object.fromEntries(deltaBy(before, after, 'tiergate_decision_duration_seconds_count', 'layer'));
}

/** (L1 + Redis hits) / every decision; undefined when there were none. */
export function hitRatio(layers: Record<string, number>): number | undefined {
  const total = Object.values(layers).reduce((s, v) => s + v, 0);
  if (total <= 0) return undefined;
  return ((layers.l1 ?? 0) + (layers.redis ?? 0)) / total;
}

/** A gateway's runtime between two scrapes (prom-client's default metrics, every worker). */
export interface RuntimeDelta {
  /** The longest event-loop delay in any worker, ms (NaN when not exported). */
  loopDelayMaxMs: number;
  /** Garbage-collection pauses by kind (minor, major, incremental, weakcb): how many, ms in all. */
  gc: Record<string, { count: number; ms: number }>;
}

/**
 * prom-client resets its event-loop delay histogram at every collection, so the later
 * scrape holds the longest delay since the earlier one (the cluster primary takes the
 * max over its workers); GC pauses are a histogram, diffed like the others.
 */
export function runtimeDelta(before: Scrape, after: Scrape): RuntimeDelta {
  const counts = deltaBy(before, after, 'nodejs_gc_duration_seconds_count', 'kind');
  const sums = deltaBy(before, after, 'nodejs_gc_duration_seconds_sum', 'kind');
  const gc = Object.fromEntries([...counts].filter(([, n]) => n > 0).map(([kind, n]) => [kind, { count: n, ms: (sums.get(kind) ?? 0) * 1000 }]));
  return { loopDelayMaxMs: (after.get('nodejs_eventloop_lag_max_seconds{}') ?? Number.NaN) * 1000, gc };
}
