// `npm run bench -- --only scale [--tenants 1000,10000] [--users 100000]`: the gateway as
// the hierarchy grows. OpenFGA on PostgreSQL, Redis, two gateway replicas (A and B, one
// worker each). The hierarchy (./scale-tree.ts) is provisioned through the admin API's
// bulk paths (tenants 100 per call, role tuples 100 per call) and measured at each size:
//   warm     the same reads at every size (32 members of one tenant at depth 4, 32 agents)
//   cold     members never asked before, each one read (token verified beforehand)
//   listing  GET /admin/v1/me/tenants as an organization admin: first page, every page
//   move     a division holding 20% of the tenants moved: time until both replicas
//            answer the new way, OpenFGA calls of the miss storm after it, warm reads
//            outside the subtree still warm
//   memory   bytes per cached decision in process (heap delta) and in Redis (MEMORY USAGE)
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Registry } from 'prom-client';
import { Redis } from 'ioredis';
import { Agent, fetch as undiciFetch } from 'undici';
import { bootstrap } from '../../src/fga/bootstrap.js';
import { loadModel } from '../../src/fga/model.js';
import { DecisionCache } from '../../src/decisions/index.js';
import { FgaRequestClient } from '../../src/fga/request-client.js';
import { OpenFgaAuthorizer } from '../../src/fga/authorizer.js';
import { loadOrCreateDevIssuerKeys, mintDevToken } from '../../src/gateway/dev-issuer.js';
import { inBatches } from './concurrency.js';
import { runK6, type K6Result } from './k6.js';
import { decisionsByLayer, deltaBy, deltaQuantile, hitRatio, scrape } from './prom.js';
import { cpuMsBetween, snapshot as cpuSnapshot, ticksPerSecond } from './proc-cpu.js';
import { busyMs, cpuTimes, stealShare } from './steal.js';
import { summarize, type Summary } from './stats.js';
import { STORE_NAME, type BenchStack, type GatewayProcess } from './stack.js';
import {
  divisionAdmins,
  divisions,
  memberId,
  MOVED,
  MOVED_FROM,
  MOVED_TO,
  ORG,
  orgAdmins,
  READER_DIVISION,
  READER_TENANT,
  tenantAdmin,
  tenantDivision,
  tenantId,
} from './scale-tree.js';

export interface ScaleOptions {
  stack: BenchStack;
  k6: string;
  workDir: string;
  say: (line: string) => void;
  /** Tenant counts to measure at, ascending; a 3-tenant step is measured first. */
  sizes: number[];
  /** Users at the largest size (members of tenants, plus the admins); smaller sizes have as many per tenant. */
  users: number;
  rate: number;
  durationS: number;
  quick: boolean;
}

export interface ProvisionStep {
  tenants: number;
  tuples: number;
  seconds: number;
  /** Of which creating the tenants (the rest: their role tuples). */
  tenantSeconds: number;
  tenantCalls: number;
  tupleCalls: number;
}

export interface SizeResult {
  tenants: number;
  divisions: number;
  users: number;
  tuples: number;
  warm: { k6: K6Result; cpuUsPerRequest: number; hitRatio: number | undefined; steal: number; busy: number; decisionP50Us: number };
  cold?: { k6: K6Result; cpuUsPerRequest: number; layers: Record<string, number>; decisionP50Ms: number; decisionP99Ms: number; openfgaChecks: number };
  listing?: {
    firstPage: Summary;
    /** The first page's Server-Timing parts (roots, candidates, confirm, count, total): p50 ms each. */
    firstPageParts?: Record<string, number>;
    complete: Summary;
    pages: number;
    total: number;
    source: string;
    correct: boolean;
  };
  move?: MoveResult;
}

export interface MoveResult {
  subtreeTenants: number;
  sample: number;
  adminAnswerMs: number;
  everyReplicaMs: number;
  /** (replica, tenant) pairs read once after the probe was right; wrongAfter of them answered the old way. */
  readsToCorrect: number;
  wrongAfter: number;
  stormQuestions: number;
  stormRequests: number;
  stormOpenfgaChecks: number;
  /** The storm's misses by fill lease outcome (tiergate_decision_fill_leases_total), both replicas summed. */
  stormLeases: Record<string, number>;
  /** The storm's Redis lookups by result (tiergate_decision_cache_lookups_total{layer="redis"}), both replicas summed: errors and bypasses ask OpenFGA without a lease. */
  stormRedis?: Record<string, number>;
  /** The storm's failed or timed-out Redis operations by op (tiergate_decision_redis_errors_total): each failed lookup or lease look asks OpenFGA. */
  stormRedisErrors?: Record<string, number>;
  outsideHitRatio: number | undefined;
  outsideOpenfgaChecks: number;
}

export interface ScaleResult {
  /** Admin calls answered 503 (OpenFGA slower than the admin API's timeout) and tried again. */
  retries: number;
  provision: ProvisionStep[];
  singleCreatePerS?: number;
  sizes: SizeResult[];
  memory?: { decisions: number; heapBytesPerDecision: number; redisBytesPerDecision: number; redisSampled: number };
  failures: string[];
}

type Mint = (sub: string) => Promise<string>;

class Api {
  private readonly dispatcher = new Agent({ connections: 16 });
  /** Calls answered 503 and tried again (a loaded machine: OpenFGA slower than the admin API's timeout). */
  retries = 0;
  constructor(private readonly base: string) {}
  async call(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any; serverTiming?: string | undefined }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await undiciFetch(`${this.base}${path}`, {
      method,
      dispatcher: this.dispatcher,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, serverTiming: res.headers.get('server-timing') ?? undefined };
  }
  /** A call that must answer one of `expect`; a 503 (OpenFGA did not answer in time: nothing was changed) is tried again, up to 5 times. */
  async ok(method: string, path: string, token: string, body?: unknown, expect = [200, 201]): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    let r = await this.call(method, path, token, body);
    for (let attempt = 1; r.status === 503 && attempt < 5; attempt++) {
      this.retries++;
      await new Promise((res) => setTimeout(res, 500 * attempt));
      r = await this.call(method, path, token, body);
    }
    if (!expect.includes(r.status)) throw new Error(`${method} ${path} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 400)}`);
    return r.body;
  }
  close(): Promise<void> {
    return this.dispatcher.close();
  }
}

function gcNow(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const { stack, say } = o;
  const failures: string[] = [];
  const keys = await loadOrCreateDevIssuerKeys(stack.dataDir);
  const tokens = new Map<string, string>();
  const mint: Mint = async (sub) => {
    let t = tokens.get(sub);
    if (!t) tokens.set(sub, (t = await mintDevToken(keys, { sub, audience: 'tiergate', ttlS: 6 * 3600 })));
    return t;
  };
  const a = await stack.startGateway({ name: 'A', l1: true, workers: 1 });
  const b = await stack.startGateway({ name: 'B', l1: true, workers: 1 });
  say(`scale: replicas A ${a.url}, B ${b.url}; OpenFGA on PostgreSQL (${stack.fga.datastore.engine})`);
  const api = new Api(a.url);
  const apiB = new Api(b.url);
  const platform = await mint('platform-ops');
  const oa = await mint(orgAdmins()[0]!);
  const all = divisions();
  const maxTenants = Math.max(...o.sizes);
  const perTenant = Math.max(1, Math.round((o.users - 5 - 2 * all.length - 300) / maxTenants));
  const adminEvery = Math.max(1, Math.ceil(maxTenants / 300));
  const provision: ProvisionStep[] = [];
  const sizes: SizeResult[] = [];
  let singleCreatePerS: number | undefined;
  let tuplesTotal = 0;

  // ---------------------------------------------------------------- the frame
  await api.ok('POST', '/admin/v1/organizations', platform, { id: ORG, name: 'Scale Org', admins: orgAdmins() });
  for (const d of all) {
    const path = d.parent.startsWith('organization:') ? `/admin/v1/organizations/${ORG}/divisions` : `/admin/v1/divisions/${d.parent.slice(9)}/divisions`;
    await api.ok('POST', path, oa, { id: d.id, name: `Division ${d.id}` });
  }
  const frameTuples = all.flatMap((d) => divisionAdmins(d.id).map((u) => ({ user: `user:${u}`, relation: 'admin', object: `division:${d.id}` })));
  await writeTuples(api, oa, frameTuples, 4);
  tuplesTotal += 5 + all.length + all.filter((d) => d.depth > 1).length + frameTuples.length;
  // The readers' tenant, its admin, 32 members and 32 agents.
  const readerAdmin = 'ta-reader';
  await api.ok('POST', `/admin/v1/divisions/${READER_DIVISION}/tenants`, oa, { id: READER_TENANT, name: 'Readers' });
  const readers = Array.from({ length: 32 }, (_, i) => `r-${i}`);
  await writeTuples(api, oa, [
    { user: `user:${readerAdmin}`, relation: 'admin', object: `tenant:${READER_TENANT}` },
    ...readers.map((u) => ({ user: `user:${u}`, relation: 'member', object: `tenant:${READER_TENANT}` })),
  ], 1);
  tuplesTotal += 1 + 33;
  const agents = Array.from({ length: 32 }, (_, i) => `a${i}`);
  const ra = await mint(readerAdmin);
  await inBatches(agents, 4, (id) => api.ok('POST', `/api/v1/tenants/${READER_TENANT}/agents`, ra, { agentNo: id, name: `Agent ${id}` }, [201, 409]));
  const readerTokens = await Promise.all(readers.map(mint));
  const warmItems = (gw: GatewayProcess) =>
    readerTokens.flatMap((t) => agents.map((ag) => ({ url: `${gw.url}/api/v1/tenants/${READER_TENANT}/agents/${ag}`, headers: { authorization: `Bearer ${t}` } })));

  // Two more tenants: the 3-tenant starting point, measured before anything grows.
  let made = 0;
  const grow = async (target: number) => {
    if (target <= made) return;
    const started = performance.now();
    const byDivision = new Map<string, number[]>();
    for (let i = made; i < target; i++) {
      const d = tenantDivision(i, all);
      const list = byDivision.get(d) ?? [];
      list.push(i);
      byDivision.set(d, list);
    }
    const batches: { division: string; ids: number[] }[] = [];
    for (const [division, ids] of byDivision) for (let k = 0; k < ids.length; k += 100) batches.push({ division, ids: ids.slice(k, k + 100) });
    // Tenant batches of different divisions in parallel; one division's batches queue on its lock.
    await inBatches(batches, 4, ({ division, ids }) =>
      api.ok('POST', `/admin/v1/divisions/${division}/tenants/batch`, oa, { tenants: ids.map((i) => ({ id: tenantId(i), name: `Tenant ${i}` })) }, [201]),
    );
    const tenantSeconds = (performance.now() - started) / 1000;
    const tuples: { user: string; relation: string; object: string }[] = [];
    for (let i = made; i < target; i++) {
      for (let k = 0; k < perTenant; k++) tuples.push({ user: `user:${memberId(i, k)}`, relation: 'member', object: `tenant:${tenantId(i)}` });
      if (i % adminEvery === 0) tuples.push({ user: `user:${tenantAdmin(i)}`, relation: 'admin', object: `tenant:${tenantId(i)}` });
    }
    const tupleCalls = await writeTuples(api, oa, tuples, 4);
    const seconds = (performance.now() - started) / 1000;
    provision.push({ tenants: target - made, tuples: tuples.length + (target - made), seconds, tenantSeconds, tenantCalls: batches.length, tupleCalls });
    tuplesTotal += tuples.length + (target - made);
    say(`  provisioned ${target - made} tenants and ${tuples.length} role tuples in ${seconds.toFixed(1)} s (${batches.length} tenant batches, ${tupleCalls} tuple batches)`);
    made = target;
  };

  // Tenants made one call each (POST …/tenants), after the 3-tenant step: the single-node rate, beside the batch's.
  let singles = 0;
  const singleCreates = async () => {
    const started = performance.now();
    const extra = Array.from({ length: o.quick ? 20 : 100 }, (_, i) => `single-${i}`);
    await inBatches(extra, 4, (id) => api.ok('POST', `/admin/v1/divisions/dv-9-2-0-0/tenants`, oa, { id, name: id }, [201]));
    singleCreatePerS = extra.length / ((performance.now() - started) / 1000);
    tuplesTotal += extra.length;
    singles = extra.length;
  };

  const steps = [3, ...o.sizes.filter((s) => s > 3)];
  for (const [round, size] of steps.entries()) {
    if (round === 1) await singleCreates();
    await grow(size - 1 - singles); // the readers' tenant and the single ones count too
    const total = made + 1 + singles;
    const users = made * perTenant + Math.floor(Math.max(0, made - 1) / adminEvery) + 1 + 5 + 2 * all.length + 33;
    say(`scale: ${total} tenants, ${all.length} divisions, ~${users} users, ~${tuplesTotal} tuples`);
    const warm = await measureWarm(o, a, warmItems(a), `w${size}`);
    const r: SizeResult = { tenants: total, divisions: all.length, users, tuples: tuplesTotal, warm };
    say(`  warm: p50 ${warm.k6.p50.toFixed(2)} ms, p99 ${warm.k6.p99.toFixed(2)} ms, gateway ${warm.cpuUsPerRequest.toFixed(0)} µs CPU/request, hit ratio ${((warm.hitRatio ?? 0) * 100).toFixed(1)}%`);
    if (made >= 100) {
      try {
        r.cold = await measureCold(o, a, made, perTenant - 1 - (round % perTenant), mint, `c${size}`);
        say(`  cold: p50 ${r.cold.k6.p50.toFixed(2)} ms, decision p50 ${r.cold.decisionP50Ms.toFixed(2)} ms, gateway ${r.cold.cpuUsPerRequest.toFixed(0)} µs CPU/request`);
      } catch (err) {
        failures.push(`cold at ${total}: ${String(err)}`);
        say(`  cold FAILED: ${String(err)}`);
      }
      try {
        r.listing = await measureListing(api, oa, total, o.quick ? 2 : 5);
        say(`  /me/tenants: first page p50 ${r.listing.firstPage.p50.toFixed(0)} ms, complete ${r.listing.complete.p50.toFixed(0)} ms over ${r.listing.pages} pages (${r.listing.source}), ${r.listing.correct ? 'complete and sorted' : 'NOT COMPLETE'}`);
      } catch (err) {
        failures.push(`listing at ${total}: ${String(err)}`);
        say(`  listing FAILED: ${String(err)}`);
      }
      try {
        r.move = await measureMove({ a, b, api, apiB, oa, mint, made, perTenant, warmItems: warmItems(a), say });
        say(`  move of ${r.move.subtreeTenants} tenants: admin answer ${r.move.adminAnswerMs.toFixed(0)} ms, every replica right after ${r.move.everyReplicaMs.toFixed(0)} ms; storm: ${r.move.stormOpenfgaChecks} OpenFGA checks for ${r.move.stormQuestions} questions (${r.move.stormRequests} requests; fill leases ${Object.entries(r.move.stormLeases).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}; Redis lookups ${Object.entries(r.move.stormRedis ?? {}).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}; Redis errors ${Object.entries(r.move.stormRedisErrors ?? {}).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'})`);
      } catch (err) {
        failures.push(`move at ${total}: ${String(err)}`);
        say(`  move FAILED: ${String(err)}`);
      }
    }
    sizes.push(r);
  }

  let memory: ScaleResult['memory'];
  try {
    memory = await measureMemory(o, made, perTenant);
    say(`  memory: ${memory.heapBytesPerDecision.toFixed(0)} bytes per decision in process, ${memory.redisBytesPerDecision.toFixed(0)} in Redis`);
  } catch (err) {
    failures.push(`memory: ${String(err)}`);
  }
  if (api.retries > 0) say(`  admin calls tried again after a 503: ${api.retries}`);
  await api.close();
  await apiB.close();
  await a.stop();
  await b.stop();
  return { retries: api.retries, provision, ...(singleCreatePerS ? { singleCreatePerS } : {}), sizes, ...(memory ? { memory } : {}), failures };
}

/** Role tuples through POST /admin/v1/tuples, 100 per call; returns the number of calls. */
async function writeTuples(api: Api, token: string, tuples: { user: string; relation: string; object: string }[], concurrency: number): Promise<number> {
  const batches: (typeof tuples)[] = [];
  for (let i = 0; i < tuples.length; i += 100) batches.push(tuples.slice(i, i + 100));
  await inBatches(batches, concurrency, (writes) => api.ok('POST', '/admin/v1/tuples', token, { writes }));
  return batches.length;
}

function gatewayCpuUs(stack: BenchStack, name: string): () => (requests: number) => number {
  const parts = stack.cpuParts().filter((p) => p.name === `gateway ${name}`);
  const before = cpuSnapshot(parts);
  return () => {
    const after = cpuSnapshot(parts);
    return (requests: number) => ((cpuMsBetween(before, after)[`gateway ${name}`] ?? 0) * 1000) / Math.max(1, requests);
  };
}

async function k6Rate(o: ScaleOptions, data: unknown, tag: string, rate: number, seconds: number): Promise<K6Result> {
  return runK6(o.k6, 'read.js', { MODE: 'rate', RATE: String(rate), DURATION: `${seconds}s`, PREALLOC: '64', MAXVUS: '64', RUN_ID: tag }, data, o.workDir, tag, seconds + 60);
}

async function measureWarm(o: ScaleOptions, gw: GatewayProcess, items: { url: string; headers: Record<string, string> }[], tag: string): Promise<SizeResult['warm']> {
  const data = { expect: [200], items };
  for (let i = 0; i < 6; i++) {
    const before = await scrape(gw.metricsUrl);
    await k6Rate(o, data, `${tag}-warmup${i}`, 250, o.quick ? 1 : 4);
    const ratio = hitRatio(decisionsByLayer(before, await scrape(gw.metricsUrl)));
    if (ratio !== undefined && ratio >= 0.995) break;
  }
  const before = await scrape(gw.metricsUrl);
  const cpu = gatewayCpuUs(o.stack, gw.name);
  const t0 = cpuTimes();
  const k = await k6Rate(o, data, tag, o.rate, o.durationS);
  const t1 = cpuTimes();
  const perRequest = cpu();
  const after = await scrape(gw.metricsUrl);
  return {
    k6: k,
    cpuUsPerRequest: perRequest(k.requests),
    hitRatio: hitRatio(decisionsByLayer(before, after)),
    steal: stealShare(t0, t1) ?? 0,
    busy: (busyMs(t0, t1, ticksPerSecond()) ?? 0) / (o.durationS * 1000 * availableParallelism()),
    decisionP50Us: deltaQuantile(before, after, 'tiergate_decision_duration_seconds', 0.5) * 1e6,
  };
}

/** Members never asked before, one request each at a fixed rate (their tokens verified first, through /admin/v1/me). */
async function measureCold(o: ScaleOptions, gw: GatewayProcess, tenants: number, k: number, mint: Mint, tag: string): Promise<NonNullable<SizeResult['cold']>> {
  const n = o.quick ? 200 : 1000;
  // Member k of each chosen tenant: a different k at each size, so no decision of a smaller size is asked again.
  const chosen = Array.from({ length: n }, (_, i) => Math.floor(((i + 0.5) * tenants) / n)).filter((t, i, arr) => arr.indexOf(t) === i);
  const users = await Promise.all(chosen.map(async (t) => ({ t, token: await mint(memberId(t, k)) })));
  // A tenant measured at a smaller size is asked again at a bigger one: a different member then.
  const dispatcher = new Agent({ connections: 8 });
  await inBatches(users, 8, async (u) => {
    const res = await undiciFetch(`${gw.url}/admin/v1/me`, { headers: { authorization: `Bearer ${u.token}` }, dispatcher });
    await res.arrayBuffer();
  });
  await dispatcher.close();
  const items = users.map((u) => ({ url: `${gw.url}/api/v1/tenants/${tenantId(u.t)}/agents/cold-${tag}`, headers: { authorization: `Bearer ${u.token}` } }));
  const rate = 100;
  const before = await scrape(gw.metricsUrl);
  const cpu = gatewayCpuUs(o.stack, gw.name);
  const res = await k6Rate(o, { expect: [404], items }, tag, rate, Math.max(1, Math.floor(items.length / rate)));
  const perRequest = cpu();
  const after = await scrape(gw.metricsUrl);
  return {
    k6: res,
    cpuUsPerRequest: perRequest(res.requests),
    layers: decisionsByLayer(before, after),
    decisionP50Ms: deltaQuantile(before, after, 'tiergate_decision_duration_seconds', 0.5, { layer: 'openfga' }) * 1000,
    decisionP99Ms: deltaQuantile(before, after, 'tiergate_decision_duration_seconds', 0.99, { layer: 'openfga' }) * 1000,
    openfgaChecks: deltaBy(before, after, 'tiergate_openfga_request_duration_seconds_count', 'call').get('check') ?? 0,
  };
}

async function measureListing(api: Api, token: string, expected: number, repeats: number): Promise<NonNullable<SizeResult['listing']>> {
  const first: number[] = [];
  const complete: number[] = [];
  let pages = 0;
  let total = 0;
  let source = '';
  let correct = true;
  const parts = new Map<string, number[]>();
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    const res = await api.call('GET', '/admin/v1/me/tenants?limit=100', token);
    first.push(performance.now() - t0);
    if (res.status !== 200) throw new Error(`GET /admin/v1/me/tenants?limit=100 answered ${res.status}: ${JSON.stringify(res.body).slice(0, 400)}`);
    source = res.body.source;
    for (const [name, ms] of serverTimings(res.serverTiming)) parts.set(name, [...(parts.get(name) ?? []), ms]);
  }
  for (let r = 0; r < Math.min(repeats, 2); r++) {
    const t0 = performance.now();
    const ids: string[] = [];
    let cursor: string | null = null;
    pages = 0;
    do {
      const page: { items: { id: string }[]; nextCursor: string | null; total: number } = await api.ok(
        'GET',
        `/admin/v1/me/tenants?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        token,
      );
      ids.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor;
      total = page.total;
      pages++;
    } while (cursor);
    complete.push(performance.now() - t0);
    const sorted = ids.every((id, i) => i === 0 || ids[i - 1]! < id);
    correct &&= sorted && new Set(ids).size === ids.length && ids.length === expected && total === expected;
  }
  const firstParts = Object.fromEntries([...parts].map(([name, xs]) => [name, summarize(xs).p50]));
  return { firstPage: summarize(first), firstPageParts: firstParts, complete: summarize(complete), pages, total, source, correct };
}

/** `name;dur=…` pairs of a Server-Timing header. */
function serverTimings(header: string | undefined): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const m of (header ?? '').matchAll(/(?:^|,)\s*([\w-]+)(?:;[^,;]*?)*?;dur=([\d.]+)/g)) out.push([m[1]!, Number(m[2])]);
  return out;
}

async function measureMove(m: {
  a: GatewayProcess;
  b: GatewayProcess;
  api: Api;
  apiB: Api;
  oa: string;
  mint: Mint;
  made: number;
  perTenant: number;
  warmItems: { url: string; headers: Record<string, string> }[];
  say: (line: string) => void;
}): Promise<MoveResult> {
  const inside = Array.from({ length: m.made }, (_, i) => i).filter((i) => i % 5 === 0);
  const sample = inside.filter((_, k) => k % Math.max(1, Math.floor(inside.length / 100)) === 0).slice(0, 100);
  const loser = await m.mint(divisionAdmins(MOVED_FROM)[0]!);
  const gainer = await m.mint(divisionAdmins(MOVED_TO)[0]!);
  const read = async (base: string, token: string, t: number) => {
    const res = await undiciFetch(`${base}/api/v1/tenants/${tenantId(t)}/agents/move-probe`, { headers: { authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    return res.status;
  };
  // Before: the old parent's admin reads (404 from the upstream: allowed), the new one's is refused; both replicas warm.
  for (const gw of [m.a, m.b]) {
    await inBatches(sample, 8, async (t) => {
      for (let i = 0; i < 2; i++) {
        if ((await read(gw.url, loser, t)) !== 404) throw new Error(`before the move, ${MOVED_FROM}'s admin was refused ${tenantId(t)}`);
        if ((await read(gw.url, gainer, t)) !== 403) throw new Error(`before the move, ${MOVED_TO}'s admin was allowed ${tenantId(t)}`);
      }
    });
  }
  // Members of the subtree (the storm's questions) warm too, on both replicas.
  const members = await Promise.all(sample.map(async (t) => ({ t, token: await m.mint(memberId(t, 0)) })));
  for (const gw of [m.a, m.b]) await inBatches(members, 8, async (u) => void (await read(gw.url, u.token, u.t)));
  // Readers outside the subtree warm.
  const outsideItems = m.warmItems.filter((_, i) => i % 32 === 0);
  for (const it of outsideItems) await (await undiciFetch(it.url, { headers: it.headers })).arrayBuffer();

  const t0 = performance.now();
  await m.api.ok('POST', `/admin/v1/divisions/${MOVED}/move`, m.oa, { parent: `division:${MOVED_TO}` });
  const adminAnswerMs = performance.now() - t0;
  // From the admin API's answer: one tenant read on both replicas, as both admins, until
  // all four answers are the new ones (how long a replica may still answer the old way).
  const probe = sample[sample.length - 1]!;
  let everyReplicaMs = Number.NaN;
  while (performance.now() - t0 < 30_000) {
    const answers = await Promise.all([m.a, m.b].flatMap((gw) => [read(gw.url, loser, probe), read(gw.url, gainer, probe)]));
    if (answers.every((st, i) => st === (i % 2 === 0 ? 403 : 404))) {
      everyReplicaMs = performance.now() - t0;
      break;
    }
  }
  if (!Number.isFinite(everyReplicaMs)) throw new Error(`30 s after the move, ${tenantId(probe)} was still answered the old way`);
  // Then every sampled tenant once on each replica: each must already answer the new way.
  let reads = 0;
  let wrong = 0;
  // What each wrong read answered: an old answer (the loser allowed, the gainer refused) or an error status.
  const answered: string[] = [];
  await inBatches(sample.flatMap((t) => [m.a, m.b].map((gw) => ({ gw, t }))), 8, async ({ gw, t }) => {
    reads++;
    const lost = await read(gw.url, loser, t);
    const gained = lost === 403 ? await read(gw.url, gainer, t) : undefined;
    if (lost !== 403 || gained !== 404) {
      wrong++;
      answered.push(`${gw === m.a ? 'A' : 'B'} ${tenantId(t)}: ${MOVED_FROM}'s admin ${lost}${gained === undefined ? '' : `, ${MOVED_TO}'s admin ${gained}`}`);
    }
  });
  if (wrong > 0) throw new Error(`after the move, ${wrong} of ${reads} (replica, tenant) reads did not answer the new way (403 to the old parent's admin, 404 to the new one's): ${answered.slice(0, 5).join('; ')}`);

  // The miss storm: every member asks at once, three times, on both replicas.
  const [sa, sb] = await Promise.all([scrape(m.a.metricsUrl), scrape(m.b.metricsUrl)]);
  const storm = members.flatMap((u) => [m.a, m.b].flatMap((gw) => [0, 1, 2].map(() => ({ gw, u }))));
  await inBatches(storm, 64, async ({ gw, u }) => void (await read(gw.url, u.token, u.t)));
  const [ea, eb] = await Promise.all([scrape(m.a.metricsUrl), scrape(m.b.metricsUrl)]);
  const checks = (before: typeof sa, after: typeof sa) => deltaBy(before, after, 'tiergate_openfga_request_duration_seconds_count', 'call').get('check') ?? 0;
  const stormOpenfgaChecks = checks(sa, ea) + checks(sb, eb);
  const stormLeases: Record<string, number> = {};
  const stormRedis: Record<string, number> = {};
  const stormRedisErrors: Record<string, number> = {};
  for (const [before, after] of [
    [sa, ea],
    [sb, eb],
  ] as const) {
    for (const [outcome, n] of deltaBy(before, after, 'tiergate_decision_fill_leases_total', 'outcome')) stormLeases[outcome] = (stormLeases[outcome] ?? 0) + n;
    for (const [result, n] of deltaBy(before, after, 'tiergate_decision_cache_lookups_total', 'result', { layer: 'redis' })) stormRedis[result] = (stormRedis[result] ?? 0) + n;
    for (const [op, n] of deltaBy(before, after, 'tiergate_decision_redis_errors_total', 'op')) if (n > 0) stormRedisErrors[op] = (stormRedisErrors[op] ?? 0) + n;
  }

  // Outside the subtree: the readers' decisions are still in process.
  const oBefore = await scrape(m.a.metricsUrl);
  for (const it of outsideItems) await (await undiciFetch(it.url, { headers: it.headers })).arrayBuffer();
  const oAfter = await scrape(m.a.metricsUrl);

  // Back where it was (not measured), so the next size moves the same way.
  await m.api.ok('POST', `/admin/v1/divisions/${MOVED}/move`, m.oa, { parent: `division:${MOVED_FROM}` });
  return {
    subtreeTenants: inside.length,
    sample: sample.length,
    adminAnswerMs,
    everyReplicaMs,
    readsToCorrect: reads,
    wrongAfter: wrong,
    stormQuestions: members.length,
    stormRequests: storm.length,
    stormOpenfgaChecks,
    stormLeases,
    stormRedis,
    stormRedisErrors,
    outsideHitRatio: hitRatio(decisionsByLayer(oBefore, oAfter)),
    outsideOpenfgaChecks: checks(oBefore, oAfter),
  };
}

/**
 * Bytes per cached decision: a DecisionCache in this process, as the gateway builds it,
 * filled with `n` decisions of distinct members on distinct tenants; the heap before and
 * after (after a full GC), and Redis' MEMORY USAGE of a sample of the entries it wrote.
 */
async function measureMemory(o: ScaleOptions, tenants: number, perTenant: number): Promise<NonNullable<ScaleResult['memory']>> {
  const gc = gcNow();
  const boot = await bootstrap({ apiUrl: o.stack.fga.apiUrl, storeName: STORE_NAME, platformAdmins: [], timeoutMs: 5000, model: loadModel() });
  const reqApi = new FgaRequestClient({ apiUrl: o.stack.fga.apiUrl, storeId: boot.storeId, timeoutMs: 5000 });
  const cache = new DecisionCache({
    engine: new OpenFgaAuthorizer({ api: reqApi, authorizationModelId: boot.authorizationModelId }),
    api: reqApi,
    storeId: boot.storeId,
    modelId: () => boot.authorizationModelId,
    model: loadModel().request,
    registry: new Registry(),
    redisUrl: o.stack.redis.url,
    redisTimeoutMs: 200,
    l1Enabled: true,
    l1MaxEntries: 100_000,
    allowTtlS: 3600,
    denyTtlS: 3600,
    ttlJitter: 0,
    pollMs: 1000,
    poller: false,
  });
  await cache.start();
  const n = Math.min(o.quick ? 2000 : 10_000, tenants * Math.max(1, perTenant - 1));
  const questions = Array.from({ length: n }, (_, i) => {
    const t = i % tenants;
    const user = `user:${memberId(t, Math.floor(i / tenants) % perTenant)}`;
    const object = `agent:${tenantId(t)}/x`;
    return { user, relation: 'can_read', object, contextualTuples: [{ user: `tenant:${tenantId(t)}`, relation: 'tenant', object }], scope: { type: 'tenant' as const, id: tenantId(t) }, consistency: 'cached' as const };
  });
  // Every tenant's path known first (the structure every replica holds anyway), so the delta is the decisions'.
  const warmPaths = questions.slice(0, tenants).map((q) => ({ ...q, user: 'user:nobody' }));
  await inBatches(warmPaths, 16, async (q) => cache.authorizer.check(q));
  await new Promise((r) => setTimeout(r, 500));
  gc();
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  await inBatches(questions, 16, async (q) => cache.authorizer.check(q));
  await new Promise((r) => setTimeout(r, 1000)); // Redis fills are fire-and-forget
  gc();
  gc();
  const heapAfter = process.memoryUsage().heapUsed;
  const entries = cache.status().l1Entries;
  const redis = new Redis(o.stack.redis.url);
  let cursor = '0';
  const sampled: string[] = [];
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `tg:${boot.storeId}:d:*`, 'COUNT', 1000);
    cursor = next;
    sampled.push(...found);
  } while (cursor !== '0' && sampled.length < 2000);
  const usage = (await Promise.all(sampled.slice(0, 1000).map((k) => redis.memory('USAGE', k)))).map(Number).filter((x) => Number.isFinite(x) && x > 0);
  redis.disconnect();
  await cache.close();
  return {
    decisions: entries,
    heapBytesPerDecision: (heapAfter - heapBefore) / Math.max(1, n),
    redisBytesPerDecision: usage.reduce((s, v) => s + v, 0) / Math.max(1, usage.length),
    redisSampled: usage.length,
  };
}
