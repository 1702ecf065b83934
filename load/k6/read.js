// GET requests for one scenario of load/bench.ts. BENCH_DATA names a JSON file:
//   { expect: [200], items: [{ url, headers }] }                 a fixed set, round-robin
//   { expect: [404], unique: { base, headers: [{...}] }, ... }   a new path every request
// Iteration n takes items[n % items.length], or base + RUN + n (never seen before).
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { baseOptions, executorOptions, explain, writeSummary } from './common.js';

const data = JSON.parse(open(__ENV.BENCH_DATA));
const run = __ENV.RUN_ID || '0';

export const options = Object.assign({}, baseOptions, { scenarios: { main: executorOptions(__ENV) } });

const expected = http.expectedStatuses(...data.expect);
const expectedSet = new Set(data.expect);
// Unexpected answers by class (0 = transport error), so a failed request says what it was.
// k6 metrics exist only if declared in the init context.
const unexpectedByClass = { 0: new Counter('unexpected_transport'), 4: new Counter('unexpected_4xx'), 5: new Counter('unexpected_5xx') };
function tally(res) {
  if (expectedSet.has(res.status)) return;
  explain(`GET ${res.request.url}`, res);
  const byClass = unexpectedByClass[Math.floor(res.status / 100)];
  if (byClass) byClass.add(1);
}
const items = (data.items || []).map((it) => ({ url: it.url, params: { headers: it.headers, responseCallback: expected } }));
const uniqueParams = data.unique ? data.unique.headers.map((h) => ({ headers: h, responseCallback: expected })) : [];

export default function () {
  const n = exec.scenario.iterationInTest;
  if (data.unique) {
    tally(http.get(`${data.unique.base}${run}x${n}`, uniqueParams[n % uniqueParams.length]));
  } else {
    const it = items[n % items.length];
    tally(http.get(it.url, it.params));
  }
}

export function handleSummary(d) {
  return writeSummary(d, __ENV.SUMMARY_OUT);
}
