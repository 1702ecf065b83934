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
