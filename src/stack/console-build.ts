// Builds the web console (console/, Vite) into dist/console when the bundle is missing
// or older than its sources: `npm start` and the test harness call this before the
// gateway starts, so a clean clone needs no manual step. `npm run build` builds it too.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../shared/repo-root.js';

export const CONSOLE_SOURCE_DIR = join(REPO_ROOT, 'console');
export const CONSOLE_BUNDLE = join(REPO_ROOT, 'dist', 'console', 'index.html');
const VITE = join(REPO_ROOT, 'node_modules', 'vite', 'bin', 'vite.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const full = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/** Why the bundle must be built, or undefined when it is up to date (or there are no sources to build from). */
export function consoleBuildReason(): string | undefined {
  if (!existsSync(CONSOLE_SOURCE_DIR)) return undefined;
  if (!existsSync(CONSOLE_BUNDLE)) return 'the console bundle is missing';
  return newestMtime(CONSOLE_SOURCE_DIR) > statSync(CONSOLE_BUNDLE).mtimeMs ? 'the console sources changed' : undefined;
}

export class ConsoleBuildError extends Error {}

/** Runs `vite build` when needed; resolves once dist/console is current. */
export async function ensureConsoleBuilt(log: (line: string) => void): Promise<void> {
  const reason = consoleBuildReason();
  if (reason === undefined) return;
  if (!existsSync(VITE)) {
    log(`tiergate: ${reason} and Vite is not installed (npm ci installs it): the console at /console answers 503 until npm run build.`);
    return;
  }
  log(`tiergate: ${reason}: building it (vite build, a few seconds)…`);
  const output: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [VITE, 'build', '--config', join(CONSOLE_SOURCE_DIR, 'vite.config.ts')], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (b: Buffer) => output.push(b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => output.push(b.toString('utf8')));
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) throw new ConsoleBuildError(`building the console failed (vite build exited with ${code}):\n${output.join('').slice(-4000)}`);
}
