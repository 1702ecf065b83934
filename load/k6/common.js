// Shared by the k6 scripts: the executor from the environment (set by load/bench.ts)
// and a summary written as JSON for the orchestrator, nothing printed.
//   MODE=rate  constant-arrival-rate: RATE iterations/s for DURATION (open model:
//              a slow answer does not slow the arrivals, it shows in the latency)
//   MODE=max   constant-vus: VUS closed-loop VUs for DURATION (maximum throughput)
export function executorOptions(env) {
  const duration = env.DURATION || '20s';
  if (env.MODE === 'max') {
    return { executor: 'constant-vus', vus: Number(env.VUS || 32), duration, gracefulStop: '5s' };
  }
  return {
    executor: 'constant-arrival-rate',
    rate: Number(env.RATE || 1000),
    timeUnit: '1s',
    duration,
    preAllocatedVUs: Number(env.PREALLOC || 64),
    maxVUs: Number(env.MAXVUS || 256),
    gracefulStop: '5s',
  };
}

export const baseOptions = {
  discardResponseBodies: true,
  // Fewer tags, fewer time series: k6 shares the two cores with the system under test.
  systemTags: ['status', 'method', 'scenario', 'expected_response'],
  summaryTrendStats: ['min', 'med', 'avg', 'p(95)', 'p(99)', 'max'],
  noCookiesReset: true,
};

// A failed request says what it was, in k6's log, which load/lib/k6.ts keeps and the bench
// prints next to the row's error count. A few per VU: a storm of failures needs no more.
let explained = 0;
export function explain(what, res) {
  if (explained >= 3) return;
  explained += 1;
  const why = res.status === 0 ? `transport error ${res.error_code} (${res.error})` : `status ${res.status}`;
  console.warn(`${what}: ${why} at ${new Date().toISOString()}`);
}

export function writeSummary(data, file) {
  const out = {};
  out[file] = JSON.stringify({ metrics: data.metrics, state: data.state });
  return out;
}
