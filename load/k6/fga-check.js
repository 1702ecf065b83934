// OpenFGA Check called directly: the engine's own latency, with the same question
// the gateway asks on a cache miss (can_read on a new agent object, the tenant link
// as a contextual tuple, HIGHER_CONSISTENCY as the decision cache's fills use).
// BENCH_DATA: { url, modelId, tenant, users: ['user:…'] }
import http from 'k6/http';
import exec from 'k6/execution';
import { baseOptions, executorOptions, writeSummary } from './common.js';

const data = JSON.parse(open(__ENV.BENCH_DATA));
const run = __ENV.RUN_ID || '0';

export const options = Object.assign({}, baseOptions, { scenarios: { main: executorOptions(__ENV) } });
const params = { headers: { 'content-type': 'application/json' }, responseCallback: http.expectedStatuses(200) };

export default function () {
  const n = exec.scenario.iterationInTest;
  const object = `agent:${data.tenant}/f${run}x${n}`;
  const body = JSON.stringify({
    tuple_key: { user: data.users[n % data.users.length], relation: 'can_read', object },
    contextual_tuples: { tuple_keys: [{ user: `tenant:${data.tenant}`, relation: 'tenant', object }] },
    authorization_model_id: data.modelId,
    consistency: 'HIGHER_CONSISTENCY',
  });
  http.post(data.url, body, params);
}

export function handleSummary(d) {
  return writeSummary(d, __ENV.SUMMARY_OUT);
}
