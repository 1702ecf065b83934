// GET requests for one scenario of load/bench.ts. BENCH_DATA names a JSON file:
//   { expect: [200], items: [{ url, headers }] }                 a fixed set, round-robin
//   { expect: [404], unique: { base, headers: [{...}] }, ... }   a new path every request
// Iteration n takes items[n % items.length], or base + RUN + n (never seen before).
import http from 'k6/http';
import exec from 'k6/execution';
import { baseOptions, executorOptions, writeSummary } from './common.js';

const data = JSON.parse(open(__ENV.BENCH_DATA));
const run = __ENV.RUN_ID || '0';

export const options = Object.assign({}, baseOptions, { scenarios: { main: executorOptions(__ENV) } });

const expected = http.expectedStatuses(...data.expect);
const items = (data.items || []).map((it) => ({ url: it.url, params: { headers: it.headers, responseCallback: expected } }));
const uniqueParams = data.unique ? data.unique.headers.map((h) => ({ headers: h, responseCallback: expected })) : [];

export default function () {
  const n = exec.scenario.iterationInTest;
  if (data.unique) {
    http.get(`${data.unique.base}${run}x${n}`, uniqueParams[n % uniqueParams.length]);
  } else {
    const it = items[n % items.length];
    http.get(it.url, it.params);
  }
}

export function handleSummary(d) {
  return writeSummary(d, __ENV.SUMMARY_OUT);
}
