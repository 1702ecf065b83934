// Mostly cached reads with WRITE_FRACTION (1%) of iterations revoking or re-granting a
// user's tenant role through the admin API, and the security check that matters:
// once the admin API has answered a revocation, that user is NEVER served again.
//
// Each VU owns its own users (users[i] belongs to VU (i % VUS) + 1) and is their only
// reader and writer, so it knows each one's state exactly; k6 VUs share nothing, and
// this makes per-user bookkeeping exact without shared state.
//   revoke answered 200  -> the user's very next read (made at once) must be 403, and
//                           every read until the re-grant too: a 200 is a VIOLATION
//   re-grant answered 200 -> the next read must be 200 (a 403 is a stale denial)
// Admin calls use a second host name mapped to the same address (k6 `hosts`), so they
// travel on other connections than the reads: with node:cluster the primary hands
// connections to workers round-robin, so a revocation is often made on one worker
// and checked on another.
// BENCH_DATA: { readBase, adminBase, adminToken, tenant, agents: ['a0',…], users: [{ id, token }] }
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { baseOptions, executorOptions, explain, writeSummary } from './common.js';

const data = JSON.parse(open(__ENV.BENCH_DATA));
const writeFraction = Number(__ENV.WRITE_FRACTION || 0.01);
const vus = Number(__ENV.MODE === 'max' ? __ENV.VUS : __ENV.MAXVUS);

const scenario = executorOptions(__ENV);
if (scenario.executor === 'constant-arrival-rate') scenario.preAllocatedVUs = scenario.maxVUs; // a fixed set of VUs: each owns its users
export const options = Object.assign({}, baseOptions, {
  scenarios: { main: scenario },
  hosts: { 'admin.bench.local': data.adminHostAddress },
});

const violations = new Counter('revoked_served');
const staleDenials = new Counter('granted_denied');
const revocations = new Counter('revocations');
const grants = new Counter('grants');
const adminErrors = new Counter('admin_errors');
// k6 metrics exist only if declared in the init context: one per status class.
const adminErrorsByClass = { 0: new Counter('admin_errors_transport'), 4: new Counter('admin_errors_4xx'), 5: new Counter('admin_errors_5xx') };
function adminError(status) {
  adminErrors.add(1);
  const byClass = adminErrorsByClass[Math.floor(status / 100)];
  if (byClass) byClass.add(1);
}
const unexpected = new Counter('unexpected_status');
const okStatuses = http.expectedStatuses(200, 403);

let mine; // this VU's users: [{ id, read: params, granted: true|false|undefined }]

function setup() {
  const vu = exec.vu.idInTest; // 1-based
  mine = [];
  data.users.forEach((u, i) => {
    if (i % vus === vu - 1) mine.push({ id: u.id, params: { headers: { authorization: `Bearer ${u.token}` }, responseCallback: okStatuses }, granted: true });
  });
}
const adminParams = { headers: { authorization: `Bearer ${data.adminToken}` }, responseCallback: http.expectedStatuses(200) };

function read(u, n) {
  const res = http.get(`${data.readBase}/api/v1/tenants/${data.tenant}/agents/${data.agents[n % data.agents.length]}`, u.params);
  if (u.granted === false) {
    if (res.status === 200) violations.add(1);
    else if (res.status !== 403) unexpected.add(1);
  } else if (u.granted === true) {
    if (res.status === 403) staleDenials.add(1);
    else if (res.status !== 200) unexpected.add(1);
  }
  if (res.status !== 200 && res.status !== 403) explain(`GET ${res.request.url}`, res);
}

export default function () {
  if (mine === undefined) setup();
  if (mine.length === 0) return;
  const n = exec.scenario.iterationInTest;
  const u = mine[Math.floor(Math.random() * mine.length)];
  if (Math.random() < writeFraction) {
    const revoke = u.granted !== false;
    const url = `${data.adminBase}/admin/v1/tenants/${data.tenant}/roles/member/${u.id}`;
    const res = revoke ? http.del(url, null, adminParams) : http.put(url, null, adminParams);
    if (res.status === 200) {
      u.granted = !revoke;
      if (revoke) revocations.add(1);
      else grants.add(1);
      read(u, n); // the user's next read, right after the admin API answered
    } else {
      adminError(res.status);
      explain(`admin ${revoke ? 'DELETE' : 'PUT'} ${url}`, res);
      u.granted = undefined; // unknown until the next successful write: not checked
    }
    return;
  }
  read(u, n);
}

export function handleSummary(d) {
  return writeSummary(d, __ENV.SUMMARY_OUT);
}
