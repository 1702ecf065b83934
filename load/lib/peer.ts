// `npm run bench -- --only peer`: tiergate against Heimdall (built from tools/heimdall) and
// the bare proxy, doing the same job on the same reads:
//   - authenticate the dev issuer's JWT against the same JWKS (the tiergate gateway serves it);
//   - ask OpenFGA the same store whether the user may read the agent (Heimdall: its remote
//     authorizer posting a Check; tiergate: its decision cache and Check);
//   - sign an identity assertion for the upstream (Heimdall: its JWT finalizer);
//   - proxy to the same upstream: the do-nothing server (Heimdall's JWT is not the EdDSA
//     assertion the tenant service verifies, so the upstream checks nothing for any of them).
// Heimdall runs with its caches on (in-memory: JWT validation, authorizer answers, finalizer
// JWTs) and off (noop). Each server is pinned to core 0 with taskset, k6 and everything else
// to the other cores; rounds are interleaved (bare, tiergate, tiergate without its decision cache,
// heimdall, heimdall without cache, …).
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { bootstrap } from '../../src/fga/bootstrap.js';
import { loadModel } from '../../src/fga/model.js';
import { DEV_ISSUER, DEV_ISSUER_JWKS_PATH } from '../../src/gateway/dev-issuer.js';
import { startChild, waitUntilReady, type ManagedChild } from '../../src/stack/child.js';
import { ensureTool, HEIMDALL } from '../../src/stack/go-tools.js';
import { freePort } from '../../src/stack/ports.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { runK6, type K6Result } from './k6.js';
import { cpuMsBetween, processTree, readProcs, snapshot as cpuSnapshot } from './proc-cpu.js';
import { seed } from './seed.js';
import { startBenchService, STORE_NAME, type BenchStack } from './stack.js';
import { barChart } from './svg.js';
import { roundSpread } from './stats.js';

export interface PeerOptions {
  stack: BenchStack;
  k6: string;
  workDir: string;
  say: (line: string) => void;
  quick: boolean;
  rate: number;
  durationS: number;
  rounds: number;
  maxVus: number;
  maxS: number;
}

export interface PeerRow {
  server: string;
  rate: { p50: number[]; p99: number[]; cpuUs: number[]; errors: number; dropped: number };
  max: { rps: number[]; cpuUs: number[]; errors: number };
  /** CPU the server spent while nothing was asked of it, in ms per second (timers, heartbeats, polling). */
  idleMsPerS?: number;
}

/** How long every server sits idle, at once, while its CPU is read. */
const IDLE_S = 10;
/** Seconds of each server's warm-up, at its maximum throughput (one with --quick). */
const warmupSeconds = (quick: boolean) => (quick ? 1 : 5);

export interface PeerResult {
  heimdallVersion?: string;
  /** Why Heimdall could not be measured, when it could not. */
  heimdallError?: string;
  pinned: boolean;
  /** Seconds each server ran at its maximum throughput before the rounds. */
  warmupS?: number;
  rows: PeerRow[];
  failures: string[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Pins every process (and thread) of the tree under `pid` to `cpus` (taskset). */
function pin(pid: number | undefined, cpus: string): void {
  if (pid === undefined) return;
  for (const p of processTree(readProcs(), pid)) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', cpus, String(p)], { stdio: 'ignore' });
    } catch {
      // exited meanwhile
    }
  }
}

interface Server {
  name: string;
  url: string;
  pid: () => number | undefined;
  stop: () => Promise<void>;
}

function heimdallConfig(o: { port: number; mgmtPort: number; cache: boolean; jwksUrl: string; checkUrl: string; modelId: string; keyFile: string; rulesFile: string }): string {
  return `serve:
  host: 127.0.0.1
  port: ${o.port}
management:
  host: 127.0.0.1
  port: ${o.mgmtPort}
log:
  level: error
  format: gelf
metrics:
  enabled: false
cache:
  type: ${o.cache ? 'in-memory' : 'noop'}
mechanisms:
  authenticators:
    - id: jwt
      type: jwt
      config:
        jwks_endpoint:
          url: ${o.jwksUrl}
        assertions:
          issuers: [${DEV_ISSUER}]
          audience: [tiergate]
          allowed_algorithms: [EdDSA]
        subject:
          id: sub
        cache_ttl: ${o.cache ? '5m' : '0s'}
  authorizers:
    - id: openfga
      type: remote
      config:
        endpoint:
          url: ${o.checkUrl}
          headers:
            Content-Type: application/json
            Accept: application/json
        payload: |
          {"authorization_model_id": "${o.modelId}",
           "tuple_key": {"user": "user:{{ .Subject.ID }}", "relation": "can_read", "object": "agent:{{ .Request.URL.Captures.tenant }}/{{ .Request.URL.Captures.agent }}"},
           "contextual_tuples": {"tuple_keys": [{"user": "tenant:{{ .Request.URL.Captures.tenant }}", "relation": "tenant", "object": "agent:{{ .Request.URL.Captures.tenant }}/{{ .Request.URL.Captures.agent }}"}]}}
        expressions:
          - expression: "Payload.allowed == true"
        cache_ttl: ${o.cache ? '5m' : '0s'}
  finalizers:
    - id: assertion
      type: jwt
      config:
        signer:
          name: heimdall
          key_store:
            path: ${o.keyFile}
        ttl: 5m
        header:
          name: X-Tiergate-Assertion
        claims: '{"tenants": [{{ quote .Request.URL.Captures.tenant }}], "htm": "GET"}'
providers:
  file_system:
    src: ${o.rulesFile}
`;
}

async function startHeimdall(bin: string, dir: string, name: string, cache: boolean, upstream: string, o: { jwksUrl: string; checkUrl: string; modelId: string; keyFile: string }): Promise<Server> {
  const [port, mgmtPort] = [await freePort(), await freePort()];
  const rulesFile = join(dir, `${name}-rules.yaml`);
  writeFileSync(
    rulesFile,
    `version: "1alpha4"
rules:
  - id: agents
    match:
      routes:
        - path: /api/v1/tenants/:tenant/agents/:agent
      methods: [GET]
    forward_to:
      host: ${new URL(upstream).host}
      rewrite:
        scheme: http
    execute:
      - authenticator: jwt
      - authorizer: openfga
      - finalizer: assertion
`,
  );
  const configFile = join(dir, `${name}.yaml`);
  writeFileSync(configFile, heimdallConfig({ port, mgmtPort, cache, rulesFile, ...o }));
  const child: ManagedChild = startChild(name, bin, ['serve', 'proxy', '-c', configFile, '--insecure'], { ...process.env, GOMAXPROCS: '1' });
  await waitUntilReady(child, async () => (await fetch(`http://127.0.0.1:${mgmtPort}/.well-known/health`)).ok, 60_000);
  return { name, url: `http://127.0.0.1:${port}`, pid: () => child.process.pid, stop: () => child.stop() };
}

export async function runPeer(o: PeerOptions): Promise<PeerResult> {
  const { stack, say } = o;
  const failures: string[] = [];
  const pinned = availableParallelism() >= 2;
  // The do-nothing upstream, and the bare proxy in front of it.
  const noop = await startBenchService('peer-upstream', 'load/services/noop-server.ts', { PORT: String(await freePort()) }, stack.nodeFlags);
  const bare = await startBenchService('peer-bare-proxy', 'load/services/bare-proxy.ts', { TARGET: noop.url, PORT: String(await freePort()), WORKERS: '1' }, stack.nodeFlags);
  const gw = await stack.startGateway({ name: 'peer', l1: true, workers: 1, env: { TENANT_SERVICE_URL: noop.url } });
  const fx = await seed(gw.url, stack.dataDir, { readers: 32, mixed: 0, revoked: 0, agents: 0 }, say);
  const boot = await bootstrap({ apiUrl: stack.fga.apiUrl, storeName: STORE_NAME, platformAdmins: [], timeoutMs: 5000, model: loadModel() });
  const agents = Array.from({ length: 32 }, (_, i) => `a${i}`);
  // Every decision asked of OpenFGA: no decision cache in process or in Redis (the peer of `heimdall-nocache`).
  const uncached = await stack.startGateway({ name: 'peer-nocache', l1: false, workers: 1, env: { TENANT_SERVICE_URL: noop.url, CACHE_ENABLED: 'false' } });
  const servers: Server[] = [
    { name: 'bare proxy', url: bare.url, pid: () => bare.child.process.pid, stop: () => bare.child.stop() },
    { name: 'tiergate', url: gw.url, pid: () => gw.child.process.pid, stop: () => gw.stop() },
    { name: 'tiergate-nocache', url: uncached.url, pid: () => uncached.child.process.pid, stop: () => uncached.stop() },
  ];
  let heimdallVersion: string | undefined;
  let heimdallError: string | undefined;
  try {
    const bin = await ensureTool(HEIMDALL, say);
    // Built from its module, the binary says `master`: the version is the one tools/heimdall/go.mod pins.
    heimdallVersion = /github\.com\/dadrus\/heimdall (v\S+)/.exec(readFileSync(join(REPO_ROOT, 'tools/heimdall/go.mod'), 'utf8'))?.[1];
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyFile = join(stack.dataDir, 'heimdall-signer.pem');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const common = { jwksUrl: `${gw.url}${DEV_ISSUER_JWKS_PATH}`, checkUrl: `${stack.fga.apiUrl}/stores/${boot.storeId}/check`, modelId: boot.authorizationModelId, keyFile };
    servers.push(await startHeimdall(bin, stack.dataDir, 'heimdall', true, noop.url, common));
    servers.push(await startHeimdall(bin, stack.dataDir, 'heimdall-nocache', false, noop.url, common));
  } catch (err) {
    heimdallError = err instanceof Error ? err.message : String(err);
    say(`  heimdall: ${heimdallError.slice(0, 2000)}`);
  }
  if (pinned) {
    pin(process.pid, '1-' + String(availableParallelism() - 1));
    for (const p of [stack.fga.child.process.pid, stack.redis.child.process.pid, noop.child.process.pid]) pin(p, '1-' + String(availableParallelism() - 1));
    for (const s of servers) pin(s.pid(), '0');
  }
  const rows: PeerRow[] = servers.map((s) => ({ server: s.name, rate: { p50: [], p99: [], cpuUs: [], errors: 0, dropped: 0 }, max: { rps: [], cpuUs: [], errors: 0 } }));
  const itemsFor = (s: Server) => fx.readers.flatMap((u) => agents.map((a) => ({ url: `${s.url}/api/v1/tenants/${fx.tenant}/agents/${a}`, headers: { authorization: `Bearer ${u.token}` } })));
  const run = async (s: Server, mode: 'rate' | 'max' | 'warmup', tag: string): Promise<{ k: K6Result; cpuUs: number }> => {
    const parts = [{ name: s.name, pid: s.pid }];
    const before = cpuSnapshot(parts);
    const seconds = mode === 'max' ? o.maxS : mode === 'warmup' ? warmupSeconds(o.quick) : o.durationS;
    // The warm-up runs flat out, like a max row: a Node server's code is optimised only
    // after thousands of requests, and a few hundred left the first round's fixed-rate row
    // measuring it half-compiled (a quarter dearer than the later rounds, for the bare proxy
    // and tiergate alike; Heimdall is compiled ahead of time).
    const env: Record<string, string> =
      mode === 'rate' ? { MODE: 'rate', RATE: String(o.rate), DURATION: `${seconds}s`, PREALLOC: '64', MAXVUS: '64' } : { MODE: 'max', VUS: String(o.maxVus), DURATION: `${seconds}s` };
    env.RUN_ID = tag;
    const k = await runK6(o.k6, 'read.js', env, { expect: [200], items: itemsFor(s) }, o.workDir, tag, seconds + 60);
    const ms = cpuMsBetween(before, cpuSnapshot(parts))[s.name] ?? 0;
    return { k, cpuUs: (ms * 1000) / Math.max(1, k.requests) };
  };
  for (const s of servers) {
    try {
      await run(s, 'warmup', `peer-${s.name}-warmup`.replace(/\W+/g, '-'));
    } catch (err) {
      failures.push(`${s.name} warm-up: ${String(err).slice(0, 500)}`);
    }
  }
  // Background cost: every server idle at once for IDLE_S, after its warm-up.
  const idleParts = servers.map((s) => ({ name: s.name, pid: s.pid }));
  const idleBefore = cpuSnapshot(idleParts);
  await new Promise((r) => setTimeout(r, (o.quick ? 2 : IDLE_S) * 1000));
  const idleMs = cpuMsBetween(idleBefore, cpuSnapshot(idleParts));
  servers.forEach((s, i) => {
    const ms = idleMs[s.name];
    if (ms !== undefined) rows[i]!.idleMsPerS = ms / (o.quick ? 2 : IDLE_S);
  });
  say(`  idle CPU: ${servers.map((s, i) => `${s.name} ${rows[i]!.idleMsPerS?.toFixed(1) ?? '–'} ms/s`).join(', ')}`);
  for (let round = 0; round < o.rounds; round++) {
    for (const mode of ['rate', 'max'] as const) {
      for (const [i, s] of servers.entries()) {
        const tag = `peer-${s.name}-${mode}-${round}`.replace(/\W+/g, '-');
        try {
          const { k, cpuUs } = await run(s, mode, tag);
          const row = rows[i]!;
          if (mode === 'rate') {
            row.rate.p50.push(k.p50);
            row.rate.p99.push(k.p99);
            row.rate.cpuUs.push(cpuUs);
            row.rate.errors += k.failed;
            row.rate.dropped += k.dropped;
          } else {
            row.max.rps.push(k.rps);
            row.max.cpuUs.push(cpuUs);
            row.max.errors += k.failed;
          }
          say(`  ${s.name} ${mode} round ${round + 1}: ${mode === 'rate' ? `p50 ${k.p50.toFixed(2)} ms, p99 ${k.p99.toFixed(2)} ms` : `${k.rps.toFixed(0)} req/s`}, ${cpuUs.toFixed(0)} µs CPU/request, errors ${k.failed}`);
        } catch (err) {
          failures.push(`${s.name} ${mode} round ${round + 1}: ${String(err).slice(0, 500)}`);
        }
      }
    }
  }
  if (pinned) pin(process.pid, `0-${availableParallelism() - 1}`);
  for (const s of servers.slice(2)) await s.stop();
  await gw.stop();
  await bare.child.stop();
  await noop.child.stop();
  return { ...(heimdallVersion ? { heimdallVersion } : {}), ...(heimdallError ? { heimdallError } : {}), pinned, warmupS: warmupSeconds(o.quick), rows, failures };
}

/** The ratios the peer row is judged by, each from the medians of this run, with the spread of the rounds. */
function targetLines(rows: PeerRow[]): string[] {
  const by = new Map(rows.map((r) => [r.server, r]));
  const ratio = (a: number[] | undefined, b: number[] | undefined) => {
    if (!a?.length || !b?.length) return undefined;
    const lo = Math.min(...a) / Math.max(...b);
    const hi = Math.max(...a) / Math.min(...b);
    return { mid: median(a) / median(b), lo, hi };
  };
  const targets: Array<{ what: string; r: ReturnType<typeof ratio>; holds: (x: number) => boolean; goal: string }> = [
    { what: 'tiergate ÷ Heimdall, warm max throughput', r: ratio(by.get('tiergate')?.max.rps, by.get('heimdall')?.max.rps), holds: (x) => x >= 1.5, goal: '≥ 1.5' },
    { what: 'tiergate ÷ Heimdall, CPU per request at the fixed rate', r: ratio(by.get('tiergate')?.rate.cpuUs, by.get('heimdall')?.rate.cpuUs), holds: (x) => x <= 0.85, goal: '≤ 0.85' },
    {
      what: 'tiergate ÷ Heimdall, max throughput with every decision asked of OpenFGA',
      r: ratio(by.get('tiergate-nocache')?.max.rps, by.get('heimdall-nocache')?.max.rps),
      holds: (x) => x >= 1.3,
      goal: '≥ 1.3',
    },
    { what: 'tiergate ÷ bare proxy, warm max throughput', r: ratio(by.get('tiergate')?.max.rps, by.get('bare proxy')?.max.rps), holds: (x) => x >= 0.8, goal: '≥ 0.8' },
  ];
  const f = (x: number) => x.toFixed(2);
  return [
    '| ratio (medians; range from the rounds\' extremes) | target | measured | holds |',
    '| --- | ---: | ---: | --- |',
    ...targets.map((t) =>
      t.r === undefined
        ? `| ${t.what} | ${t.goal} | – | not measured |`
        : `| ${t.what} | ${t.goal} | ${f(t.r.mid)} (${f(t.r.lo)}–${f(t.r.hi)}) | ${t.holds(t.r.mid) ? (t.holds(t.r.lo) && t.holds(t.r.hi) ? 'yes' : 'yes, within the spread of the rounds') : t.holds(t.r.lo) || t.holds(t.r.hi) ? 'no, within the spread of the rounds' : 'no'} |`,
    ),
  ];
}

/**
 * The share of its one core a server used in its max rows (CPU µs per request × requests
 * per second, per round; the median): near 1 it was the limit, well below it was not.
 */
export function coreUsedAtMax(row: PeerRow): number | undefined {
  const shares = row.max.rps.flatMap((rps, i) => {
    const cpuUs = row.max.cpuUs[i];
    return cpuUs === undefined ? [] : [(rps * cpuUs) / 1e6];
  });
  return shares.length === 0 ? undefined : median(shares);
}

export function peerReport(r: PeerResult, head: string): { md: string; charts: Record<string, string> } {
  const f = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '–');
  const spread = (xs: number[], d = 2) => (xs.length > 1 ? `${f(roundSpread(xs).min, d)}–${f(roundSpread(xs).max, d)}` : '–');
  const lines = [
    head,
    '',
    `Setup: the same 1,024 reads (32 members of tenant acme-sales × 32 agents, GET /api/v1/tenants/acme-sales/agents/{id}) through each server, to the same do-nothing upstream. ` +
      `tiergate: \`dist/server/gateway-main.js\` (compiled), one worker. Heimdall${r.heimdallVersion ? ` (${r.heimdallVersion})` : ''}: \`heimdall serve proxy\` built from \`tools/heimdall\`, GOMAXPROCS=1; its JWT authenticator against the dev issuer's JWKS (served by the tiergate gateway), its remote authorizer posting the same OpenFGA Check (can_read on the agent, the tenant link contextual), its JWT finalizer signing an assertion (ES256) in X-Tiergate-Assertion; it writes two access-log lines per request whatever \`log.level\` says (here \`error\`, gelf format), tiergate none at LOG_LEVEL=warn; with its caches in memory (\`cache: in-memory\`, cache_ttl 5m on authenticator and authorizer) and off (\`cache: noop\`). ` +
      (r.pinned ? 'Each server pinned to core 0 (taskset), k6, OpenFGA, Redis and the upstream to the other core(s). ' : 'Not pinned (one core only). ') +
      `\`tiergate-nocache\` is the same gateway with \`CACHE_ENABLED=false\`: every decision is an OpenFGA Check. ${r.warmupS ? `Each server first warmed up at its maximum throughput for ${r.warmupS} s. ` : ''}Rounds interleaved (bare, tiergate, tiergate without cache, Heimdall, Heimdall without cache, …); medians of the rounds, with their range. CPU idle: each server's CPU while all of them sat idle for ${IDLE_S} s after their warm-up (/proc, 10 ms ticks), the part of CPU per request at a fixed rate that is paid per second, not per request.`,
    '',
  ];
  if (r.heimdallError) lines.push(`**Heimdall could not be measured here:** ${r.heimdallError.split('\n').slice(0, 6).join(' ')}`, '');
  if (r.failures.length > 0) lines.push(`**Failures:** ${r.failures.join('; ')}`, '');
  lines.push(
    '| server | p50 ms at fixed rate (range) | p99 ms (range) | CPU µs/request at fixed rate (range) | max throughput req/s (range) | CPU µs/request at max | its core used at max | CPU idle, ms/s | errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const row of r.rows) {
    const used = coreUsedAtMax(row);
    lines.push(
      `| ${row.server} | ${f(median(row.rate.p50))} (${spread(row.rate.p50)}) | ${f(median(row.rate.p99))} (${spread(row.rate.p99)}) | ${f(median(row.rate.cpuUs), 0)} (${spread(row.rate.cpuUs, 0)}) | ${f(median(row.max.rps), 0)} (${spread(row.max.rps, 0)}) | ${f(median(row.max.cpuUs), 0)} | ${used === undefined ? '–' : `${f(used * 100, 0)}%`} | ${f(row.idleMsPerS ?? Number.NaN, 1)} | ${row.rate.errors + row.max.errors} |`,
    );
  }
  lines.push(
    '',
    `Its core used at max: the server's CPU time per second of its max rows (median of the rounds). Below about 90%, something else held it back (k6 and the upstream share the other core), so its max throughput is a floor of what it could do.`,
    '',
    ...targetLines(r.rows),
    '',
    'Charts: [CPU per request and throughput](peer.svg).',
    '',
  );
  const charts = {
    'peer.svg': barChart({
      title: 'One core per server: CPU per request and max throughput',
      yLabel: 'µs CPU/request · req/s ÷ 10',
      categories: r.rows.map((x) => x.server),
      series: [
        { name: 'CPU µs/request', values: r.rows.map((x) => median(x.rate.cpuUs)) },
        { name: 'max req/s ÷ 10', values: r.rows.map((x) => median(x.max.rps) / 10) },
      ],
    }),
  };
  return { md: `${lines.join('\n')}\n`, charts };
}
