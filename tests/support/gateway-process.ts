// The standalone gateway (src/server/gateway-main.ts) or tenant service as a child
// process, for tests that need two processes (replicas) or the compiled entry points.
// A child also exits by itself when the test process dies (its stdin closes).
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { ManagedChild } from '../../src/stack/child.js';
import { startNodeService } from '../../src/stack/node-service.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { cleanEnv } from '../../load/lib/child-env.js';
import { owned, tempDir } from './cleanup.js';

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
  let child: ManagedChild | undefined;
  // Registered before the start so that a test ending mid-start still stops the process.
  const stop = owned(async () => {
    await child?.stop();
  });
  const started = await startNodeService(`the ${name} process`, {
    nodeArgs: ['--import', PARENT_WATCHDOG, ...nodeArgs],
    env: childEnv,
    cwd: opts.cwd ?? REPO_ROOT,
    stdin: 'pipe',
    outputChars: 256 * 1024,
    readyUrl: (line) => {
      if (!line.includes(readyLine)) return undefined;
      try {
        return (JSON.parse(line) as { url?: string }).url;
      } catch {
        return undefined; // not JSON: keep waiting for the ready line
      }
    },
    healthPath: '/healthz',
    timeoutMs: opts.readyTimeoutMs ?? 60_000,
    onSpawn: (c) => {
      child = c;
    },
  });
  const { url } = started;
  return {
    url,
    port: Number(new URL(url).port),
    pid: started.child.process.pid!,
    process: started.child.process,
    output: () => started.child.output(),
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
