// A complete gateway for end-to-end tests, on free loopback ports:
//
//   startTestStack()        in-process: a fresh store on the shared (or a given)
//                           OpenFGA, an in-memory PGlite, the real tenant-resource
//                           service (or a given upstream URL), and the gateway built
//                           by startGateway(loadConfig(env)) exactly as `npm start`
//                           builds it, trusting a test issuer through AUTH_ISSUERS.
//   startGatewayProcess()   the standalone gateway (src/server/gateway-main.ts) as a child
//                           process, for tests that need two processes (replicas).
//   startRecordingUpstream() a tiny node:http server recording every request it gets.
//   startTestOpenFga()      an OpenFGA of the file's own, to stop or hang (SIGSTOP).
//   startTcpRelay()         a loopback TCP relay in front of a server, to cut and
//                           restore (connection refused) or make it answer 500.
//   sendRaw()               one request written byte for byte on a socket, for
//                           targets that fetch/undici would normalise.
//
// Every server and child started here is also stopped by an afterAll hook of the
// test file that imported this module, so a failing test leaves nothing behind; a
// child process also exits by itself when the test process dies (its stdin closes).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { CompactSign, createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import pino from 'pino';
import { afterAll, expect, inject } from 'vitest';
import { loadConfig, type Config } from '../../src/config.js';
import { openDb, type Db } from '../../src/db/index.js';
import { loadModel } from '../../src/fga/model.js';
import { startGateway, type RunningGateway } from '../../src/server/gateway-server.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { startOpenFga, type OpenFgaServer } from '../../src/stack/openfga-server.js';
import { startTenantService, type RunningTenantService } from '../../src/tenant-service/server.js';
import { createTestStore, type TestStore } from './fga.js';

// ---------------------------------------------------------------- cleanup

const cleanups = new Set<() => Promise<void>>();

/** Runs `stop` at the end of the test file unless it was run before. Returns an idempotent stop. */
function owned(stop: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  const once = () => {
    cleanups.delete(once);
    done ??= stop();
    return done;
  };
  cleanups.add(once);
  return once;
}

afterAll(async () => {
  const errors: unknown[] = [];
  // Last started, first stopped: a gateway goes before the upstream it points at.
  for (const stop of [...cleanups].reverse()) {
    await stop().catch((err: unknown) => errors.push(err));
  }
  if (errors.length > 0) throw new AggregateError(errors, 'stopping the test stack failed');
});

/** A fresh temporary directory, removed at the end of the file. */
export function tempDir(prefix = 'tiergate-e2e-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  owned(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------- test issuer

export interface TestIssuer {
  issuer: string;
  audience: string;
  kid: string;
  /** The JWKS file the gateway trusts (AUTH_ISSUERS jwksFile). */
  jwksFile: string;
  /** The AUTH_ISSUERS value trusting this issuer. */
  authIssuers: string;
  /** A token for `sub`, valid 15 minutes; `claims` and `ttlS` override the defaults. */
  token(sub: string, opts?: { ttlS?: number; claims?: Record<string, unknown> }): Promise<string>;
  /** A token whose claims are `claimsJson` byte for byte (e.g. `"sub":["tom"]` or `"exp":1e309`, which SignJWT refuses). */
  tokenFromJson(claimsJson: string): Promise<string>;
}

/** An Ed25519 issuer whose public key set is written to `dir` for AUTH_ISSUERS. */
export async function createTestIssuer(dir: string): Promise<TestIssuer> {
  const issuer = 'https://issuer.e2e.tiergate.test';
  const audience = 'tiergate';
  const kid = `e2e-${randomUUID().slice(0, 8)}`;
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  const jwksFile = join(dir, 'issuer-jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  const authIssuers = JSON.stringify([{ issuer, audiences: [audience], algorithms: ['EdDSA'], jwksFile }]);
  const sign = (sub: string, ttlS: number, claims: Record<string, unknown>, key: CryptoKey) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(sub)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlS)
      .sign(key);
  };
  return {
    issuer,
    audience,
    kid,
    jwksFile,
    authIssuers,
    token: (sub, opts = {}) => sign(sub, opts.ttlS ?? 900, opts.claims ?? {}, privateKey),
    tokenFromJson: (claimsJson) =>
      new CompactSign(new TextEncoder().encode(claimsJson)).setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' }).sign(privateKey),
  };
}

// ---------------------------------------------------------------- in-process stack

export interface TestStackOptions {
  /** OpenFGA to use; default the run's shared server (inject('openfgaUrl')). */
  fgaApiUrl?: string;
  /** An existing store; default a fresh one bootstrapped on `fgaApiUrl`. */
  store?: TestStore;
  /** Bootstrapped as platform admins (PLATFORM_ADMINS) when a fresh store is made. */
  platformAdmins?: string[];
  /** Forward to this URL (e.g. a recording upstream) instead of the real tenant service. */
  upstreamUrl?: string;
  /** REDIS_URL for the decision cache (e.g. inject('redisUrl')); none by default. */
  redisUrl?: string;
  /** More configuration, as environment variables (they win over the defaults here). */
  env?: Record<string, string>;
  /** Keep the gateway's (and tenant service's) JSON log lines in `logs`. */
  captureLogs?: boolean;
  /** The database of the admin API and the tenant service (e.g. openDb({url}) on a PostgreSQL); the caller closes it. Default an in-memory PGlite. */
  db?: Db;
}

export interface TestStack {
  /** Base URL of the gateway, e.g. http://127.0.0.1:40123 */
  gatewayUrl: string;
  gatewayPort: number;
  /** Where requests are forwarded: the tenant service, or the given upstream. */
  upstreamUrl: string;
  /** The real tenant service, unless `upstreamUrl` was given. */
  tenantService?: RunningTenantService;
  gateway: RunningGateway;
  config: Config;
  /** The environment the configuration was parsed from. */
  env: Record<string, string>;
  store: TestStore;
  /** The database shared by the admin API and the tenant service (an in-memory PGlite unless given). */
  db: Db;
  dataDir: string;
  issuer: TestIssuer;
  /** A token for `sub` from the trusted test issuer. */
  token(sub: string): Promise<string>;
  /** `Authorization: Bearer …` for `sub` (tokens are minted once per subject). */
  authHeader(sub: string): Promise<string>;
  /** JSON log lines written so far (with `captureLogs`). */
  logs: string[];
  /**
   * Environment for another gateway (startGatewayProcess) serving the same store,
   * issuer and upstream, and signing assertions with this gateway's key, with its
   * own data dir (and so its own PGlite: PGlite cannot be shared between processes).
   */
  replicaEnv(extra?: Record<string, string>): Record<string, string>;
  stop(): Promise<void>;
}

function collector(lines: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(line);
      done();
    },
  });
}

export async function startTestStack(opts: TestStackOptions = {}): Promise<TestStack> {
  const dataDir = tempDir();
  const fgaApiUrl = opts.store?.apiUrl ?? opts.fgaApiUrl ?? inject('openfgaUrl');
  const [store, db, issuer] = await Promise.all([
    opts.store ?? createTestStore({ apiUrl: fgaApiUrl, platformAdmins: opts.platformAdmins ?? [] }),
    opts.db ?? openDb({}),
    createTestIssuer(dataDir),
  ]);
  const stopDb = opts.db ? async () => undefined : owned(() => db.close());

  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: opts.captureLogs ? 'info' : 'silent',
    TIERGATE_DATA_DIR: dataDir,
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: '0',
    METRICS_PORT: '0',
    AUTH_ISSUERS: issuer.authIssuers,
    DEV_ISSUER: 'false',
    OPENFGA_API_URL: fgaApiUrl,
    OPENFGA_API_TOKEN: store.apiToken,
    OPENFGA_STORE_ID: store.storeId,
    PLATFORM_ADMINS: (opts.platformAdmins ?? []).join(','),
    ...(opts.redisUrl ? { REDIS_URL: opts.redisUrl } : {}),
    ...(opts.upstreamUrl ? { TENANT_SERVICE_URL: opts.upstreamUrl } : {}),
    ...opts.env,
  };
  const config = loadConfig(env);
  const logs: string[] = [];
  const logger = opts.captureLogs ? pino({ level: config.LOG_LEVEL, base: undefined }, collector(logs)) : pino({ level: 'silent' });

  // The real tenant service trusts the gateway's assertion key, known once the gateway is built.
  let tenantService: RunningTenantService | undefined;
  let upstreamUrl = opts.upstreamUrl;
  let gatewayKeys: { keys: JWK[] } | undefined;
  if (upstreamUrl === undefined) {
    let verify: ReturnType<typeof createLocalJWKSet> | undefined;
    tenantService = await startTenantService({
      audience: config.ASSERTION_AUDIENCE,
      verifyKey: (header, token) => {
        if (!gatewayKeys) throw new Error('gateway keys not loaded yet');
        verify ??= createLocalJWKSet(gatewayKeys);
        return verify(header, token);
      },
      db,
      log: logger.child({ component: 'tenant-service' }),
    });
    owned(() => tenantService!.close());
    upstreamUrl = tenantService.url;
  }

  const gateway = await startGateway(config, {
    fgaApiUrl,
    storeId: store.storeId,
    authorizationModelId: store.authorizationModelId,
    model: loadModel().request,
    upstreamUrl,
    db,
    logger: logger.child({ component: 'gateway' }),
  });
  const stopGateway = owned(() => gateway.close());
  gatewayKeys = gateway.assertionJwks;

  const tokens = new Map<string, Promise<string>>();
  const token = (sub: string) => issuer.token(sub);
  const gatewayPort = Number(new URL(gateway.url).port);
  const finalUpstream = upstreamUrl;
  return {
    gatewayUrl: gateway.url,
    gatewayPort,
    upstreamUrl: finalUpstream,
    ...(tenantService ? { tenantService } : {}),
    gateway,
    config,
    env,
    store,
    db,
    dataDir,
    issuer,
    token,
    async authHeader(sub) {
      if (!tokens.has(sub)) tokens.set(sub, token(sub));
      return `Bearer ${await tokens.get(sub)!}`;
    },
    logs,
    replicaEnv(extra = {}) {
      const replicaDir = tempDir('tiergate-replica-');
      const keyFile = join(dataDir, 'gateway-assertion-key.json');
      if (existsSync(keyFile)) copyFileSync(keyFile, join(replicaDir, 'gateway-assertion-key.json'));
      const { GATEWAY_PORT: _port, LOG_LEVEL: _level, ...rest } = env;
      return { ...rest, TENANT_SERVICE_URL: finalUpstream, TIERGATE_DATA_DIR: replicaDir, ...extra };
    },
    async stop() {
      await stopGateway();
      if (tenantService) await tenantService.close();
      await stopDb();
    },
  };
}

// ---------------------------------------------------------------- gateway as a child process

export interface ServiceProcess {
  url: string;
  port: number;
  pid: number;
  process: ChildProcess;
  /** What the process wrote (stdout JSON log lines and stderr), the last ~256 KiB. */
  output(): string;
  /** SIGTERM (after SIGCONT, in case it was stopped), SIGKILL after 5 s; resolves when it has exited. */
  stop(): Promise<void>;
}
export type GatewayProcess = ServiceProcess;

export interface ServiceProcessOptions {
  readyTimeoutMs?: number;
  /**
   * The node arguments that run the service, e.g. `['--initial-old-space-size=128', 'dist/server/gateway-main.js']`
   * for the compiled entry point; by default its TypeScript source through tsx.
   */
  nodeArgs?: readonly string[];
  /** Working directory (relative paths such as the default POLICY_FILE resolve from it); the repository root by default. */
  cwd?: string;
}

/** Whether a child's log level still writes the ready line (info). */
function withReadyLogLevel(env: NodeJS.ProcessEnv): void {
  if (env.LOG_LEVEL === 'silent' || env.LOG_LEVEL === 'fatal' || env.LOG_LEVEL === 'error' || env.LOG_LEVEL === 'warn') {
    env.LOG_LEVEL = 'info'; // the ready line (info) carries the URL
  }
}

/**
 * `node --import tsx src/server/gateway-main.ts` with `env` on top of a clean environment
 * (no tiergate setting is inherited from this process). It needs OPENFGA_API_URL
 * and TENANT_SERVICE_URL, and normally OPENFGA_STORE_ID (else it bootstraps a store
 * named OPENFGA_STORE_NAME); `stack.replicaEnv()` gives all of them. Defaults: a
 * fresh TIERGATE_DATA_DIR, GATEWAY_PORT=0 (the port is read from the ready line),
 * METRICS_PORT=0, DEV_ISSUER=false, LOG_LEVEL=info, TIERGATE_START_CHECK=off. Resolves once /healthz answers.
 */
export async function startGatewayProcess(env: Record<string, string>, opts: ServiceProcessOptions = {}): Promise<GatewayProcess> {
  for (const required of ['OPENFGA_API_URL', 'TENANT_SERVICE_URL']) {
    if (!env[required]) throw new Error(`startGatewayProcess: ${required} is required`);
  }
  const base = cleanEnv();
  const childEnv: NodeJS.ProcessEnv = {
    ...base,
    NODE_ENV: 'test',
    GATEWAY_PORT: '0',
    METRICS_PORT: '0',
    DEV_ISSUER: 'false',
    LOG_LEVEL: 'info',
    OPENFGA_STORE_NAME: `e2e-${randomUUID()}`,
    // These gateways serve a store whose hierarchy another process's database holds
    // (their own database is not its admin plane): nothing to compare at start.
    TIERGATE_START_CHECK: 'off',
    ...env,
  };
  if (!childEnv.TIERGATE_DATA_DIR && !childEnv.DATABASE_URL) childEnv.TIERGATE_DATA_DIR = tempDir('tiergate-gw-');
  withReadyLogLevel(childEnv);
  return startServiceProcess('gateway', opts.nodeArgs ?? ['--import', 'tsx', 'src/server/gateway-main.ts'], childEnv, opts);
}

/**
 * `node --import tsx src/tenant-service/main.ts` with `env` on top of a clean
 * environment. It needs GATEWAY_JWKS_URL (the gateway whose assertions it accepts).
 * Defaults: a fresh TIERGATE_DATA_DIR (its PGlite), TENANT_SERVICE_PORT=0 (the port is
 * read from the ready line), LOG_LEVEL=info. Resolves once /healthz answers.
 */
export async function startTenantServiceProcess(env: Record<string, string>, opts: ServiceProcessOptions = {}): Promise<ServiceProcess> {
  if (!env.GATEWAY_JWKS_URL) throw new Error('startTenantServiceProcess: GATEWAY_JWKS_URL is required');
  const childEnv: NodeJS.ProcessEnv = {
    ...cleanEnv(),
    NODE_ENV: 'test',
    TENANT_SERVICE_HOST: '127.0.0.1',
    TENANT_SERVICE_PORT: '0',
    LOG_LEVEL: 'info',
    ...env,
  };
  if (!childEnv.TIERGATE_DATA_DIR && !childEnv.DATABASE_URL) childEnv.TIERGATE_DATA_DIR = tempDir('tiergate-ts-');
  withReadyLogLevel(childEnv);
  return startServiceProcess('tenant service', opts.nodeArgs ?? ['--import', 'tsx', 'src/tenant-service/main.ts'], childEnv, opts);
}

/**
 * Spawns `node [PARENT_WATCHDOG] …nodeArgs` (in the repository root unless `opts.cwd`) and
 * resolves once the process has logged `<name> ready` with its URL and that URL's /healthz answers.
 */
async function startServiceProcess(name: string, nodeArgs: readonly string[], childEnv: NodeJS.ProcessEnv, opts: ServiceProcessOptions): Promise<ServiceProcess> {
  const readyLine = `"${name} ready"`;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
  const proc = spawn(process.execPath, ['--import', PARENT_WATCHDOG, ...nodeArgs], {
    cwd: opts.cwd ?? REPO_ROOT,
    env: childEnv,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const isRunning = () => proc.exitCode === null && proc.signalCode === null;
  // The last ~256 KiB of output, kept as chunks (a busy replica logs a line per request).
  const chunks: string[] = [];
  let kept = 0;
  const keep = (text: string) => {
    chunks.push(text);
    kept += text.length;
    while (kept > 256 * 1024 && chunks.length > 1) kept -= chunks.shift()!.length;
  };
  const out = () => chunks.join('');
  let readyUrl: string | undefined;
  let pending = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    keep(text);
    if (readyUrl !== undefined) return;
    pending += text;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (readyUrl === undefined && line.includes(readyLine)) {
        try {
          readyUrl = (JSON.parse(line) as { url?: string }).url;
        } catch {
          // not JSON: keep waiting for the ready line
        }
      }
    }
  });
  proc.stderr!.on('data', (chunk: Buffer) => keep(chunk.toString('utf8')));

  const stop = owned(async () => {
    if (!isRunning()) return;
    proc.kill('SIGCONT');
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    proc.stdin?.destroy();
  });

  const deadline = Date.now() + readyTimeoutMs;
  let url: string | undefined;
  while (Date.now() < deadline) {
    if (!isRunning()) {
      await stop();
      throw new Error(`the ${name} process exited before it was ready (code ${proc.exitCode}, signal ${proc.signalCode}):\n${out().slice(-4000)}`);
    }
    if (readyUrl !== undefined) {
      const res = await fetch(`${readyUrl}/healthz`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
      if (res?.ok) {
        url = readyUrl;
        break;
      }
    }
    await sleep(100);
  }
  if (url === undefined) {
    await stop();
    throw new Error(`the ${name} process was not ready within ${readyTimeoutMs} ms:\n${out().slice(-4000)}`);
  }
  return {
    url,
    port: Number(new URL(url).port),
    pid: proc.pid!,
    process: proc,
    output: out,
    stop,
  };
}

/**
 * Preloaded into child processes: exit when the parent (the test process) is gone,
 * which closes the child's stdin. Nothing else reads stdin in those processes.
 */
export const PARENT_WATCHDOG = `data:text/javascript,${encodeURIComponent(
  'const i = process.stdin; const bye = () => process.exit(70); i.on("end", bye); i.on("error", bye); i.resume(); if (typeof i.unref === "function") i.unref();',
)}`;

const CONFIG_KEYS_PREFIXES = ['GATEWAY_', 'TENANT_SERVICE_', 'OPENFGA_', 'AUTH_', 'CACHE_', 'REDIS_', 'METRICS_', 'TIERGATE_', 'DEV_ISSUER', 'ASSERTION_'];
const CONFIG_KEYS = new Set(['NODE_ENV', 'LOG_LEVEL', 'POLICY_FILE', 'TRUSTED_PROXIES', 'MAX_PATH_LENGTH', 'MAX_HEADER_BYTES', 'DENY_REASON_HEADER', 'UPSTREAM_TIMEOUT_MS', 'PLATFORM_ADMINS', 'READCHANGES_POLL_MS', 'DATABASE_URL']);

/** This process's environment without any tiergate setting, so a child sees only what a test gives it. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (CONFIG_KEYS.has(k) || CONFIG_KEYS_PREFIXES.some((p) => k.startsWith(p))) continue;
    env[k] = v;
  }
  return env;
}

// ---------------------------------------------------------------- recording upstream

export interface RecordedRequest {
  method: string;
  /** The request target exactly as received. */
  url: string;
  headers: IncomingHttpHeaders;
  /** Every header line as received: [name, value, name, value, …]. */
  rawHeaders: string[];
  body: string;
}

export type UpstreamMode = 'ok' | 'hang';

export interface RecordingUpstream {
  url: string;
  port: number;
  readonly received: RecordedRequest[];
  /** `ok` answers 200 JSON; `hang` records the request and never answers (until stop). */
  mode: UpstreamMode;
  /** Every connection the upstream accepted, in order: when its last response went out, and when the peer closed it. */
  readonly connections: UpstreamConnection[];
  /** Forget what was recorded. */
  clear(): void;
  /** Stops listening (connections refused) and drops open connections; `listen()` starts it again on the same port. */
  close(): Promise<void>;
  listen(): Promise<void>;
  stop(): Promise<void>;
}

export interface UpstreamConnection {
  /** Date.now() when the last response on it was finished. */
  lastResponseAt?: number;
  /** Date.now() when the peer (the gateway) ended it; unset if the upstream closed it first. */
  peerEndedAt?: number;
}

/** `keepAliveTimeoutMs`: the upstream's own idle timeout (Node's default 5 s), announced as `Keep-Alive: timeout=N`. */
export async function startRecordingUpstream(opts: { keepAliveTimeoutMs?: number } = {}): Promise<RecordingUpstream> {
  const received: RecordedRequest[] = [];
  const connections: UpstreamConnection[] = [];
  const bySocket = new WeakMap<Socket, UpstreamConnection>();
  const sockets = new Set<Socket>();
  const state = { mode: 'ok' as UpstreamMode };
  const server: Server = createServer((req, res) => {
    res.once('finish', () => {
      const conn = bySocket.get(req.socket);
      if (conn) conn.lastResponseAt = Date.now();
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: [...req.rawHeaders], body: Buffer.concat(chunks).toString('utf8') });
      if (state.mode === 'hang') return;
      const body = JSON.stringify({ recorded: true, method: req.method, url: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  if (opts.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = opts.keepAliveTimeoutMs;
  server.on('connection', (s) => {
    const conn: UpstreamConnection = {};
    connections.push(conn);
    bySocket.set(s, conn);
    // 'end' is the peer's FIN; a socket the server times out itself is destroyed without it.
    s.once('end', () => {
      conn.peerEndedAt = Date.now();
    });
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const { listen, close, port } = await reopenableListener(server, sockets);
  const stop = owned(close);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    connections,
    get mode() {
      return state.mode;
    },
    set mode(m: UpstreamMode) {
      state.mode = m;
    },
    clear: () => void received.splice(0, received.length),
    close,
    listen,
    stop,
  };
}

// ---------------------------------------------------------------- a dedicated OpenFGA

/**
 * An OpenFGA of this file's own (memory datastore), for tests that stop, hang or
 * cut it: the shared one must keep serving the other files. Stopped at the end of
 * the file (continued first, in case a test left it SIGSTOPped).
 */
export async function startTestOpenFga(): Promise<OpenFgaServer> {
  const fga = await startOpenFga();
  owned(async () => {
    fga.child.process.kill('SIGCONT');
    await fga.stop();
  });
  return fga;
}

/**
 * SIGSTOP, resolved once every thread of the process is stopped. The signal alone is not
 * enough: the kernel wakes one thread to begin the group stop, and until that thread gets
 * a core (on a busy machine, milliseconds) the others, woken by a request, still answer it.
 * Linux only: reads each thread's state from /proc.
 */
export async function suspend(proc: ChildProcess): Promise<void> {
  const pid = proc.pid;
  if (pid === undefined || !proc.kill('SIGSTOP')) throw new Error('suspend: the process is not running');
  const stopped = await waitFor(() => threadStates(pid).every((state) => state === 'T' || state === 't'), 5000, 5);
  if (!stopped) throw new Error(`suspend: pid ${pid} still has running threads 5 s after SIGSTOP (${threadStates(pid).join('')})`);
}

/** The scheduler state letter of each thread of `pid` (/proc/<pid>/task/<tid>/stat, the field after the name). */
function threadStates(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // The name is in parentheses and may itself hold spaces or parentheses: read after the last one.
    const afterName = stat.lastIndexOf(')') + 2;
    return stat.slice(afterName, afterName + 1);
  });
}

// ---------------------------------------------------------------- TCP relay (a cable to cut)

export type RelayMode = 'pass' | 'http-500';

export interface TcpRelay {
  /** http://127.0.0.1:<port>: point a client here instead of at the target. */
  url: string;
  port: number;
  /** `pass` pipes bytes to the target; `http-500` answers every request with a 500 itself. */
  mode: RelayMode;
  /** Connections opened so far (both modes). */
  readonly connections: number;
  /** Closes the listener and destroys every connection: new connections are refused. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A loopback TCP relay in front of `targetPort`, so a test can make a server
 * unreachable (connection refused) and reachable again without restarting it
 * (an in-memory OpenFGA would lose its data on restart).
 */
export async function startTcpRelay(targetPort: number): Promise<TcpRelay> {
  const sockets = new Set<Socket>();
  const state = { mode: 'pass' as RelayMode, connections: 0 };
  const track = (sock: Socket) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
  };
  const server = createNetServer((client) => {
    state.connections++;
    track(client);
    if (state.mode === 'http-500') {
      client.on('data', () => {
        const body = '{"code":"internal_error","message":"relay: injected failure"}';
        client.end(`HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      });
      return;
    }
    const target = connect(targetPort, '127.0.0.1');
    track(target);
    client.pipe(target);
    target.pipe(client);
    client.once('close', () => target.destroy());
    target.once('close', () => client.destroy());
  });
  const { listen, close: cut, port, isListening } = await reopenableListener(server, sockets);
  const stop = owned(cut);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get mode() {
      return state.mode;
    },
    set mode(m: RelayMode) {
      state.mode = m;
    },
    get connections() {
      return state.connections;
    },
    cut,
    restore: () => (isListening() ? Promise.resolve() : listen()),
    stop,
  };
}

// ---------------------------------------------------------------- loopback listeners

/**
 * Listens on a free loopback port and can stop (connections refused, open ones
 * dropped) and listen again on the same port: how the recording upstream and the
 * TCP relay simulate a server going away and coming back.
 */
async function reopenableListener(
  server: Server | NetServer,
  sockets: ReadonlySet<Socket>,
): Promise<{ port: number; listen(): Promise<void>; close(): Promise<void>; isListening(): boolean }> {
  let port = 0;
  let listening = false;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        port = (server.address() as AddressInfo).port;
        listening = true;
        resolve();
      });
    });
  const close = () =>
    new Promise<void>((resolve) => {
      for (const sock of sockets) sock.destroy();
      if (!listening) return resolve();
      listening = false;
      server.close(() => resolve());
    });
  await listen();
  return { port, listen, close, isListening: () => listening };
}

// ---------------------------------------------------------------- raw HTTP

export interface RawResponse {
  status: number;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: string;
  /** The body parsed as JSON when it is JSON, else undefined. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * Writes `requestLine` (e.g. `GET /a/../b`; ` HTTP/1.1` is appended), a Host header,
 * `headers` and `Connection: close` (unless `headers` has a Connection line) exactly
 * as given, as latin1 bytes ("\u00e9" is the one byte 0xE9; pass a Buffer for other
 * bytes), and reads the answer until the server closes the connection.
 */
export function sendRaw(
  port: number,
  requestLine: string | Buffer,
  headers: string[] = [],
  opts: { body?: string; host?: string; timeoutMs?: number } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${opts.timeoutMs ?? 10_000} ms`));
    }, opts.timeoutMs ?? 10_000);
    socket.once('connect', () => {
      const body = opts.body ?? '';
      const lines = [
        `Host: ${opts.host ?? `127.0.0.1:${port}`}`,
        ...headers,
        ...(body ? [`Content-Length: ${Buffer.byteLength(body)}`] : []),
        // The caller's own Connection header replaces ours (it should include `close`).
        ...(headers.some((h) => /^connection:/i.test(h)) ? [] : ['Connection: close']),
        '',
        '',
      ].join('\r\n');
      const line = typeof requestLine === 'string' ? Buffer.from(`${requestLine} HTTP/1.1\r\n`, 'latin1') : Buffer.concat([requestLine, Buffer.from(' HTTP/1.1\r\n')]);
      socket.write(Buffer.concat([line, Buffer.from(lines, 'latin1'), Buffer.from(body, 'utf8')]));
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      clearTimeout(timer);
      // The server may answer and reset at once (e.g. a parse error); keep what arrived.
      if (chunks.length > 0) finish();
      else reject(err);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      finish();
    });
    let finished = false;
    function finish(): void {
      if (finished) return;
      finished = true;
      resolve(parseResponse(Buffer.concat(chunks)));
    }
  });
}

function parseResponse(raw: Buffer): RawResponse {
  const text = raw.toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  let body = split < 0 ? '' : text.slice(split + 4);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') body = dechunk(body);
  const utf8 = Buffer.from(body, 'latin1').toString('utf8');
  let json: unknown;
  if (/json/.test(headers['content-type'] ?? '') && utf8 !== '') {
    try {
      json = JSON.parse(utf8);
    } catch {
      json = undefined;
    }
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: utf8, json };
}

function dechunk(body: string): string {
  let out = '';
  let rest = body;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) return out;
    const size = parseInt(rest.slice(0, eol), 16);
    if (!size) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

// ---------------------------------------------------------------- small helpers

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  contentType: string;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

/** fetch with a JSON body and a JSON (or text) answer; `auth` is an Authorization value. */
export async function call(
  baseUrl: string,
  method: string,
  path: string,
  opts: { auth?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<JsonResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.auth) headers.authorization = opts.auth;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
    signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
  });
  const text = await res.text();
  const contentType = res.headers.get('content-type') ?? '';
  let body: unknown = text;
  if (contentType.includes('json') && text !== '') body = JSON.parse(text);
  return { status: res.status, headers: res.headers, contentType, body, text };
}

/** Runs `tasks` with at most `limit` in flight; results in order. */
export async function inBatches<T>(tasks: ReadonlyArray<() => Promise<T>>, limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/** Polls `probe` until it returns true or `timeoutMs` passes; returns whether it did. */
export async function waitFor(probe: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(stepMs);
  }
}

/**
 * The smallest hierarchy through the admin API: organization acme (created by platform
 * admin pat, admin olivia), division d1, tenant t1 with tenant admin tom. Resolves with
 * tom's Authorization header.
 */
export async function seedTenantT1(stack: TestStack): Promise<string> {
  await adminOk(stack, 'pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await adminOk(stack, 'olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await adminOk(stack, 'olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  await adminOk(stack, 'olivia', 'PUT', '/tenants/t1/roles/admin/tom');
  return stack.authHeader('tom');
}

/** A call to the admin API as `sub` that must succeed (2xx): building a test hierarchy. */
export async function adminOk(stack: TestStack, sub: string, method: string, path: string, body?: unknown): Promise<void> {
  const res = await call(stack.gatewayUrl, method, `/admin/v1${path}`, { auth: await stack.authHeader(sub), ...(body ? { body } : {}) });
  expect(res.status, `${sub} ${method} ${path}: ${res.text}`).toBeLessThan(300);
}
