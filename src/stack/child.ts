// A child process the stack owns: started with a readiness probe, stopped with
// SIGTERM then SIGKILL, and never left behind when the parent exits.
import { spawn, type ChildProcess } from 'node:child_process';

export interface ManagedChild {
  readonly name: string;
  readonly process: ChildProcess;
  /** Last lines the child wrote (stdout and stderr), for error messages. */
  output(): string;
  /** SIGTERM (after SIGCONT, in case it was stopped), SIGKILL after 5 s; resolves when it has exited. */
  stop(): Promise<void>;
}

export interface ChildOptions {
  /** Working directory; this process's by default. */
  cwd?: string;
  /** `pipe` keeps the child's stdin open for as long as this process lives (a parent watchdog reads it). */
  stdin?: 'ignore' | 'pipe';
  /** How much of the child's output `output()` keeps, in characters (at least; whole chunks, so whole log lines). */
  outputChars?: number;
}

const live = new Set<ManagedChild>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Synchronous last resort: whatever path the parent takes out, children go too.
  process.on('exit', () => {
    for (const c of live) c.process.kill('SIGKILL');
  });
}

export function startChild(
  name: string,
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  opts: ChildOptions = {},
): ManagedChild {
  installExitHook();
  const limit = opts.outputChars ?? 8000;
  const proc = spawn(command, args, { env, cwd: opts.cwd, stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'] });
  // Kept as chunks, trimmed by whole chunks (a busy service logs a line per request), so
  // the output starts where a write started: a JSON log line is whole.
  const chunks: string[] = [];
  let kept = 0;
  const keep = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    chunks.push(text);
    kept += text.length;
    while (kept > limit && chunks.length > 1 && kept - chunks[0]!.length >= limit) kept -= chunks.shift()!.length;
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const child: ManagedChild = {
    name,
    process: proc,
    output: () => chunks.join(''),
    async stop() {
      live.delete(child);
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGCONT');
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      proc.stdin?.destroy();
    },
  };
  proc.once('exit', () => live.delete(child));
  live.add(child);
  return child;
}

function hasExited(child: ManagedChild): boolean {
  return child.process.exitCode !== null || child.process.signalCode !== null;
}

/** Polls `probe` until it resolves true, the child exits, or `timeoutMs` passes; stops the child when it fails. */
export async function waitUntilReady(child: ManagedChild, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (hasExited(child)) {
      await child.stop();
      const { exitCode, signalCode } = child.process;
      throw new Error(`${child.name} exited before it was ready (code ${exitCode}, signal ${signalCode}):\n${child.output().slice(-4000)}`);
    }
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  await child.stop();
  throw new Error(`${child.name} was not ready within ${timeoutMs} ms:\n${child.output().slice(-4000)}`);
}
