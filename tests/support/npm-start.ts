// `npm start` (src/server/stack-main.ts) and the npm scripts beside it as child processes on a
// data folder of the test's own, on free loopback ports: what a user runs, run as
// they run it. A stack still running at the end of the file (useCleanup()) gets
// Ctrl-C (SIGINT), then SIGKILL after 10 s.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { cleanEnv } from '../../load/lib/child-env.js';
import { owned } from './cleanup.js';
import { freeListenPort } from './listen-port.js';
import { PARENT_WATCHDOG } from './gateway-process.js';
import { waitFor } from './wait.js';

const execFileAsync = promisify(execFile);

export interface NpmStart {
  process: ChildProcess;
  /** The `tiergate ready:` line; undefined when the process exited before it. */
  readyLine: string | undefined;
  gatewayUrl: string;
  /** What the process wrote on stderr (its one-line messages). */
  output(): string;
  exitCode(): number | null;
  /** Ctrl-C; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** The ports `npm start` listens on that the environment names. */
const LISTEN_PORT_KEYS = ['GATEWAY_PORT', 'TENANT_SERVICE_PORT', 'REPORTS_SERVICE_PORT', 'METRICS_PORT'] as const;

/** The environment `npm start` gets: a clean one, this data folder, free ports. */
export async function npmStartEnv(dataDir: string, extra: Record<string, string> = {}): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {
    ...cleanEnv(),
    TIERGATE_DATA_DIR: dataDir,
    // OpenFGA picks its own as it starts: a port picked here is not reserved, and the
    // many servers of a parallel test run could take it before OpenFGA binds it.
    OPENFGA_HTTP_PORT: '0',
    OPENFGA_GRPC_PORT: '0',
    LOG_LEVEL: 'warn',
  };
  for (const key of LISTEN_PORT_KEYS) env[key] = String(await freeListenPort());
  return { ...env, ...extra };
}

/**
 * What `npm start` says when a port it was given is taken: found in use as it starts, or
 * taken between its check and its listen. Here both mean another process took a port
 * after it was picked.
 */
const PORT_TAKEN = /is already in use: stop what is using it|was taken by another process while tiergate started/;

/**
 * `npm start [-- args]` (`tsx src/server/stack-main.ts`; node --import tsx is the same without npm in
 * between). Resolves once it printed its ready line or exited, whichever comes first.
 * When a port was taken between the pick and the listen, it does what the message asks:
 * starts again, on fresh ports written into `env` (at most three times).
 */
export async function startMain(env: NodeJS.ProcessEnv, args: string[] = [], readyTimeoutMs = 120_000): Promise<NpmStart> {
  for (let attempt = 1; ; attempt += 1) {
    const started = await startMainOnce(env, args, readyTimeoutMs);
    if (started.readyLine !== undefined || attempt === 3 || !PORT_TAKEN.test(started.output())) return started;
    for (const key of LISTEN_PORT_KEYS) if (env[key] !== undefined && env[key] !== '0') env[key] = String(await freeListenPort());
  }
}

async function startMainOnce(env: NodeJS.ProcessEnv, args: string[], readyTimeoutMs: number): Promise<NpmStart> {
  const proc = spawn(process.execPath, ['--import', 'tsx', '--import', PARENT_WATCHDOG, 'src/server/stack-main.ts', ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stdout!.resume();
  proc.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-50_000);
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const gone = () => proc.exitCode !== null || proc.signalCode !== null;
  const started: NpmStart = {
    process: proc,
    readyLine: undefined,
    gatewayUrl: `http://127.0.0.1:${env.GATEWAY_PORT}`,
    output: () => stderr,
    exitCode: () => proc.exitCode,
    async stop() {
      if (!gone()) {
        proc.kill('SIGINT');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      proc.stdin?.destroy();
      return proc.exitCode;
    },
  };
  owned(async () => {
    await started.stop();
  });
  await waitFor(() => stderr.includes('tiergate ready:') || gone(), readyTimeoutMs, 100);
  if (gone()) await exited;
  started.readyLine = stderr.split('\n').find((l) => l.startsWith('tiergate ready:'));
  return started;
}

export interface ScriptResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `npm run -s <script> -- args` with `env`, as the README runs it. */
export async function npmRun(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<ScriptResult> {
  try {
    const { stdout, stderr } = await execFileAsync('npm', ['run', '-s', script, '--', ...args], { cwd: REPO_ROOT, env, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
