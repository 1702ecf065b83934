// `npm run bench`: tiergate's added latency, measured side by side with its own
// baselines in one run on this machine (docs/benchmarks.md says what each row means).
//
//   npm run bench                       the full run (15–25 minutes on a 2-core VM)
//   npm run bench -- --quick            a smoke run: a few seconds per scenario
//   npm run bench -- --only revocation  one part: instrument,floor,bare,warm,framework,redis,miss,openfga,new,mixed,revocation,layers
//   npm run bench -- --profile          CPU profile of one gateway process at max throughput (warm)
//   npm run bench -- --profile-miss     the same with every decision a cache miss
//   npm run bench -- --profile-miss --profile-rate 200   either profile at a fixed arrival rate instead
//   npm run bench -- --only bare,warm --gateway-env="ASSERTION_TTL_S=600"   an A/B run of a gateway setting
//   npm run bench -- --only bare,warm --bare-burn-us 110   a control: the bare proxy spins 110 µs per request
//   npm run bench -- --only bare,warm --node-flags=--initial-old-space-size=0   every Node process on V8's own heap sizing
//            instead of tiergate's heap flag (src/shared/node-flags.ts), which every process gets otherwise, baselines too
//            (varied runs, like partial and quick ones, never overwrite the committed result files)
//   options: --workers N (gateway workers; default one per core) --rounds N (interleaved
//            rounds of bare proxy vs warm gateway, default 3; medians reported) --rate N (fixed arrival rate, default 1000/s) --low-rate N (a second rate for the
//            bare proxy and warm gateway rows, default 500/s, 0 = none) --miss-rate N (a second rate for the
//            miss and OpenFGA-direct rows, default 200/s, 0 = none) --duration S --max-vus N --revocations N
//
// Everything runs on free loopback ports and stops by itself: every k6 run is bounded
// in time, every loop in count and time.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { Agent, fetch as undiciFetch } from 'undici';
import { bootstrap } from '../src/fga/bootstrap.js';
import { loadModel } from '../src/fga/model.js';
import { ensureTool, K6 } from '../src/stack/go-tools.js';
import { REPO_ROOT } from '../src/shared/repo-root.js';
import { summarizeProfile } from './lib/cpuprofile.js';
import { runK6, type K6Result } from './lib/k6.js';
import { compareRounds, roundSpread } from './lib/stats.js';
import { withHeapFlags } from '../src/shared/node-flags.js';
import { measureLayers, type LayerResult } from './lib/layers.js';
import { decisionsByLayer, deltaBy, deltaQuantile, hitRatio, runtimeDelta, scrape, type RuntimeDelta, type Scrape } from './lib/prom.js';
import { measureRevocation, type RevocationResult } from './lib/revocation.js';
import { attribute, type Attribution } from './lib/perf-attribution.js';
import { cleanPerfMaps } from './lib/perf-map.js';
import { cpuMsBetween, processTree, readProcs, snapshot as cpuSnapshot, ticksPerSecond } from './lib/proc-cpu.js';
import { busyMs, cpuTimes, stealShare } from './lib/steal.js';
import { inBatches } from './lib/concurrency.js';
import { runScale } from './lib/scale.js';
import { scaleReport } from './lib/scale-report.js';
import { peerReport, runPeer } from './lib/peer.js';
import { grantMember, missMembers, seed, TENANT, type Fixtures } from './lib/seed.js';
import { BENCH_ALLOW_TTL_S, BenchStack, parseGatewayEnv, STORE_NAME, type BenchVariation, type GatewayProcess } from './lib/stack.js';

const PARTS = ['instrument', 'floor', 'bare', 'warm', 'framework', 'miss', 'openfga', 'new', 'mixed', 'redis', 'revocation', 'layers'] as const;
type Part = (typeof PARTS)[number];
/** Runs of their own, only when asked for by name (`--only scale`, `--only peer`): their own stack and report. */
const SEPARATE = ['scale', 'peer'] as const;

const execFileAsync = promisify(execFile);

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    rate: { type: 'string' },
    duration: { type: 'string' },
    'max-vus': { type: 'string' },
    revocations: { type: 'string' },
    'low-rate': { type: 'string' },
    'miss-rate': { type: 'string' },
    workers: { type: 'string' },
    rounds: { type: 'string' },
    'node-flags': { type: 'string' },
    'gateway-env': { type: 'string' },
    'bare-burn-us': { type: 'string' },
    profile: { type: 'boolean', default: false },
    'profile-miss': { type: 'boolean', default: false },
    'profile-rate': { type: 'string' },
    perf: { type: 'boolean', default: false },
    'perf-miss': { type: 'boolean', default: false },
    tenants: { type: 'string' },
    users: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write('usage: npm run bench -- [--quick] [--only a,b,…] [--workers N] [--rounds N] [--rate N] [--low-rate N] [--miss-rate N] [--duration S] [--max-vus N] [--revocations N] [--node-flags="--flag …"] [--gateway-env="KEY=VALUE …"] [--bare-burn-us N] [--profile | --profile-miss] [--profile-rate N] [--perf | --perf-miss]\n');
  process.exit(0);
}
const quick = args.quick === true;
const only = new Set((args.only ?? PARTS.join(',')).split(',').map((s) => s.trim()));
for (const p of only) {
  if (!PARTS.includes(p as Part) && !(SEPARATE as readonly string[]).includes(p)) throw new Error(`--only: unknown part "${p}" (known: ${[...PARTS, ...SEPARATE].join(', ')})`);
}
const separate = SEPARATE.filter((p) => only.has(p));
if (separate.length > 0 && only.size > 1) throw new Error(`--only ${separate[0]} runs by itself`);
const want = (p: Part) => only.has(p);
const RATE = Number(args.rate ?? 1000);
const DURATION_S = Number(args.duration ?? (quick ? 3 : 20));
const WARMUP_S = quick ? 1 : 5;
const MAX_S = quick ? 3 : 15;
const MAX_VUS = Number(args['max-vus'] ?? 32);
const REVOCATIONS = Number(args.revocations ?? (quick ? 20 : 200));
/** A second, lower fixed rate for the bare proxy and warm gateway rows (0 = none). */
const LOW_RATE = Number(args['low-rate'] ?? (quick ? 0 : 500));
/** A second fixed rate for the cache-miss and OpenFGA-direct rows, one a miss-only load can sustain here (0 = none). */
const MISS_RATE = Number(args['miss-rate'] ?? (quick ? 0 : 200));
/**
 * Members the miss row cycles through, each decision kept 1 s (CACHE_ALLOW_TTL_S=1, no
 * jitter): a member comes round again after MISS_USERS / rate seconds, so every request
 * is a miss while that is over 1 s, up to 2,500 req/s (the row's hit ratio shows it).
 */
const MISS_USERS = quick ? 600 : 2500;
/** The miss gateway keeps a decision 1 s, so a member asked again after that is a miss. */
const MISS_GATEWAY_ENV = { CACHE_ALLOW_TTL_S: '1', CACHE_DENY_TTL_S: '1', CACHE_TTL_JITTER: '0' };
/** Interleaved rounds of bare proxy vs warm gateway (the headline comparison). */
const ROUNDS = Number(args.rounds ?? (quick ? 1 : 3));
/** The profile's load: a fixed arrival rate (req/s), or 0 = max throughput (closed loop). */
const PROFILE_RATE = Number(args['profile-rate'] ?? 0);
if (!(PROFILE_RATE >= 0)) throw new Error('--profile-rate: a number of requests per second (0 = max throughput)');
const say = (line: string) => process.stderr.write(`${line}\n`);
/** Gateway worker processes: every core by default (1 when only PGlite is available). */

interface Row {
  id: string;
  scenario: string;
  load: string;
  /** 'rate' = the headline fixed rate; 'low' = the scenario's lower rate (LOW_RATE, or MISS_RATE for e and f); 'max' = closed loop. */
  mode: 'rate' | 'low' | 'max';
  k6: K6Result;
  /** Decisions by the layer that answered, from the gateway's /metrics (before/after). */
  layers?: Record<string, number>;
  hitRatio?: number;
  /** Gateway-side decision latency (histogram estimate, ms) by layer. */
  decisionP99Ms?: Record<string, number>;
  /** OpenFGA calls as the gateway saw them, p99 (histogram estimate, ms), by call. */
  openfgaP99Ms?: Record<string, number>;
  /** Gateway-side p50/p99 (histogram estimates, ms): whole request in the gateway, and the upstream part of it. */
  inside?: { requestP50: number; requestP99: number; upstreamP50: number; upstreamP99: number };
  /** The gateway's longest event-loop delay and GC pauses during the row (every worker). */
  runtime?: RuntimeDelta;
  /** Redis layer lookups by result (hit, miss, stale, bypass, error = timed out or failed). */
  redisLookups?: Record<string, number>;
  /** Signature work in the gateway during the row: bearer tokens verified (not from the cache), identity assertions signed (not reused). */
  signatures?: { tokensVerified: number; assertionsSigned: number };
  errors: number;
  /** What the errors were (k6 counts by class), when there were any. */
  errorDetail?: string;
  /** Share of CPU time the hypervisor gave to other guests during the row (/proc/stat). */
  steal?: number;
  /** Interleaved rounds this row is the median of. */
  rounds?: number;
  /** k6's p99 of each of those rounds, in round order. */
  roundP99s?: number[];
  /** Where the CPU went: µs of CPU per request by part (gateway processes summed), and `other` (the rest of the machine). */
  cpuUsPerRequest?: Record<string, number>;
  /** Share of both cores' time that something ran during the row (the rest was idle or stolen). */
  busyShare?: number;
}

/** µs of CPU per request by part, gateway replicas folded into one `gateway` part, and what the machine ran besides (`other`). */
function cpuPerRequest(byPart: Record<string, number>, busy: number | undefined, requests: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, ms] of Object.entries(byPart)) {
    const key = name.startsWith('gateway') ? 'gateway' : name;
    out[key] = (out[key] ?? 0) + (ms * 1000) / requests;
  }
  const accounted = Object.values(byPart).reduce((a, b) => a + b, 0);
  if (busy !== undefined) out.other = (Math.max(0, busy - accounted) * 1000) / requests;
  return out;
}

process.chdir(REPO_ROOT);
const startedAt = new Date();
const loadBefore = loadavg();
const cpuAtStart = cpuTimes();
const k6 = await ensureTool(K6, say);
const k6Version = execFileSync(k6, ['version'], { encoding: 'utf8' }).trim().split('\n')[0]!;
const git = (() => {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).length;
    return dirty > 0 ? `${head} + ${dirty} uncommitted file(s) under src/` : head;
  } catch {
    return 'unknown';
  }
})();
/** Extra Node/V8 flags for every Node process of the stack (upstream, proxies, gateways), for A/B runs of runtime settings. */
const nodeFlags = (args['node-flags'] ?? '').split(/\s+/).filter(Boolean);
/** What every Node process runs with: tiergate's heap flag (src/shared/node-flags.ts), baselines too, unless --node-flags gives its own. */
const runtimeFlags = withHeapFlags(nodeFlags);
// --perf: every Node process writes a perf map (/tmp/perf-<pid>.map), so `perf script` can
// name JavaScript frames; V8's own log, which that flag turns on, goes to a temp dir.
const perfFlags = args.perf || args['perf-miss'] ? ['--perf-basic-prof', `--logfile=${join(mkdtempSync(join(tmpdir(), 'tiergate-v8log-')), 'v8.log')}`] : [];
/** A/B runs: settings of every gateway, and CPU the bare proxy burns per request (a control). */
const variation: BenchVariation = { gatewayEnv: parseGatewayEnv(args['gateway-env'] ?? ''), bareBurnUs: Number(args['bare-burn-us'] ?? 0) };
if (!(variation.bareBurnUs >= 0)) throw new Error('--bare-burn-us: microseconds of CPU per request (0 = none)');
const gatewayEnvText = Object.entries(variation.gatewayEnv).map(([k, v]) => `${k}=${v}`).join(', ');
const varied = gatewayEnvText !== '' || variation.bareBurnUs > 0 || nodeFlags.length > 0;
const stack = new BenchStack(say, [...runtimeFlags, ...perfFlags], variation);
let interrupted = false;
const onSignal = () => {
  interrupted = true;
  void stack.stop().finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

/** What the report shows (medians for the interleaved rows). */
const rows: Row[] = [];
/** Every measured run, as measured (in the JSON). */
const rawRows: Row[] = [];
let revocation: RevocationResult | undefined;
let layers: LayerResult | undefined;
/** Parts that failed: named in the report (whose other rows stand), and the run exits 1. */
const failures: string[] = [];

/** Runs a part after the k6 rows; a failure is recorded instead of losing the rows measured so far. */
async function part(name: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    failures.push(`${name}: ${message}`);
    say(`  ${name} FAILED: ${message}`);
  }
}
let workDir = '';

try {
  say(`tiergate bench: ${quick ? 'QUICK smoke run' : 'full run'}; k6 and the system under test share ${cpus().length} cores; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
  if (separate[0] === 'scale') {
    await stack.start({ openfga: 'postgres', baselines: 'bare' });
  } else if (separate[0] === 'peer') {
    await stack.start({ workers: 1, baselines: 'bare' });
  } else await stack.start(args.workers ? { workers: Number(args.workers) } : {});
  say(`database: ${stack.db.note}; ${stack.workers} gateway worker(s), and as many bare proxy processes`);
  workDir = join(stack.dataDir, 'k6');
  mkdirSync(workDir, { recursive: true });

  if (separate[0] === 'scale') {
    await scaleRun();
  } else if (separate[0] === 'peer') {
    await peerRun();
  } else if (args.profile || args['profile-miss']) {
    await profileRun(args['profile-miss'] === true);
  } else if (args.perf || args['perf-miss']) {
    await perfRun(args['perf-miss'] === true);
  } else {
    await benchRun();
  }
} finally {
  if (!interrupted) await stack.stop();
}

// ---------------------------------------------------------------- scale and peer

/** The header of a separate run's report: command, code, machine, load. */
function runHead(title: string): string {
  const loadAfter = loadavg();
  return (
    `# ${title} — ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC${quick ? ' (QUICK smoke run: too short to quote)' : ''}\n\n` +
    `Command: \`npm run bench -- ${process.argv.slice(2).join(' ')}\`. Code: ${git}. Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, ${k6Version}; ` +
    `k6 and every process under test share these cores. Load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}` +
    `${loadBefore[0]! > 1 ? ' (other work was running: figures are noisy)' : ''}.`
  );
}

/** Writes a separate run's report and charts; `latest` names only on a full (not quick) run. */
function writeSeparate(name: string, md: string, charts: Record<string, string>, json: unknown): void {
  const outDir = join(REPO_ROOT, 'load', 'results');
  mkdirSync(outDir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(outDir, `${name}-${stamp}.json`), JSON.stringify(json, null, 2));
  if (!quick && !varied) {
    writeFileSync(join(outDir, `${name}-latest.md`), md);
    for (const [file, svg] of Object.entries(charts)) writeFileSync(join(outDir, file), svg);
  }
  process.stdout.write(md);
  say(`results: load/results/${name}-${stamp}.json${!quick && !varied ? `, load/results/${name}-latest.md and its charts` : ' (quick or varied run: the latest files left as they were)'}`);
}

async function scaleRun(): Promise<void> {
  const sizes = (args.tenants ?? (quick ? '300' : '1000,10000')).split(',').map(Number);
  if (sizes.some((x) => !(x >= 10))) throw new Error('--tenants: tenant counts, comma-separated, each at least 10');
  const users = Number(args.users ?? (quick ? 3000 : 100_000));
  const result = await runScale({ stack, k6, workDir, say, sizes: sizes.sort((a, b) => a - b), users, rate: Number(args.rate ?? 500), durationS: DURATION_S, quick });
  const head = `${runHead('tiergate at scale')}\n\nSetup: OpenFGA on PostgreSQL (its own database in a throwaway cluster: \`--datastore-engine postgres\`, migrated), redis-server, the admin plane on the same PostgreSQL; two gateway replicas A and B (\`dist/server/gateway-main.js\`, compiled, one worker each, LOG_LEVEL=warn, CACHE_ALLOW_TTL_S=${BENCH_ALLOW_TTL_S}). One organization, 100 divisions nested 4 deep, tenants added at each step (every 5th under the division that is moved), ${users.toLocaleString('en-US')} users at the largest size (members of tenants, 5 organization admins, 2 admins per division, about 300 tenant admins). Warm row: k6 at ${Number(args.rate ?? 500)} req/s for ${DURATION_S} s against replica A, the same 1,024 reads at every size (32 members of a tenant at depth 4 × 32 agents), after warming until ≥ 99.5% hits. Cold row: 1,000 members never asked before (their tokens verified beforehand), one read each at 100 req/s. CPU per request: replica A's process, from /proc.`;
  const { md, charts } = scaleReport(result, head);
  writeSeparate('scale', md, charts, { startedAt, git, quick, sizes, users, result });
  if (result.failures.length > 0) process.exitCode = 1;
}

async function peerRun(): Promise<void> {
  const result = await runPeer({ stack, k6, workDir, say, quick, rate: Number(args.rate ?? 300), durationS: DURATION_S, rounds: ROUNDS, maxVus: MAX_VUS, maxS: MAX_S });
  const { md, charts } = peerReport(result, runHead('tiergate against Heimdall and the bare proxy'));
  writeSeparate('peer', md, charts, { startedAt, git, quick, result });
  if (result.failures.length > 0) process.exitCode = 1;
}

// ---------------------------------------------------------------- the run

async function benchRun(): Promise<void> {
  let gateway = await stack.startGateway({ name: 'warm', l1: true, workers: stack.workers });
  say(`gateway ${gateway.url} (${gateway.workers} worker${gateway.workers === 1 ? '' : 's'}), metrics ${gateway.metricsUrl}`);
  const fx = await seed(gateway.url, stack.dataDir, { readers: 32, mixed: 96, revoked: 20, agents: 32 }, say);
  const boot = await bootstrap({ apiUrl: stack.fga.apiUrl, storeName: STORE_NAME, platformAdmins: [], timeoutMs: 5000, model: loadModel() });

  const floorItems = await assertedItems(stack.tenantUrl, fx);
  const bareItems = floorItems.map((it) => ({ ...it, url: it.url.replace(stack.tenantUrl, stack.bareUrl) }));

  if (want('instrument')) {
    const items = floorItems.map((it) => ({ url: it.url.replace(stack.tenantUrl, stack.noopUrl), headers: {} }));
    rows.push(...(await scenario({ id: 'k', name: 'k6 against a do-nothing server (the instrument alone)', script: 'read.js', data: { expect: [200], items } })));
  }
  if (want('floor')) rows.push(...(await scenario({ id: 'a', name: 'tenant service direct (floor)', script: 'read.js', data: { expect: [200], items: floorItems } })));
  const bare: Scenario = { id: 'b', name: 'bare proxy, no auth', script: 'read.js', data: { expect: [200], items: bareItems } };
  const warmGateway: Scenario = {
    id: 'c',
    name: 'gateway, decisions warm in L1',
    script: 'read.js',
    data: { expect: [200], items: gatewayItems(gateway.url, fx) },
    gateway,
    warmUntilHit: true,
  };
  if (want('bare') && want('warm')) {
    const modes: Mode[] = LOW_RATE > 0 ? ['low', 'rate', 'max'] : ['rate', 'max'];
    rows.push(...(await interleaved([bare, warmGateway], modes)));
  } else if (want('bare')) rows.push(...(await scenario(bare)));
  else if (want('warm')) rows.push(...(await scenario(warmGateway)));
  if (want('framework')) {
    const items = floorItems.map((it) => ({ ...it, url: it.url.replace(stack.tenantUrl, stack.honoProxyUrl) }));
    rows.push(...(await scenario({ id: 'h', name: 'bare proxy inside Hono, 5 do-nothing middlewares (framework cost)', script: 'read.js', data: { expect: [200], items } })));
  }
  if (want('miss') || want('openfga')) {
    // A resource's permission is asked of its tenant and cached per (member, tenant), so a
    // new object is no miss (row n): a miss is a member whose decision is not cached.
    say(`cache-miss rows: ${MISS_USERS} more members of ${TENANT} for the time of rows e and f`);
    const members = await missMembers(gateway.url, stack.dataDir, MISS_USERS);
    const missGateway = want('miss') ? await stack.startGateway({ name: 'miss', l1: true, workers: stack.workers, env: MISS_GATEWAY_ENV }) : undefined;
    const missReads = missGateway ? missItems(missGateway.url, fx, members) : [];
    const miss: Scenario | undefined = missGateway && {
      id: 'e',
      name: `gateway, every decision a cache miss (${MISS_USERS} members in turn, decisions kept 1 s)`,
      script: 'read.js',
      data: { expect: [200], items: missReads },
      gateway: missGateway,
    };
    const direct: Scenario | undefined = want('openfga')
      ? {
          id: 'f',
          name: 'OpenFGA Check direct (engine only)',
          script: 'fga-check.js',
          data: { url: `${stack.fga.apiUrl}/stores/${boot.storeId}/check`, modelId: boot.authorizationModelId, tenant: TENANT, users: members.map((u) => `user:${u.id}`) },
        }
      : undefined;
    // Every member's token verified and cached in every worker before the rows (a token
    // cache miss is authentication, not the decision this row measures).
    if (missGateway) await verifyTokensEverywhere(missGateway, missReads);
    if (miss && direct && MISS_RATE > 0) {
      // The miss target's comparison, interleaved like b and c. With them, the bare proxy at
      // the same rate: what a miss request includes besides its decision (the proxying and
      // the upstream), which OpenFGA direct does not.
      const proxied: Scenario = { ...bare, id: 'p', name: 'bare proxy, no auth, at the miss rate (what a miss includes besides its decision)', lowRate: MISS_RATE };
      const [p, e, f] = await interleaved([proxied, miss, direct], ['low']);
      rows.push(p!, e!);
      rows.push(...(await scenario(miss, ['rate', 'max'], { warmed: true })));
      await missGateway!.stop();
      rows.push(f!, ...(await scenario(direct, ['rate', 'max'], { warmed: true })));
    } else {
      if (miss) rows.push(...(await scenario(miss)));
      await missGateway?.stop();
      if (direct) rows.push(...(await scenario(direct)));
    }
    await missMembers(gateway.url, stack.dataDir, MISS_USERS, false);
  }
  if (want('new')) {
    rows.push(...(await scenario({ id: 'n', name: "gateway, a new object every request (unique agent ids, upstream 404): the tenant's cached decision", script: 'read.js', data: newObjectData(gateway.url, fx), gateway })));
  }
  if (want('redis')) {
    await gateway.stop();
    gateway = await stack.startGateway({ name: 'redis', l1: false, workers: stack.workers });
    rows.push(...(await scenario({ id: 'd', name: 'gateway, L1 off: decisions from Redis', script: 'read.js', data: { expect: [200], items: gatewayItems(gateway.url, fx) }, gateway, warmUntilHit: true })));
  }
  if (want('mixed')) {
    // After the L1-off row (the mixed run's writes keep invalidating for a while: the
    // ReadChanges poller replays them), on a fresh gateway with the in-process layer on.
    if (want('redis')) {
      await gateway.stop();
      gateway = await stack.startGateway({ name: 'mixed', l1: true, workers: stack.workers });
    }
    const adminPort = new URL(gateway.url).port;
    const data = {
      readBase: gateway.url,
      adminBase: `http://admin.bench.local:${adminPort}`,
      adminHostAddress: '127.0.0.1',
      adminToken: fx.adminToken,
      tenant: TENANT,
      agents: fx.agents,
      users: fx.mixed,
    };
    const mixedGateway = gateway;
    rows.push(...(await scenario({
      id: 'g',
      name: 'gateway, mixed: cached reads + 1% revocations/re-grants (admin API)',
      script: 'mixed.js',
      data,
      gateway: mixedGateway,
      warmUntilHit: true,
      beforeEach: async () => {
        for (const u of fx.mixed) await grantMember(mixedGateway.url, fx.adminToken, u.id, true);
      },
    })));
  }
  await gateway.stop();

  if (want('revocation')) {
    await part('revocation', async () => {
      say(`revocation-to-deny: two gateway processes (A, B) sharing one Redis, ${REVOCATIONS} revocations`);
      const a = await stack.startGateway({ name: 'A', l1: true, workers: 1, metricsPort: 0 });
      const b = await stack.startGateway({ name: 'B', l1: true, workers: 1, ...(stack.db.url ? {} : { dataDir: stack.cloneDataDir('b') }) });
      const before = await scrape(b.metricsUrl);
      revocation = await measureRevocation({ a: a.url, b: b.url, adminToken: fx.adminToken, users: fx.revoked, agent: fx.agents[0]!, count: REVOCATIONS, say });
      revocation.warmLayer = decisionsByLayer(before, await scrape(b.metricsUrl));
      await a.stop();
      await b.stop();
      say(
        `  ${revocation.firstReadDenied}/${revocation.revocations} denied on B's very next read; deny after answer p50 ${revocation.deny.p50.toFixed(2)} ms, p99 ${revocation.deny.p99.toFixed(2)} ms, max ${revocation.deny.max.toFixed(2)} ms`,
      );
    });
  }
  if (want('layers')) {
    await part('layers', async () => {
      say('decision latency by layer (in-process DecisionCache, real OpenFGA and Redis, one check at a time)');
      layers = await measureLayers({
        fgaApiUrl: stack.fga.apiUrl,
        storeId: boot.storeId,
        modelId: boot.authorizationModelId,
        redisUrl: stack.redis.url,
        tenant: TENANT,
        users: fx.readers.map((u) => u.id),
        agents: fx.agents,
        samples: quick ? { l1: 5000, redis: 1000, openfga: 300 } : { l1: 50_000, redis: 10_000, openfga: 2000 },
      });
    });
  }
  report();
}

type ReadItem = { url: string; headers: Record<string, string> };

/** GET `agent` of the bench tenant as the holder of `token`. */
function agentRead(base: string, fx: Fixtures, agent: string, token: string): ReadItem {
  return { url: `${base}/api/v1/tenants/${fx.tenant}/agents/${agent}`, headers: { authorization: `Bearer ${token}` } };
}

/** GET one of 32 agents as one of 32 readers: 1,024 distinct requests (32 decisions: each reader's on the tenant), round-robin. */
function gatewayItems(base: string, fx: Fixtures): ReadItem[] {
  return fx.readers.flatMap((u) => fx.agents.map((a) => agentRead(base, fx, a, u.token)));
}

/** Sends every request once, `concurrency` at a time, over new connections; each must answer 200. */
async function requestEach(items: ReadItem[], concurrency: number): Promise<void> {
  const dispatcher = new Agent({ connections: concurrency });
  try {
    await inBatches(items, concurrency, async ({ url, headers }) => {
      const res = await undiciFetch(url, { headers, dispatcher });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
    });
  } finally {
    await dispatcher.close();
  }
}

/** Bearer tokens verified and identity assertions signed between two scrapes of a gateway. */
function signatureWork(before: Scrape, after: Scrape): NonNullable<Row['signatures']> {
  return {
    tokensVerified: deltaBy(before, after, 'tiergate_token_verifications_total', 'result').get('verified') ?? 0,
    assertionsSigned: deltaBy(before, after, 'tiergate_assertions_total', 'source').get('signed') ?? 0,
  };
}

function signatureNote(r: Row): string {
  const s = r.signatures;
  if (s === undefined || s.tokensVerified + s.assertionsSigned === 0) return '';
  return `; tokens verified ${s.tokensVerified}, assertions signed ${s.assertionsSigned}`;
}

/**
 * Sends every request, in passes over new connections, until a pass has (almost) no token
 * left to verify. Each worker of a node:cluster gateway keeps its own token cache and gets
 * a connection's requests, so one pass leaves about half the tokens unverified in each
 * worker: a miss row would then measure first sight of tokens, not the decision.
 */
async function verifyTokensEverywhere(gateway: GatewayProcess, items: ReadItem[]): Promise<void> {
  for (let pass = 1; ; pass++) {
    const before = await scrape(gateway.metricsUrl);
    await requestEach(items, 16);
    const verified = signatureWork(before, await scrape(gateway.metricsUrl)).tokensVerified;
    say(`  tokens: pass ${pass} over ${items.length} requests verified ${verified}`);
    if (verified <= items.length * 0.005) return;
    if (pass === 12) throw new Error(`after ${pass} passes, ${verified} of ${items.length} tokens were still verified in a pass`);
  }
}

/**
 * The requests a profiled or recorded gateway is driven with, brought to the state being
 * measured: every decision an in-process hit (warm), or every miss member's token verified
 * in every worker (`miss`: each request's decision then expires before it comes round).
 */
async function steadyState(gateway: GatewayProcess, fx: Fixtures, miss: boolean, id: string): Promise<{ expect: number[]; items: ReadItem[] }> {
  if (miss) {
    const items = missItems(gateway.url, fx, await missMembers(gateway.url, stack.dataDir, MISS_USERS));
    await verifyTokensEverywhere(gateway, items);
    return { expect: [200], items };
  }
  const data = { expect: [200], items: gatewayItems(gateway.url, fx) };
  // Until (almost) every decision is an in-process hit.
  await warm({ id, name: `warm-up of the ${id} gateway`, script: 'read.js', data, gateway, warmUntilHit: true });
  return data;
}

/** Request n: member n mod N reads one of the 32 agents (the upstream answers 200). */
function missItems(base: string, fx: Fixtures, members: { id: string; token: string }[]): ReadItem[] {
  return members.map((u, i) => agentRead(base, fx, fx.agents[i % fx.agents.length]!, u.token));
}

/** Every request a new agent id (never seen before; the upstream answers 404), as one of the 32 readers. */
function newObjectData(base: string, fx: Fixtures) {
  return { expect: [404], unique: { base: `${base}/api/v1/tenants/${fx.tenant}/agents/m`, headers: fx.readers.map((u) => ({ authorization: `Bearer ${u.token}` })) } };
}

/** The same 1,024 requests, each with the assertion the gateway would have attached (for the baselines). */
async function assertedItems(base: string, fx: Fixtures): Promise<{ url: string; headers: Record<string, string> }[]> {
  const out: { url: string; headers: Record<string, string> }[] = [];
  for (const u of fx.readers) {
    for (const a of fx.agents) {
      const path = `/api/v1/tenants/${fx.tenant}/agents/${a}`;
      const assertion = stack.signer.sign(u.id, { type: 'tenant', id: fx.tenant }, [fx.tenant], 'GET', path);
      out.push({ url: `${base}${path}`, headers: { 'x-tiergate-assertion': assertion } });
    }
  }
  return out;
}

interface Scenario {
  id: string;
  name: string;
  script: string;
  data: unknown;
  gateway?: GatewayProcess;
  beforeEach?: () => Promise<void>;
  /** Repeat the warm-up until (almost) every decision is a cache hit (the warm rows). */
  warmUntilHit?: boolean;
  /** Its lower fixed rate, when not the default (lowRateOf). */
  lowRate?: number;
}
type Mode = 'rate' | 'low' | 'max';

/** The miss and OpenFGA-direct rows: their lower rate is MISS_RATE. */
function missCompared(sc: Scenario): boolean {
  return sc.id === 'e' || sc.id === 'f';
}

/** The lower fixed rate of a scenario: its own, MISS_RATE for the miss and OpenFGA rows, else LOW_RATE. */
function lowRateOf(sc: Scenario): number {
  return sc.lowRate ?? (missCompared(sc) ? MISS_RATE : LOW_RATE);
}

/**
 * Warm-up rate: half the fixed rate, and at most 250 req/s while filling a cache. A
 * fill (Redis miss, version reads, OpenFGA) costs far more than a hit, and under a
 * saturated box the Redis version reads can overrun REDIS_TIMEOUT_MS, and an
 * answer whose versions could not be read is not cached: warming at full rate can
 * keep the cache cold.
 */
function warmupRate(sc: Scenario): number {
  return Math.round(sc.warmUntilHit ? Math.min(250, RATE / 2) : RATE / 2);
}

function k6Run(sc: Scenario, mode: 'warmup' | Mode, tag: string) {
  const rate = mode === 'warmup' ? warmupRate(sc) : mode === 'low' ? lowRateOf(sc) : RATE;
  const seconds = mode === 'max' ? MAX_S : mode === 'warmup' ? WARMUP_S : DURATION_S;
  const env: Record<string, string> =
    mode === 'max'
      ? { MODE: 'max', VUS: String(MAX_VUS), DURATION: `${seconds}s` }
      : { MODE: 'rate', RATE: String(rate), DURATION: `${seconds}s`, PREALLOC: '64', MAXVUS: '64' };
  env.RUN_ID = `${tag}${Date.now().toString(36)}`;
  // The mixed run warms its users' decisions with reads only, then writes 1%.
  if (sc.script === 'mixed.js') env.WRITE_FRACTION = mode === 'warmup' ? '0' : '0.01';
  return runK6(k6, sc.script, env, sc.data, workDir, tag, seconds + 60);
}

async function warm(sc: Scenario): Promise<void> {
  say(`[${sc.id}] ${sc.name}`);
  await sc.beforeEach?.();
  for (let i = 0; i < (sc.warmUntilHit ? 6 : 1); i++) {
    const before = await scrape(sc.gateway?.metricsUrl);
    await k6Run(sc, 'warmup', `${sc.id}-warmup-${i}`);
    const ratio = hitRatio(decisionsByLayer(before, await scrape(sc.gateway?.metricsUrl)));
    if (sc.warmUntilHit) say(`  warm-up ${i + 1}: hit ratio ${ratio === undefined ? '–' : `${(ratio * 100).toFixed(1)}%`}`);
    if (!sc.warmUntilHit || (ratio !== undefined && ratio >= 0.995)) break;
  }
}

/** One row; `round` (from 0) when it is one of several interleaved rounds. */
async function measure(sc: Scenario, mode: Mode, round?: number): Promise<Row> {
  await sc.beforeEach?.();
  const gateway = sc.gateway;
  const before: Scrape = await scrape(gateway?.metricsUrl);
  const parts = stack.cpuParts();
  const procBefore = cpuSnapshot(parts);
  const cpuBefore = cpuTimes();
  const wallBefore = performance.now();
  const k = await k6Run(sc, mode, `${sc.id}-${mode}-${round ?? 0}`);
  const cpuAfter = cpuTimes();
  const wallMs = performance.now() - wallBefore;
  const byPart = cpuMsBetween(procBefore, cpuSnapshot(parts));
  const steal = stealShare(cpuBefore, cpuAfter);
  const busy = busyMs(cpuBefore, cpuAfter, ticksPerSecond());
  const after: Scrape = await scrape(gateway?.metricsUrl);
  const row: Row = {
    id: sc.id,
    scenario: sc.name,
    mode,
    load: mode === 'max' ? `max (${MAX_VUS} VUs closed loop)` : `${mode === 'low' ? lowRateOf(sc) : RATE} req/s fixed`,
    k6: k,
    // http_req_failed already counts unexpected statuses and failed admin calls; a stale
    // denial (403 right after a re-grant) is an "expected" status for k6, so it is added.
    errors: k.failed + (k.counters.granted_denied ?? 0),
    ...(steal !== undefined ? { steal } : {}),
    ...(k.requests > 0 ? { cpuUsPerRequest: cpuPerRequest(byPart, busy, k.requests) } : {}),
    ...(busy !== undefined ? { busyShare: busy / (wallMs * cpus().length) } : {}),
  };
  if (gateway) {
    row.layers = decisionsByLayer(before, after);
    const ratio = hitRatio(row.layers);
    if (ratio !== undefined) row.hitRatio = ratio;
    row.redisLookups = Object.fromEntries(deltaBy(before, after, 'tiergate_decision_cache_lookups_total', 'result', { layer: 'redis' }));
    row.signatures = signatureWork(before, after);
    const q = (name: string, p: number) => deltaQuantile(before, after, name, p) * 1000;
    row.inside = {
      requestP50: q('tiergate_request_duration_seconds', 0.5),
      requestP99: q('tiergate_request_duration_seconds', 0.99),
      upstreamP50: q('tiergate_upstream_duration_seconds', 0.5),
      upstreamP99: q('tiergate_upstream_duration_seconds', 0.99),
    };
    row.runtime = runtimeDelta(before, after);
    row.decisionP99Ms = Object.fromEntries(
      Object.keys(row.layers)
        .filter((l) => (row.layers![l] ?? 0) > 0)
        .map((l) => [l, deltaQuantile(before, after, 'tiergate_decision_duration_seconds', 0.99, { layer: l }) * 1000]),
    );
  }
  if (gateway && row.layers && (row.layers.openfga ?? 0) > 0) {
    row.openfgaP99Ms = Object.fromEntries(
      (['check', 'read'] as const).map((call) => [call, deltaQuantile(before, after, 'tiergate_openfga_request_duration_seconds', 0.99, { call, outcome: 'ok' }) * 1000]),
    );
  }
  if (row.errors > 0) {
    // Say what went wrong: k6's counts by class, and the gateway's last warnings.
    const byClass = Object.entries(k.counters).filter(([name, n]) => /^(unexpected|admin_errors)_/.test(name) && n > 0);
    row.errorDetail = byClass.map(([name, n]) => `${name} ${n}`).join(', ');
    const tail = gateway?.child.output().trim().split('\n').slice(-5).join('\n');
    say(`  errors: ${row.errorDetail || 'no class recorded'}${k.warnings.map((w) => `\n  k6: ${w}`).join('')}${tail ? `\n  gateway output (last lines):\n${tail}` : ''}`);
  }
  rawRows.push(row);
  say(
    `  ${row.load}${round !== undefined ? ` (round ${round + 1})` : ''}: ${k.rps.toFixed(0)} req/s, p50 ${k.p50.toFixed(2)} ms, p99 ${k.p99.toFixed(2)} ms, errors ${row.errors}${k.dropped ? `, dropped ${k.dropped}` : ''}${steal !== undefined ? `, CPU steal ${(steal * 100).toFixed(0)}%` : ''}${row.hitRatio !== undefined ? `, hit ratio ${(row.hitRatio * 100).toFixed(1)}%` : ''}${k.counters.revoked_served !== undefined ? `, revoked served ${k.counters.revoked_served} (revocations ${k.counters.revocations ?? 0})` : ''}` +
      (row.cpuUsPerRequest
        ? `\n    CPU µs/request: ${Object.entries(row.cpuUsPerRequest)
            .filter(([, v]) => v >= 1)
            .map(([p, v]) => `${p} ${v.toFixed(0)}`)
            .join(', ')}${row.busyShare !== undefined ? ` (busy ${(row.busyShare * 100).toFixed(0)}%)` : ''}`
        : '') +
      (row.runtime ? `\n    ${runtimeLine(row.runtime)}` : ''),
  );
  return row;
}

function gcCell(gc: RuntimeDelta['gc']): string {
  return Object.entries(gc).map(([kind, g]) => `${kind} ${g.count} (${g.ms.toFixed(0)} ms)`).join(', ') || 'none';
}

function runtimeLine(r: RuntimeDelta): string {
  return `gateway event loop: longest delay ${r.loopDelayMaxMs.toFixed(1)} ms; GC pauses: ${gcCell(r.gc)}`;
}

/** One scenario on its own: warm-up, the fixed rate(s), then maximum throughput. */
async function scenario(sc: Scenario, modes: Mode[] = missCompared(sc) && MISS_RATE > 0 ? ['low', 'rate', 'max'] : ['rate', 'max'], opts: { warmed?: boolean } = {}): Promise<Row[]> {
  if (!opts.warmed) await warm(sc);
  const out: Row[] = [];
  for (const mode of modes) out.push(await measure(sc, mode));
  return out;
}

/**
 * Scenarios compared with each other, interleaved: ROUNDS rounds of (x, y, …) at each
 * load, so a burst of other work on the machine hits each alike. Each returned row (by
 * scenario, then load) is the median over the rounds.
 */
async function interleaved(scs: Scenario[], modes: Mode[]): Promise<Row[]> {
  for (const sc of scs) await warm(sc);
  const got = new Map<string, Row[]>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of modes) {
      for (const sc of scs) {
        const row = await measure(sc, mode, ROUNDS > 1 ? r : undefined);
        got.set(`${sc.id}/${mode}`, [...(got.get(`${sc.id}/${mode}`) ?? []), row]);
      }
    }
  }
  return scs.flatMap((sc) => modes.map((mode) => medianRow(got.get(`${sc.id}/${mode}`)!)));
}

function median(values: number[]): number {
  const v = values.filter((x) => !Number.isNaN(x)).sort((x, y) => x - y);
  if (v.length === 0) return Number.NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Median of each latency/throughput figure over the rounds; counts (errors, dropped, decisions) are summed. */
function medianRow(list: Row[]): Row {
  if (list.length === 1) return list[0]!;
  const first = list[0]!;
  const k = (f: (r: Row) => number) => median(list.map(f));
  const sum = (f: (r: Row) => number) => list.reduce((acc, r) => acc + f(r), 0);
  const layers: Record<string, number> = {};
  for (const r of list) for (const [l, n] of Object.entries(r.layers ?? {})) layers[l] = (layers[l] ?? 0) + n;
  const out: Row = {
    ...first,
    rounds: list.length,
    roundP99s: list.map((r) => r.k6.p99),
    k6: {
      ...first.k6,
      requests: sum((r) => r.k6.requests),
      rps: k((r) => r.k6.rps),
      p50: k((r) => r.k6.p50),
      p95: k((r) => r.k6.p95),
      p99: k((r) => r.k6.p99),
      max: k((r) => r.k6.max),
      failed: sum((r) => r.k6.failed),
      dropped: sum((r) => r.k6.dropped),
    },
    errors: sum((r) => r.errors),
  };
  const steals = list.map((r) => r.steal).filter((x): x is number => x !== undefined);
  if (steals.length > 0) out.steal = median(steals);
  const busies = list.map((r) => r.busyShare).filter((x): x is number => x !== undefined);
  if (busies.length > 0) out.busyShare = median(busies);
  // Figures by name (CPU by part, p99s by layer or call): the median of each; counts: summed.
  const medians = (pick: (r: Row) => Record<string, number> | undefined) =>
    Object.fromEntries(Object.keys(pick(first)!).map((name) => [name, k((r) => pick(r)?.[name] ?? Number.NaN)]));
  if (first.cpuUsPerRequest) out.cpuUsPerRequest = medians((r) => r.cpuUsPerRequest);
  if (first.decisionP99Ms) out.decisionP99Ms = medians((r) => r.decisionP99Ms);
  if (first.openfgaP99Ms) out.openfgaP99Ms = medians((r) => r.openfgaP99Ms);
  if (first.redisLookups) {
    const lookups: Record<string, number> = {};
    for (const r of list) for (const [result, n] of Object.entries(r.redisLookups ?? {})) lookups[result] = (lookups[result] ?? 0) + n;
    out.redisLookups = lookups;
  }
  if (first.signatures) {
    out.signatures = { tokensVerified: sum((r) => r.signatures?.tokensVerified ?? 0), assertionsSigned: sum((r) => r.signatures?.assertionsSigned ?? 0) };
  }
  const details = list.map((r) => r.errorDetail).filter((d): d is string => d !== undefined && d !== '');
  if (details.length > 0) out.errorDetail = details.join('; ');
  if (first.layers) {
    out.layers = layers;
    const ratio = hitRatio(layers);
    if (ratio !== undefined) out.hitRatio = ratio;
  }
  if (first.inside) {
    out.inside = {
      requestP50: k((r) => r.inside!.requestP50),
      requestP99: k((r) => r.inside!.requestP99),
      upstreamP50: k((r) => r.inside!.upstreamP50),
      upstreamP99: k((r) => r.inside!.upstreamP99),
    };
  }
  if (first.runtime) {
    // The round whose longest event-loop delay is the median one, with its GC pauses.
    const byDelay = list.filter((r) => r.runtime).sort((a, b) => a.runtime!.loopDelayMaxMs - b.runtime!.loopDelayMaxMs);
    out.runtime = byDelay[Math.floor((byDelay.length - 1) / 2)]!.runtime!;
  }
  return out;
}

// ---------------------------------------------------------------- profile

async function profileRun(miss: boolean): Promise<void> {
  const dir = join(stack.dataDir, 'cpuprofile');
  mkdirSync(dir, { recursive: true });
  const gateway = await stack.startGateway({ name: 'profile', l1: true, workers: 1, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`], ...(miss ? { env: MISS_GATEWAY_ENV } : {}) });
  const fx = await seed(gateway.url, stack.dataDir, { readers: 32, mixed: 0, revoked: 0, agents: 32 }, say);
  say(
    `[profile] ${miss ? `every decision a cache miss (${MISS_USERS} members in turn, decisions kept 1 s): their tokens verified first` : 'warming every decision'}, then ${PROFILE_RATE > 0 ? `${PROFILE_RATE} req/s` : 'max throughput'} on one gateway process with --cpu-prof`,
  );
  const data = await steadyState(gateway, fx, miss, 'profile');
  const before = await scrape(gateway.metricsUrl);
  const t0 = performance.now();
  const env: Record<string, string> =
    PROFILE_RATE > 0
      ? { MODE: 'rate', RATE: String(PROFILE_RATE), DURATION: `${MAX_S}s`, PREALLOC: '64', MAXVUS: '64', RUN_ID: 'prate' }
      : { MODE: 'max', VUS: String(MAX_VUS), DURATION: `${MAX_S}s`, RUN_ID: 'pmax' };
  const k = await runK6(k6, 'read.js', env, data, workDir, 'profile', MAX_S + 60);
  const t1 = performance.now();
  const layersSeen = decisionsByLayer(before, await scrape(gateway.metricsUrl));
  const t2 = performance.now();
  await gateway.stop();
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
  // The max phase, located back from the profile's end (the stop came t2 - t1 ms after it).
  const p = summarizeProfile(join(dir, file), 30, { fromEndMs: t2 - t0 - 500, toEndMs: t2 - t1 + 500 });
  const load = PROFILE_RATE > 0 ? `${PROFILE_RATE} req/s fixed` : 'max throughput';
  const command = `npm run bench -- ${miss ? '--profile-miss' : '--profile'}${PROFILE_RATE > 0 ? ` --profile-rate ${PROFILE_RATE}` : ''}`;
  const lines = [
    `# CPU profile: one gateway process (GATEWAY_WORKERS=1), ${miss ? 'every decision a cache miss' : 'warm decisions'}, ${load}`,
    '',
    `${PROFILE_RATE > 0 ? `k6 at a fixed ${PROFILE_RATE} req/s` : `${MAX_VUS} closed-loop k6 VUs`} for ${MAX_S} s: ${k.rps.toFixed(0)} req/s, p50 ${k.p50.toFixed(2)} ms, p99 ${k.p99.toFixed(2)} ms, errors ${k.failed}; decisions ${Object.entries(layersSeen).map(([l, n]) => `${l} ${n}`).join(', ')}. ` +
      `Self time of the gateway process during that phase only: ${p.totalMs.toFixed(0)} ms sampled, idle ${(p.idleShare * 100).toFixed(1)}% (k6, the upstream, OpenFGA and Redis share the ${cpus().length} cores). Command: \`${command}\`.`,
    '',
    '| self % | self ms | package |',
    '| ---: | ---: | --- |',
    ...p.packages.map((f) => `| ${(f.share * 100).toFixed(1)} | ${f.selfMs.toFixed(0)} | ${f.name} |`),
    '',
    '| self % | self ms | function |',
    '| ---: | ---: | --- |',
    ...p.frames.map((f) => `| ${(f.share * 100).toFixed(1)} | ${f.selfMs.toFixed(0)} | \`${f.name}\` |`),
  ];
  const outDir = join(REPO_ROOT, 'load', 'results');
  mkdirSync(outDir, { recursive: true });
  const name = `profile${miss ? '-miss' : ''}${PROFILE_RATE > 0 ? `-${PROFILE_RATE}rps` : ''}-latest.md`;
  if (!quick && !varied) writeFileSync(join(outDir, name), `${lines.join('\n')}\n`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

// ---------------------------------------------------------------- perf

/**
 * The warm gateway (or, with `miss`, the gateway of row e at the miss rate) and the same
 * proxy inside Hono (row h) at the same rate, each while `perf record` samples its
 * processes; every sample charged to its nearest JavaScript frame
 * (load/lib/perf-attribution.ts). What the gateway's stages cost in the running server,
 * with the kernel, GC and Node's HTTP machinery in the same units.
 */
async function perfRun(miss: boolean): Promise<void> {
  const PERF_HZ = 997;
  const rate = miss ? MISS_RATE || 200 : RATE;
  try {
    execFileSync('perf', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('--perf needs Linux perf (Debian: apt-get install linux-perf) and permission to record other processes (root, or kernel.perf_event_paranoid ≤ 1)');
  }
  const gateway = await stack.startGateway({ name: miss ? 'miss' : 'warm', l1: true, workers: stack.workers, ...(miss ? { env: MISS_GATEWAY_ENV } : {}) });
  const fx = await seed(gateway.url, stack.dataDir, { readers: 32, mixed: 0, revoked: 0, agents: 32 }, say);
  if (miss) say(`[perf] every decision a cache miss (${MISS_USERS} members in turn, decisions kept 1 s): their tokens verified in every worker first`);
  const gatewayData = await steadyState(gateway, fx, miss, 'perf');
  const honoItems = (await assertedItems(stack.tenantUrl, fx)).map((it) => ({ ...it, url: it.url.replace(stack.tenantUrl, stack.honoProxyUrl) }));
  const honoPid = stack.cpuParts().find((p) => p.name === 'hono proxy')!.pid()!;
  const recorded: Array<{ name: string; rps: number; requests: number; a: Attribution; layers?: Record<string, number> }> = [];
  for (const t of [
    { name: 'hono proxy', pid: honoPid, data: { expect: [200], items: honoItems } },
    { name: 'gateway', pid: gateway.child.process.pid!, data: gatewayData },
  ]) {
    const file = join(stack.dataDir, `perf-${t.name.replace(' ', '-')}.data`);
    const before = t.name === 'gateway' ? await scrape(gateway.metricsUrl) : undefined;
    const run = runK6(k6, 'read.js', { MODE: 'rate', RATE: String(rate), DURATION: `${DURATION_S + 8}s`, PREALLOC: '64', MAXVUS: '64', RUN_ID: `perf${t.name[0]}` }, t.data, workDir, `perf-${t.name[0]}`, DURATION_S + 80);
    await new Promise((r) => setTimeout(r, 4000));
    say(`[perf] ${t.name}: ${rate} req/s, perf record of its processes for ${DURATION_S} s at ${PERF_HZ} Hz`);
    const pids = processTree(readProcs(), t.pid);
    await execFileAsync('perf', ['record', '-F', String(PERF_HZ), '-e', 'cpu-clock', '-g', '-o', file, '-p', pids.join(','), '--', 'sleep', String(DURATION_S)]);
    const k = await run;
    // Names for reused code space: each address keeps its latest function (./lib/perf-map.ts).
    cleanPerfMaps(pids);
    const layersSeen = before ? decisionsByLayer(before, await scrape(gateway.metricsUrl)) : undefined;
    // A recording's call chains run to tens of megabytes of text.
    const { stdout } = await execFileAsync('perf', ['script', '-i', file, '-F', 'comm,tid,ip,sym,dso'], { encoding: 'latin1', maxBuffer: 1 << 30 });
    const a = attribute(stdout);
    recorded.push({ name: t.name, rps: k.rps, requests: k.rps * DURATION_S, a, ...(layersSeen ? { layers: layersSeen } : {}) });
    say(`  ${k.rps.toFixed(0)} req/s, p99 ${k.p99.toFixed(2)} ms, errors ${k.failed}; ${a.total} samples`);
  }
  const usPer = (r: (typeof recorded)[number], samples: number) => (samples * 1e6) / PERF_HZ / r.requests;
  const [hono, gw] = recorded as [(typeof recorded)[number], (typeof recorded)[number]];
  const categories = [...new Set([...hono.a.byCategory.keys(), ...gw.a.byCategory.keys()])]
    .map((c) => ({ c, h: usPer(hono, hono.a.byCategory.get(c) ?? 0), g: usPer(gw, gw.a.byCategory.get(c) ?? 0) }))
    .sort((x, y) => y.g - y.h - (x.g - x.h));
  const fmt = (v: number) => v.toFixed(1);
  const command = `npm run bench -- ${miss ? '--perf-miss' : '--perf'}${quick ? ' --quick' : ''}${args.workers ? ` --workers ${args.workers}` : ''}${miss ? (args['miss-rate'] !== undefined ? ` --miss-rate ${rate}` : '') : args.rate !== undefined ? ` --rate ${rate}` : ''}`;
  const decisions = gw.layers ? `; the gateway's decisions: ${Object.entries(gw.layers).filter(([, n]) => n > 0).map(([l, n]) => `${l} ${n}`).join(', ')}` : '';
  const lines = [
    `# Where the CPU goes: the ${miss ? 'gateway with every decision a cache miss (row e)' : 'warm gateway'} against the same proxy inside Hono, ${rate} req/s`,
    '',
    `Command: \`${command}\`. Code: ${git}. Each process tree sampled by \`perf record -g\` (cpu-clock, ${PERF_HZ} Hz, ${DURATION_S} s) while k6 drove it at a fixed ${rate} req/s: ` +
      `hono proxy ${hono.rps.toFixed(0)} req/s, gateway ${gw.rps.toFixed(0)} req/s${decisions}; ${stack.workers} worker${stack.workers === 1 ? '' : 's'} each. Each sample is charged to the nearest JavaScript frame on its stack (so a V8 builtin, inline-cache miss or runtime call goes to the code that made it), ` +
      'kernel samples and garbage collection apart. µs of CPU per request; sorted by what the gateway spends more.',
    '',
    '| | hono proxy µs/request | gateway µs/request | gateway − hono proxy |',
    '| --- | ---: | ---: | ---: |',
    `| **all** | ${fmt(usPer(hono, hono.a.total))} | ${fmt(usPer(gw, gw.a.total))} | ${fmt(usPer(gw, gw.a.total) - usPer(hono, hono.a.total))} |`,
    ...categories.filter((x) => Math.max(x.h, x.g) >= 0.5).map((x) => `| ${x.c} | ${fmt(x.h)} | ${fmt(x.g)} | ${fmt(x.g - x.h)} |`),
  ];
  const outDir = join(REPO_ROOT, 'load', 'results');
  mkdirSync(outDir, { recursive: true });
  if (!quick && !varied) writeFileSync(join(outDir, miss ? 'perf-miss-latest.md' : 'perf-latest.md'), `${lines.join('\n')}\n`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

// ---------------------------------------------------------------- report

function ms(v: number | undefined): string {
  return v === undefined || Number.isNaN(v) ? '–' : v.toFixed(2);
}

function report(): void {
  const loadAfter = loadavg();
  const runSteal = stealShare(cpuAtStart, cpuTimes());
  const row = (id: string, mode: 'rate' | 'low' | 'max') => rows.find((r) => r.id === id && r.mode === mode);
  const table = [
    '| | scenario | load | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | dropped | CPU steal | cache hit ratio |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows.map((r) => {
      const split = r.layers
        ? ` (${Object.entries(r.layers)
            .filter(([, n]) => n > 0)
            .map(([l, n]) => `${l} ${n}`)
            .join(', ')}${(r.redisLookups?.error ?? 0) > 0 ? `; Redis lookups over budget ${r.redisLookups!.error}` : ''}${signatureNote(r)})`
        : '';
      return `| ${r.id} | ${r.scenario} | ${r.load}${r.rounds ? ` (median of ${r.rounds})` : ''} | ${r.k6.rps.toFixed(0)} | ${ms(r.k6.p50)} | ${ms(r.k6.p95)} | ${ms(r.k6.p99)} | ${ms(r.k6.max)} | ${r.errors}${r.errorDetail ? ` (${r.errorDetail})` : ''} | ${r.k6.dropped} | ${r.steal === undefined ? '–' : `${(r.steal * 100).toFixed(0)}%`} | ${r.hitRatio === undefined ? '–' : `${(r.hitRatio * 100).toFixed(1)}%${split}`} |`;
    }),
  ];

  const targets: string[] = [];
  const verdict = (ok: boolean | undefined) => (ok === undefined ? 'not measured' : ok ? '**met**' : '**NOT met**');
  // A latency difference between two fixed-rate rows is evidence only when the
  // baseline kept up with the rate and was not slower than the row measured against
  // it: otherwise the machine's noise is larger than the effect. A measured row that
  // could not keep the rate while its baseline did is a failure, not noise.
  const keptUp = (r: (typeof rows)[number]) => r.k6.dropped <= 0.01 * (r.k6.requests + r.k6.dropped);
  const compared = (base: (typeof rows)[number], measured: (typeof rows)[number], diff: number, ok: boolean) => {
    if (!keptUp(base) || diff < 0) return '**inconclusive** (the baseline could not keep the rate, or was slower: rerun on a quieter machine)';
    return verdict(ok && keptUp(measured));
  };
  // Paired by round, and how far the baseline itself moved: a difference within that movement is noise.
  const byRound = (base: Row, measured: Row, baseName: string) => {
    const cmp = compareRounds(base.roundP99s ?? [], measured.roundP99s ?? []);
    if (!cmp) return '';
    const signed = (v: number) => `${v < 0 ? '−' : '+'}${ms(Math.abs(v))}`;
    return `; by round ${cmp.paired.map(signed).join(', ')} ms, while the ${baseName}'s own p99 went from ${ms(cmp.baselineMin)} to ${ms(cmp.baselineMax)} ms between its rounds (${ms(cmp.baselineSpread)} ms apart)`;
  };
  const b = row('b', 'rate');
  const c = row('c', 'rate');
  const bMax = row('b', 'max');
  const cMax = row('c', 'max');
  const g = rows.filter((r) => r.id === 'g');
  if (b && c) {
    const added = c.k6.p99 - b.k6.p99;
    targets.push(`| warm p99 added over the bare proxy at ${RATE} req/s ≤ 1 ms | ${ms(c.k6.p99)} − ${ms(b.k6.p99)} = **${ms(added)} ms**${byRound(b, c, 'bare proxy')} | ${compared(b, c, added, added <= 1)} |`);
  }
  if (bMax && cMax) {
    const ratio = cMax.k6.rps / bMax.k6.rps;
    targets.push(`| warm max throughput ≥ 70% of the bare proxy's | ${cMax.k6.rps.toFixed(0)} / ${bMax.k6.rps.toFixed(0)} req/s = **${(ratio * 100).toFixed(0)}%** | ${verdict(ratio >= 0.7)} |`);
  }
  // The miss row and OpenFGA direct at the same rate, at each rate both ran.
  const missPairs = (
    [
      ['low', MISS_RATE],
      ['rate', RATE],
    ] as const
  ).flatMap(([mode, rate]) => {
    const em = row('e', mode);
    const fm = row('f', mode);
    return em && fm ? [{ mode, rate, em, fm }] : [];
  });
  for (const { rate, em, fm } of missPairs) {
    const over = em.k6.p99 - fm.k6.p99;
    targets.push(
      `| cache-miss p99 ≤ OpenFGA's own p99 + 1 ms (at ${rate} req/s) | ${ms(em.k6.p99)} − ${ms(fm.k6.p99)} = **${ms(over)} ms** over${byRound(fm, em, 'OpenFGA Check')} | ${compared(fm, em, over, over <= 1)} |`,
    );
  }
  // Read as added latency, like the warm target: what a miss adds over the bare proxy at the
  // same rate, against OpenFGA's own p99. Not one of the targets: printed as a reading.
  const pLow = row('p', 'low');
  const eLow = row('e', 'low');
  const fLow = row('f', 'low');
  if (pLow && eLow && fLow) {
    const added = eLow.k6.p99 - pLow.k6.p99;
    targets.push(
      `| (reading) cache-miss p99 added over the bare proxy ≤ OpenFGA's own p99 + 1 ms (at ${MISS_RATE} req/s) | (${ms(eLow.k6.p99)} − ${ms(pLow.k6.p99)}) − ${ms(fLow.k6.p99)} = **${ms(added - fLow.k6.p99)} ms** over${byRound(pLow, eLow, 'bare proxy')} | ${compared(pLow, eLow, added - fLow.k6.p99, added <= fLow.k6.p99 + 1)} |`,
    );
  }
  if (layers) {
    targets.push(`| in-process (L1) decision ≤ 20 µs | p50 ${layers.l1.p50.toFixed(1)} µs, p99 **${layers.l1.p99.toFixed(1)} µs** | ${verdict(layers.l1.p99 <= 20)} |`);
  }
  const totalErrors = rows.reduce((s, r) => s + r.errors, 0);
  if (rows.length > 0) targets.push(`| zero errors in every scenario | ${totalErrors} error(s) over ${rows.length} runs | ${verdict(totalErrors === 0)} |`);
  if (g.length > 0) {
    const served = g.reduce((s, r) => s + (r.k6.counters.revoked_served ?? 0), 0);
    const revs = g.reduce((s, r) => s + (r.k6.counters.revocations ?? 0), 0);
    targets.push(`| mixed run never serves a revoked permission after the admin API answered | ${served} violations over ${revs} revocations | ${verdict(served === 0 && revs > 0)} |`);
  }
  if (revocation) {
    targets.push(
      `| revocation via replica A denied by replica B on the next request | ${revocation.firstReadDenied}/${revocation.revocations} on the first read | ${verdict(revocation.firstReadDenied === revocation.revocations)} |`,
    );
  }

  const ratios: string[] = [];
  const add = (label: string, x: Row | undefined, base: Row | undefined) => {
    if (x && base) ratios.push(`| ${label} | +${ms(x.k6.p50 - base.k6.p50)} | +${ms(x.k6.p99 - base.k6.p99)} |`);
  };
  if (LOW_RATE > 0) add(`gateway warm (L1) over the bare proxy, at ${LOW_RATE} req/s`, row('c', 'low'), row('b', 'low'));
  add('tenant service over the do-nothing server (the upstream and PostgreSQL)', row('a', 'rate'), row('k', 'rate'));
  add('bare proxy over the tenant service (proxy cost)', row('b', 'rate'), row('a', 'rate'));
  add(`gateway warm (L1) over the bare proxy, at ${RATE} req/s`, row('c', 'rate'), row('b', 'rate'));
  add('bare proxy inside Hono over the bare proxy (framework cost)', row('h', 'rate'), row('b', 'rate'));
  add('gateway L1 off (Redis) over the bare proxy', row('d', 'rate'), row('b', 'rate'));
  if (MISS_RATE > 0) {
    add(`gateway cache miss over OpenFGA direct, at ${MISS_RATE} req/s`, row('e', 'low'), row('f', 'low'));
    add(`gateway cache miss over the bare proxy, at ${MISS_RATE} req/s`, row('e', 'low'), row('p', 'low'));
    add(`bare proxy over OpenFGA direct, at ${MISS_RATE} req/s (what a miss includes besides its decision)`, row('p', 'low'), row('f', 'low'));
  }
  // The decision alone on a miss (the gateway's own histogram, so an estimate within its
  // buckets) against OpenFGA direct: what the end-to-end rows add on top is proxying and
  // the upstream, which a miss does not change.
  const decisionOnMiss: string[] = [];
  for (const { rate, em, fm } of missPairs) {
    const d = em.decisionP99Ms?.openfga;
    const seen = em.openfgaP99Ms;
    if (d !== undefined) {
      decisionOnMiss.push(
        `| ${rate} req/s | ${ms(d)} | ${seen ? `${ms(seen.check)} / ${ms(seen.read)}` : '–'} | ${ms(fm.k6.p99)} | ${d - fm.k6.p99 >= 0 ? '+' : ''}${ms(d - fm.k6.p99)} |`,
      );
    }
  }
  add(`gateway cache miss over OpenFGA direct, at ${RATE} req/s`, row('e', 'rate'), row('f', 'rate'));
  const maxRatios = ['a', 'h', 'c', 'd', 'e', 'n', 'g']
    .map((id) => row(id, 'max'))
    .filter((r): r is Row => r !== undefined && bMax !== undefined)
    .map((r) => `| ${r.id} ${r.scenario} | ${r.k6.rps.toFixed(0)} | ${((r.k6.rps / bMax!.k6.rps) * 100).toFixed(0)}% |`);

  const lines: string[] = [
    `# tiergate benchmark — ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC${quick ? ' (QUICK smoke run: too short to quote)' : ''}`,
    '',
    `Command: \`npm run bench${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\`. ` +
      `Code: ${git}. Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, ${k6Version}. ` +
      `**k6 and every process under test share these ${cpus().length} cores**, so each latency includes some of k6's own CPU time, and the maximum-throughput rows are what the whole box does with k6 running on it. ` +
      `Load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}${loadBefore[0]! > 1 ? ' (other work was running: figures are noisy)' : ''}.` +
      (runSteal !== undefined ? ` CPU steal over the whole run: **${(runSteal * 100).toFixed(0)}%** of all CPU time went to other guests of the host${runSteal > 0.05 ? ' (over 5%: the latencies measure the neighbours as much as tiergate)' : ''}.` : ''),
    '',
    `Setup: OpenFGA (memory datastore), redis-server, ${stack.db.note}; ${stack.workers} gateway worker(s) (node:cluster) and the bare proxy with as many; the gateway is \`dist/server/gateway-main.js\` (compiled) with LOG_LEVEL=warn (no per-request access log; neither the upstream nor the bare proxy logs either) and CACHE_ALLOW_TTL_S=${BENCH_ALLOW_TTL_S} (the warm-up fills every decision at once; with the default 300 s they would all expire together mid-run). ` +
      `Node flags of every Node process, the upstream and the baselines as well as the gateway: \`${runtimeFlags.join(' ')}\`${nodeFlags.length > 0 ? ' (`--node-flags`: **a varied run**)' : " (tiergate's heap flag, `src/shared/node-flags.ts`)"}. ` +
      (gatewayEnvText !== '' ? `**Every gateway also has ${gatewayEnvText}** (\`--gateway-env\`). ` : '') +
      (variation.bareBurnUs > 0
        ? `**The bare proxy spins ${variation.bareBurnUs} µs of CPU per request before proxying** (\`--bare-burn-us\`): rows b and p are a control, not the baseline, and the targets' verdicts do not apply. `
        : '') +
      `Fixed-rate rows: k6 constant-arrival-rate, ${RATE} req/s${LOW_RATE > 0 ? ` (and ${LOW_RATE} req/s for b and c)` : ''}${MISS_RATE > 0 ? ` (and ${MISS_RATE} req/s for e and f)` : ''} for ${DURATION_S} s each, after a ${WARMUP_S} s warm-up at half the rate (for the warm rows at most 250 req/s, repeated until ≥ 99.5% of decisions are cache hits). Max rows: ${MAX_VUS} closed-loop VUs for ${MAX_S} s. ` +
      "Reads are GET /api/v1/tenants/acme-sales/agents/{id}: 32 readers × 32 agents = 1,024 distinct requests. An agent's can_read is asked of its tenant first and cached per (reader, tenant), so they are 32 decisions. " +
      `Row e: ${MISS_USERS} more members in turn, on a gateway that keeps a decision 1 s (${Object.entries(MISS_GATEWAY_ENV).map(([k, v]) => `${k}=${v}`).join(', ')}), so each request's decision has expired before its member comes round again; row f asks OpenFGA the request's own question (can_read on a new agent, the tenant link contextual) for the same members; the members exist only for those two rows. Row n asks for a new agent id every time (the upstream answers 404, counted as expected). ` +
      `Rows b and c (the headline comparison) are ${ROUNDS > 1 ? `the median of ${ROUNDS} interleaved rounds (b, c, b, c, …) so that a burst of other work on the machine hits both alike` : 'one run each'}` +
      (MISS_RATE > 0 ? `; so are rows p, e and f at ${MISS_RATE} req/s (p, e, f, p, e, f, …), p being the bare proxy at that rate: what a miss request includes besides its decision` : '') +
      '. ' +
      'Errors = responses with an unexpected status or transport errors (+ admin errors and stale denials in the mixed row); dropped = arrivals k6 could not start on time. CPU steal = the share of all CPU time the hypervisor gave to other guests during the row (`/proc/stat`): on a shared VM, read it before believing a latency. Cache hit ratio = (L1 + Redis) / all decisions, from the gateway\'s /metrics before and after the row.',
    '',
    ...(failures.length > 0 ? [`**Parts that failed in this run** (their figures are missing below): ${failures.join('; ')}.`, ''] : []),
    ...table,
    '',
    '## Targets',
    '',
    '| target | measured (this run) | |',
    '| --- | --- | --- |',
    ...targets,
    '',
  ];
  // What each failed request was, in k6's words (load/k6/common.js `explain`, and k6's own "Request Failed").
  const explained = rawRows.filter((r) => r.errors > 0 && r.k6.warnings.length > 0);
  if (explained.length > 0) {
    lines.push(
      "## What the errors were (k6's warnings, first lines)",
      '',
      ...explained.map((r) => `- ${r.id}, ${r.load}: ${r.k6.warnings.map((w) => `\`${w.replaceAll('`', "'")}\``).join('; ')}`),
      '',
    );
  }
  const withRounds = rows.filter((r) => (r.roundP99s?.length ?? 0) > 1);
  if (withRounds.length > 0) {
    lines.push(
      '## p99 by round',
      '',
      'The interleaved rows above are medians; here is each round\'s p99 (ms), in the order the rounds ran. How far one server\'s p99 moves between its own rounds is the resolution of a p99 comparison in this run: a difference smaller than that is the machine, not the code.',
      '',
      '| | scenario | load | p99 by round | spread |',
      '| --- | --- | --- | --- | ---: |',
      ...withRounds.map((r) => {
        const p = r.roundP99s!;
        return `| ${r.id} | ${r.scenario} | ${r.load} | ${p.map(ms).join(', ')} | ${ms(roundSpread(p).spread)} |`;
      }),
      '',
    );
  }
  if (ratios.length > 0) {
    lines.push('## Added latency at the fixed rate (ms, same run)', '', '| comparison | p50 | p99 |', '| --- | ---: | ---: |', ...ratios, '');
  }
  const inside = rows.filter((r) => r.inside);
  if (inside.length > 0) {
    lines.push(
      '## Inside the gateway (its own /metrics, histogram estimates)',
      '',
      'From arrival to the last byte as the gateway measures it (`tiergate_request_duration_seconds`), and the upstream part of it (`tiergate_upstream_duration_seconds`). What k6 sees on top of this is time in the kernel\'s queues and waiting for a core. ' +
        'Longest event-loop delay: the most any worker\'s loop ran late during the row (`nodejs_eventloop_lag_max_seconds`, 10 ms resolution); GC: the row\'s garbage-collection pauses over every worker (`nodejs_gc_duration_seconds`), count and total. For rounds, the round with the median delay.',
      '',
      '| | scenario | load | request p50 ms | request p99 ms | upstream p50 ms | upstream p99 ms | longest event-loop delay ms | GC pauses |',
      '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |',
      ...inside.map(
        (r) =>
          `| ${r.id} | ${r.scenario} | ${r.load} | ${ms(r.inside!.requestP50)} | ${ms(r.inside!.requestP99)} | ${ms(r.inside!.upstreamP50)} | ${ms(r.inside!.upstreamP99)} | ${r.runtime ? ms(r.runtime.loopDelayMaxMs) : '–'} | ${r.runtime ? gcCell(r.runtime.gc) : '–'} |`,
      ),
      '',
    );
  }
  const withCpu = rows.filter((r) => r.cpuUsPerRequest);
  if (withCpu.length > 0) {
    const cols = ['k6', 'no-op server', 'bare proxy', 'hono proxy', 'gateway', 'upstream', 'postgres', 'openfga', 'redis', 'other'];
    const us = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(0));
    lines.push(
      '## Where the CPU went (µs of CPU per request, by process tree)',
      '',
      'From `/proc/<pid>/stat` before and after each row (user + system time, cluster workers and PostgreSQL backends included; k6 is the runs this process reaped). `other` is what the rest of the machine ran meanwhile (`/proc/stat` busy time minus the parts). Busy = share of both cores\' time that anything ran. Per-request CPU varies far less with the machine\'s noise than latency does, so it is the figure to compare between runs.',
      '',
      `| | scenario | load | busy | ${cols.join(' | ')} | total |`,
      `| --- | --- | --- | ---: | ${cols.map(() => '---:').join(' | ')} | ---: |`,
      ...withCpu.map((r) => {
        const c = r.cpuUsPerRequest!;
        const total = Object.values(c).reduce((a, b) => a + (Number.isNaN(b) ? 0 : b), 0);
        return `| ${r.id} | ${r.scenario} | ${r.load} | ${r.busyShare === undefined ? '–' : `${(r.busyShare * 100).toFixed(0)}%`} | ${cols.map((col) => us(c[col])).join(' | ')} | ${us(total)} |`;
      }),
      '',
    );
  }
  if (decisionOnMiss.length > 0) {
    lines.push(
      '## The decision on a cache miss, without the proxying',
      '',
      'The miss rows above are whole requests (proxy and upstream included) compared with a bare Check. Here the decision alone: its p99 inside the gateway (`tiergate_decision_duration_seconds{layer="openfga"}`, a histogram estimate: buckets at 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 25 ms) against OpenFGA direct in the same run.',
      '',
      '| rate | miss decision p99 ms (gateway) | its OpenFGA Check / Read p99 ms (gateway) | OpenFGA direct p99 ms (k6) | decision − direct |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...decisionOnMiss,
      '',
    );
  }
  if (maxRatios.length > 0) {
    lines.push('## Maximum throughput against the bare proxy', '', '| scenario | req/s | of bare proxy |', '| --- | ---: | ---: |', ...maxRatios, '');
  }
  if (layers) {
    const L = layers;
    lines.push(
      '## Decision latency by layer',
      '',
      'The gateway\'s DecisionCache in the bench process, against this run\'s OpenFGA and Redis, one check at a time, nothing else running (`npm run bench -- --only layers`):',
      '',
      '| layer | samples | p50 µs | p99 µs | max µs |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...(['l1', 'redis', 'openfga', 'engine'] as const).map((k) => {
        const label = { l1: 'in-process (L1) hit', redis: 'Redis (L1 off)', openfga: "miss → OpenFGA (the member's role-version changed: Redis lookup, versions, Check, fill)", engine: 'OpenFGA Check alone (request-path client, no cache)' }[k];
        return `| ${label} | ${L[k].n} | ${L[k].p50.toFixed(1)} | ${L[k].p99.toFixed(1)} | ${L[k].max.toFixed(1)} |`;
      }),
      '',
    );
    const off = Object.entries(L.offLayer).filter(([, by]) => Object.keys(by).length > 0);
    if (off.length > 0) {
      lines.push(`Answers from another layer than the one measured, left out of its figures: ${off.map(([layer, by]) => `${layer}: ${Object.entries(by).map(([l, n]) => `${n} from ${l}`).join(', ')}`).join('; ')}.`, '');
    }
    const gw = rows.filter((r) => r.decisionP99Ms && r.mode === 'rate');
    if (gw.length > 0) {
      lines.push(
        'Inside the running gateway under load (`tiergate_decision_duration_seconds` p99 by layer, histogram estimate): ' +
          gw.map((r) => `${r.id}: ${Object.entries(r.decisionP99Ms!).map(([l, v]) => `${l} ${(v * 1000).toFixed(0)} µs`).join(', ')}`).join('; ') +
          '.',
        '',
      );
    }
  }
  if (revocation) {
    const R = revocation;
    lines.push(
      '## Revocation to deny across two replicas',
      '',
      `Two gateway processes (A, B; one worker each) sharing one Redis. For each of ${R.revocations} revocations: the user is granted through A, B serves two allowed reads (the second from its in-process layer), the member role is revoked through A's admin API, then B is read until it answers 403. ` +
        `Reproduce: \`npm run bench -- --only revocation\`.`,
      '',
      '| measure | p50 ms | p99 ms | max ms |',
      '| --- | ---: | ---: | ---: |',
      `| A's admin API answer → B's first 403 | ${R.deny.p50.toFixed(2)} | ${R.deny.p99.toFixed(2)} | ${R.deny.max.toFixed(2)} |`,
      `| the revoke call on A (write + invalidation + acks) | ${R.admin.p50.toFixed(2)} | ${R.admin.p99.toFixed(2)} | ${R.admin.max.toFixed(2)} |`,
      '',
      `B denied on its very next read after A answered in **${R.firstReadDenied} of ${R.revocations}** revocations (most reads needed: ${R.maxReads}); the "first 403" latency is therefore one read's round trip. B's decisions during the run by layer: ${Object.entries(R.warmLayer).map(([l, n]) => `${l} ${n}`).join(', ')}.`,
      '',
    );
  }
  const md = `${lines.join('\n')}\n`;
  const outDir = join(REPO_ROOT, 'load', 'results');
  mkdirSync(outDir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const json = JSON.stringify(
    { startedAt, git, quick, nodeFlags, variation, rate: RATE, lowRate: LOW_RATE, missRate: MISS_RATE, rounds: ROUNDS, durationS: DURATION_S, maxVus: MAX_VUS, db: stack.db, k6Version, loadBefore, loadAfter, rows, rawRows, revocation, layers, failures, runSteal },
    null,
    2,
  );
  writeFileSync(join(outDir, `bench-${stamp}.json`), json);
  writeFileSync(join(outDir, 'latest.json'), json);
  // A partial, quick or varied (A/B) run never overwrites the committed table.
  const full = !quick && !varied && PARTS.every((p) => want(p)) && failures.length === 0;
  if (full) writeFileSync(join(outDir, 'latest.md'), md);
  process.stdout.write(md);
  say(`results: load/results/bench-${stamp}.json${full ? ', load/results/latest.md' : ' (partial, failed, quick or varied run: latest.md left as it was)'}`);
  if (failures.length > 0) process.exitCode = 1;
}
