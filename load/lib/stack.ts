// Starts what the benchmark measures, each as its own process on free loopback
// ports: OpenFGA (memory), redis-server, PostgreSQL (throwaway) when available, the
// tenant-resource service, the bare proxy, and gateways (dist/server/gateway-main.js,
// compiled at start: the same entry as the Docker image, node:cluster with GATEWAY_WORKERS).
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { configSchema } from '../../src/config.js';
import { cleanEnv } from './child-env.js';
import { ASSERTION_KEY_FILE, createAssertionSigner, type AssertionSigner } from '../../src/gateway/assertion-signer.js';
import type { ManagedChild } from '../../src/stack/child.js';
import { startNodeService, type NodeService } from '../../src/stack/node-service.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { startOpenFga, type OpenFgaServer } from '../../src/stack/openfga-server.js';
import { freePort } from '../../src/stack/ports.js';
import { startRedis, type RedisServer } from '../../src/stack/redis-server.js';
import { postgresAvailable, startThrowawayPostgres, type ThrowawayPostgres } from '../../src/stack/postgres-server.js';
import type { CpuPart } from './proc-cpu.js';

export const ASSERTION_AUDIENCE = 'tenant-service';
export const STORE_NAME = 'tiergate-bench';

export interface DbChoice {
  kind: 'postgres (throwaway)' | 'postgres (DATABASE_URL)' | 'pglite';
  url?: string;
  /** Gateway worker processes this allows. */
  workers: number;
  note: string;
}

export interface GatewayProcess {
  name: string;
  url: string;
  metricsUrl?: string;
  workers: number;
  child: ManagedChild;
  stop(): Promise<void>;
}

export interface GatewayOptions {
  name: string;
  l1: boolean;
  workers: number;
  port?: number;
  metricsPort?: number | 0;
  /** Its own data dir (PGlite fallback for a second replica). */
  dataDir?: string;
  /** Extra node flags for the gateway (e.g. --cpu-prof). */
  nodeArgs?: string[];
  env?: Record<string, string>;
}

/** Settings the stack itself wires (ports, URLs, the row's cache layer): not for `--gateway-env`. */
const WIRED_SETTINGS = new Set([
  'GATEWAY_HOST', 'GATEWAY_PORT', 'GATEWAY_WORKERS', 'METRICS_HOST', 'METRICS_PORT', 'OPENFGA_API_URL', 'OPENFGA_STORE_ID',
  'OPENFGA_STORE_NAME', 'TENANT_SERVICE_URL', 'UPSTREAM_URLS', 'REDIS_URL', 'DATABASE_URL', 'TIERGATE_DATA_DIR', 'ASSERTION_AUDIENCE',
  'PLATFORM_ADMINS', 'CACHE_L1_ENABLED',
]);

/**
 * `--gateway-env "K=V K2=V2"`: tiergate settings for every gateway of the run, to measure
 * what one changes (e.g. ASSERTION_TTL_S=600). Only settings tiergate knows, so a typo is
 * refused instead of silently measuring nothing, and none the stack wires itself.
 */
export function parseGatewayEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of text.split(/\s+/).filter(Boolean)) {
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq) : '';
    if (!key) throw new Error(`--gateway-env: "${pair}" is not KEY=VALUE`);
    if (!(key in configSchema.shape)) throw new Error(`--gateway-env: ${key} is not a tiergate setting`);
    if (WIRED_SETTINGS.has(key)) throw new Error(`--gateway-env: ${key} is set by the bench itself`);
    env[key] = pair.slice(eq + 1);
  }
  return env;
}

/** What a run changes on purpose, for A/B runs: named in the report's Setup line. */
export interface BenchVariation {
  /** Settings of every gateway (`--gateway-env`); a row's own settings (the miss gateway's TTLs) still win. */
  gatewayEnv: Record<string, string>;
  /** µs of CPU the bare proxy burns per request before proxying (`--bare-burn-us`; 0 = none): a control, not a baseline. */
  bareBurnUs: number;
}

/** A bench service (load/services/): ready once it prints `READY <url>` on stdout. */
export async function startBenchService(name: string, script: string, env: Record<string, string>, nodeFlags: readonly string[]): Promise<NodeService> {
  return startNodeService(name, {
    nodeArgs: [...nodeFlags, '--import', 'tsx', join(REPO_ROOT, script)],
    env: { ...cleanEnv(), ...env },
    readyUrl: (line) => /READY (\S+)/.exec(line)?.[1],
    timeoutMs: 60_000,
  });
}

/** The bench gateways' CACHE_ALLOW_TTL_S: longer than any run, so warm rows stay warm. */
export const BENCH_ALLOW_TTL_S = 3600;

/** The compiled gateway, as `npm run start:gateway` runs it. */
const GATEWAY_MAIN = join(REPO_ROOT, 'dist', 'server', 'gateway-main.js');

/** `npm run build` (the console bundle when stale, then tsc into dist/): the gateway measured is the code checked out. */
async function buildGateway(say: (line: string) => void): Promise<void> {
  say('building the gateway (npm run build) so the compiled code is measured…');
  const started = performance.now();
  await promisify(execFile)('npm', ['run', '-s', 'build'], { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 });
  say(`  built in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

export class BenchStack {
  readonly dataDir = mkdtempSync(join(tmpdir(), 'tiergate-bench-'));
  fga!: OpenFgaServer;
  redis!: RedisServer;
  pg: ThrowawayPostgres | undefined;
  db!: DbChoice;
  tenantUrl = '';
  bareUrl = '';
  /** The bare proxy inside Hono behind five do-nothing middlewares (row h). */
  honoProxyUrl = '';
  /** A server that does nothing: k6's own floor. */
  noopUrl = '';
  /** Signs assertions for the baselines that bypass the gateway (floor, bare proxy). */
  signer!: AssertionSigner;
  private children: ManagedChild[] = [];
  private tenantChild: ManagedChild | undefined;
  private bareChild: ManagedChild | undefined;
  private honoChild: ManagedChild | undefined;
  private noopChild: ManagedChild | undefined;
  private gateways = new Set<GatewayProcess>();

  /** `nodeFlags`: given to every Node process this stack starts (the services and the gateways). */
  constructor(
    private readonly say: (line: string) => void,
    readonly nodeFlags: readonly string[] = [],
    readonly variation: BenchVariation = { gatewayEnv: {}, bareBurnUs: 0 },
  ) {}

  /** Gateway worker processes of the main rows; the bare proxy runs as many. */
  workers = 1;

  /**
   * `workers`: gateway workers wanted (default one per core; 1 whatever is asked on PGlite).
   * `openfga`: its datastore — memory (default), or a database of its own in the throwaway
   * PostgreSQL (`openfga migrate` first), as production runs it. `baselines`: which of the
   * comparison servers to start (default all; `bare` = the bare proxy only).
   */
  async start(opts: { workers?: number; openfga?: 'memory' | 'postgres'; baselines?: 'all' | 'bare' } = {}): Promise<void> {
    const cores = availableParallelism();
    if (opts.openfga === 'postgres') {
      if (!postgresAvailable()) throw new Error('OpenFGA on PostgreSQL needs initdb and pg_ctl (Debian: apt-get install postgresql)');
      this.pg = await startThrowawayPostgres();
      const admin = new pg.Client({ connectionString: this.pg.url });
      await admin.connect();
      await admin.query('create database openfga');
      await admin.end();
    }
    const datastore = this.pg ? { engine: 'postgres' as const, uri: this.pg.url.replace(/\/postgres$/, '/openfga') } : { engine: 'memory' as const };
    // The gateway runs as production runs it: compiled (npm run build), not through tsx.
    await buildGateway(this.say);
    const [fga, redis] = await Promise.all([startOpenFga({ log: this.say, datastore }), startRedis()]);
    this.fga = fga;
    this.redis = redis;
    if (postgresAvailable()) {
      this.pg ??= await startThrowawayPostgres();
      this.db = { kind: 'postgres (throwaway)', url: this.pg.url, workers: cores, note: `throwaway PostgreSQL from ${this.pg.binDir}` };
    } else if (process.env.DATABASE_URL) {
      this.db = { kind: 'postgres (DATABASE_URL)', url: process.env.DATABASE_URL, workers: cores, note: 'PostgreSQL from DATABASE_URL' };
    } else {
      this.db = {
        kind: 'pglite',
        workers: 1,
        note: 'no initdb/pg_ctl and no DATABASE_URL: PGlite cannot be shared by processes, so ONE gateway worker (not one per core)',
      };
    }
    // The gateway's assertion key, made before anything starts: the gateways load it
    // from their data dir and the upstream trusts its public half.
    mkdirSync(this.dataDir, { recursive: true });
    // The baseline rows' requests carry assertions signed once, at the start: they must
    // stay valid for the whole run (a full run on a slow machine lasts most of an hour).
    this.signer = await createAssertionSigner({ audience: ASSERTION_AUDIENCE, ttlSeconds: 4 * 3600, keyFile: this.keyFile(this.dataDir) });
    const tenant = await startBenchService('tenant-service', 'load/services/tenant-service.ts', {
      BENCH_ASSERTION_KEY_FILE: this.keyFile(this.dataDir),
      ASSERTION_AUDIENCE,
      PORT: String(await freePort()),
      ...(this.db.url ? { DATABASE_URL: this.db.url } : { PGLITE_DIR: join(this.dataDir, 'pglite-tenant') }),
    }, this.nodeFlags);
    this.children.push(tenant.child);
    this.tenantChild = tenant.child;
    this.tenantUrl = tenant.url;
    this.workers = this.db.workers === 1 ? 1 : (opts.workers ?? this.db.workers);
    // The same proxy twice, with as many workers as the gateway: plain, and inside Hono.
    const proxy = async (name: string, extra: Record<string, string> = {}) => {
      const started = await startBenchService(name, 'load/services/bare-proxy.ts', {
        TARGET: this.tenantUrl,
        PORT: String(await freePort()),
        WORKERS: String(this.workers),
        ...extra,
      }, this.nodeFlags);
      this.children.push(started.child);
      return started;
    };
    const bare = await proxy('bare-proxy', this.variation.bareBurnUs > 0 ? { BURN_US: String(this.variation.bareBurnUs) } : {});
    this.bareChild = bare.child;
    this.bareUrl = bare.url;
    if (opts.baselines === 'bare') return;
    const hono = await proxy('hono-proxy', { HONO_MIDDLEWARES: '5' });
    this.honoChild = hono.child;
    this.honoProxyUrl = hono.url;
    const noop = await startBenchService('noop-server', 'load/services/noop-server.ts', { PORT: String(await freePort()) }, this.nodeFlags);
    this.children.push(noop.child);
    this.noopChild = noop.child;
    this.noopUrl = noop.url;
  }

  /**
   * The parts whose CPU a row accounts for: k6 (the runs this process started and
   * reaped), the upstream, PostgreSQL, OpenFGA, Redis, the bare proxy and the gateways
   * running now (each a process tree: cluster workers and backends included).
   */
  cpuParts(): CpuPart[] {
    const pidOf = (c: ManagedChild | undefined) => () => c?.process.pid;
    return [
      { name: 'k6', pid: () => process.pid, reapedOnly: true },
      { name: 'upstream', pid: pidOf(this.tenantChild) },
      { name: 'postgres', pid: () => this.pg?.pid() },
      { name: 'openfga', pid: pidOf(this.fga.child) },
      { name: 'redis', pid: pidOf(this.redis.child) },
      { name: 'bare proxy', pid: pidOf(this.bareChild) },
      { name: 'hono proxy', pid: pidOf(this.honoChild) },
      { name: 'no-op server', pid: pidOf(this.noopChild) },
      ...[...this.gateways].map((g) => ({ name: `gateway ${g.name}`, pid: pidOf(g.child) })),
    ];
  }

  keyFile(dataDir: string): string {
    return join(dataDir, ASSERTION_KEY_FILE);
  }

  /** A data dir for a second gateway on PGlite: the same keys, its own database. */
  cloneDataDir(name: string): string {
    const dir = join(this.dataDir, `replica-${name}`);
    mkdirSync(dir, { recursive: true });
    cpSync(this.keyFile(this.dataDir), this.keyFile(dir));
    cpSync(join(this.dataDir, 'dev-issuer'), join(dir, 'dev-issuer'), { recursive: true });
    return dir;
  }

  async startGateway(o: GatewayOptions): Promise<GatewayProcess> {
    // A free port can be taken by another process between freePort() and listen():
    // start again on new ports (a few times) when that is why the gateway stopped.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.startGatewayOnce(o);
      } catch (err) {
        if (attempt >= 3 || o.port !== undefined || !/EADDRINUSE/.test(String(err))) throw err;
        this.say(`gateway ${o.name}: port taken meanwhile, starting again on other ports`);
      }
    }
  }

  private async startGatewayOnce(o: GatewayOptions): Promise<GatewayProcess> {
    const port = o.port ?? (await freePort());
    let metricsPort = o.metricsPort ?? (await freePort());
    while (metricsPort !== 0 && metricsPort === port) metricsPort = await freePort();
    const env: Record<string, string> = {
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      TIERGATE_DATA_DIR: o.dataDir ?? this.dataDir,
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(port),
      GATEWAY_WORKERS: String(o.workers),
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: String(metricsPort),
      OPENFGA_API_URL: this.fga.apiUrl,
      OPENFGA_STORE_NAME: STORE_NAME,
      // Replicas on PGlite each have a database of their own, not the store's admin plane.
      TIERGATE_START_CHECK: 'off',
      TENANT_SERVICE_URL: this.tenantUrl,
      // The tenant service serves the report routes too: the policy's `reports` upstream.
      UPSTREAM_URLS: `reports=${this.tenantUrl}`,
      REDIS_URL: this.redis.url,
      CACHE_L1_ENABLED: String(o.l1),
      // The warm-up fills every decision within seconds, so with the default 300 s
      // safety-net TTL they would all expire together a few minutes later, in the middle
      // of a measured row (invalidation is by version; the TTL is only a backstop).
      CACHE_ALLOW_TTL_S: String(BENCH_ALLOW_TTL_S),
      PLATFORM_ADMINS: 'platform-ops',
      ASSERTION_AUDIENCE,
      ...(this.db.url ? { DATABASE_URL: this.db.url } : {}),
      ...this.variation.gatewayEnv,
      ...o.env,
    };
    // LOG_LEVEL=warn writes no ready line: the port is chosen here, and /readyz says when.
    const { url, child } = await startNodeService(`gateway ${o.name}`, {
      nodeArgs: [...this.nodeFlags, ...(o.nodeArgs ?? []), GATEWAY_MAIN],
      env: { ...cleanEnv(), ...env },
      url: `http://127.0.0.1:${port}`,
      healthPath: '/readyz',
      timeoutMs: 120_000,
    });
    const gw: GatewayProcess = {
      name: o.name,
      url,
      ...(metricsPort !== 0 ? { metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` } : {}),
      workers: o.workers,
      child,
      stop: async () => {
        this.gateways.delete(gw);
        await child.stop();
      },
    };
    this.gateways.add(gw);
    return gw;
  }

  async stop(): Promise<void> {
    for (const g of [...this.gateways]) await g.stop().catch(() => undefined);
    for (const c of this.children.reverse()) await c.stop().catch(() => undefined);
    await Promise.all([this.fga?.stop(), this.redis?.stop()].map((p) => p?.catch(() => undefined)));
    this.pg?.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
