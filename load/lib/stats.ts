// Percentiles of raw samples and of Prometheus histogram buckets.

/** Nearest-rank percentile (q in 0..1) of raw samples. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((s, v) => s + v, 0) / Math.max(1, sorted.length);
  return { n: sorted.length, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] ?? Number.NaN, mean };
}

/**
 * Quantile from cumulative histogram buckets ({le, count}, sorted by le, +Inf last),
 * interpolated linearly inside the bucket the way Prometheus' histogram_quantile does.
 */
export function histogramQuantile(buckets: ReadonlyArray<{ le: number; count: number }>, q: number): number {
  if (buckets.length === 0) return Number.NaN;
  const total = buckets[buckets.length - 1]!.count;
  if (total <= 0) return Number.NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return prevLe; // in the +Inf bucket: the last finite bound is all we know
      const inBucket = b.count - prevCount;
      return inBucket <= 0 ? b.le : prevLe + (b.le - prevLe) * ((rank - prevCount) / inBucket);
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

/**
 * What the interleaved rounds of one run say about a p99 comparison: the measured row's
 * p99 minus its baseline's, round by round (each pair ran back to back), and how far the
 * baseline's own p99 moved between its rounds. A difference smaller than that movement is
 * within what the same server did from one round to the next on this machine.
 */
export interface RoundComparison {
  /** measured − baseline, per round, in round order. */
  paired: number[];
  baselineMin: number;
  baselineMax: number;
  /** baselineMax − baselineMin. */
  baselineSpread: number;
}

/** The lowest and highest of one server's round figures, and how far apart they are. */
export function roundSpread(values: readonly number[]): { min: number; max: number; spread: number } {
  const min = Math.min(...values);
  const max = Math.max(...values);
  return { min, max, spread: max - min };
}

/** Undefined unless both rows ran the same number of rounds, at least two. */
export function compareRounds(baseline: readonly number[], measured: readonly number[]): RoundComparison | undefined {
  if (baseline.length < 2 || baseline.length !== measured.length) return undefined;
  const { min, max, spread } = roundSpread(baseline);
  return { paired: measured.map((m, i) => m - baseline[i]!), baselineMin: min, baselineMax: max, baselineSpread: spread };
}
