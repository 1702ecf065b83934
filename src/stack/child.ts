// A child process the stack owns: started with a readiness probe, stopped with
// SIGTERM then SIGKILL, and never left behind when the parent exits.
import { spawn, type ChildProcess } from 'node:child_process';

export interface ManagedChild {
  readonly name: string;
  readonly process: ChildProcess;
  /** Last lines the child wrote, for error messages. */
  output(): string;
  stop(): Promise<void>;
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

export function startChild(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): ManagedChild {
  installExitHook();
  const proc = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-8000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const child: ManagedChild = {
    name,
    process: proc,
    output: () => tail,
    async stop() {
      live.delete(child);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  proc.once('exit', () => live.delete(child));
  live.add(child);
  return child;
}

/** Polls `probe` until it resolves true, the child exits, or `timeoutMs` passes. */
export async function waitUntilReady(child: ManagedChild, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null || child.process.signalCode !== null) {
      throw new Error(`${child.name} exited before it was ready:\n${child.output()}`);
    }
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  await child.stop();
  throw new Error(`${child.name} was not ready within ${timeoutMs} ms:\n${child.output()}`);
}
