// Builds the Go programs tiergate runs (OpenFGA, k6, kubeconform) from the small pinned Go
// modules under tools/, into the git-ignored .tools/bin, once per pin: a stamp
// file holds the hash of go.mod + go.sum, and a build is reused while it matches.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../shared/repo-root.js';

export const TOOLS_BIN = join(REPO_ROOT, '.tools', 'bin');

export interface GoTool {
  /** Binary name under .tools/bin. */
  name: string;
  /** Folder under tools/ holding the pinning go.mod and go.sum. */
  moduleDir: string;
  /** Import path of the main package to build. */
  mainPackage: string;
}

export const OPENFGA: GoTool = {
  name: 'openfga',
  moduleDir: 'tools/openfga',
  mainPackage: 'github.com/openfga/openfga/cmd/openfga',
};

export const K6: GoTool = {
  name: 'k6',
  moduleDir: 'tools/k6',
  mainPackage: 'go.k6.io/k6',
};

/** Validates deploy/kubernetes against schemas made by tools/kubeconform/schemas (docs/deployment.md). */
export const KUBECONFORM: GoTool = {
  name: 'kubeconform',
  moduleDir: 'tools/kubeconform',
  mainPackage: 'github.com/yannh/kubeconform/cmd/kubeconform',
};

/**
 * Heimdall, the peer the benchmark compares against (`npm run bench -- --only peer`): built
 * from tools/heimdall, a small module whose main calls heimdall's own, only when asked for.
 */
export const HEIMDALL: GoTool = {
  name: 'heimdall',
  moduleDir: 'tools/heimdall',
  mainPackage: '.',
};

export class ToolBuildError extends Error {
  override name = 'ToolBuildError';
}

function pinHash(tool: GoTool): string {
  const dir = join(REPO_ROOT, tool.moduleDir);
  const h = createHash('sha256');
  for (const f of ['go.mod', 'go.sum']) h.update(readFileSync(join(dir, f)));
  return h.digest('hex');
}

export function toolPath(tool: GoTool): string {
  return join(TOOLS_BIN, tool.name);
}

/** True when the binary exists and was built from the current pin. */
export function isToolCurrent(tool: GoTool): boolean {
  const stamp = `${toolPath(tool)}.pin`;
  return existsSync(toolPath(tool)) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === pinHash(tool);
}

/**
 * Returns the path of a current build of `tool`, building it first if needed.
 * Progress goes to `log` (stderr by default) every few seconds, never silence.
 */
export async function ensureTool(tool: GoTool, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<string> {
  if (isToolCurrent(tool)) return toolPath(tool);
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.error || go.status !== 0) {
    throw new ToolBuildError(
      `Go is needed to build ${tool.name} (tiergate never downloads binaries): install Go 1.26 or newer from your package manager, or set OPENFGA_API_URL to a running OpenFGA.`,
    );
  }
  mkdirSync(TOOLS_BIN, { recursive: true });
  const cwd = join(REPO_ROOT, tool.moduleDir);
  const tmp = `${toolPath(tool)}.building.${process.pid}`; // concurrent builders each rename atomically
  log(`tiergate: building ${tool.name} from ${tool.moduleDir}/go.mod with ${go.stdout.trim()} (first time only; a few minutes)`);
  const started = Date.now();
  let packages = 0;
  let last = '';
  await new Promise<void>((resolvePromise, reject) => {
    // -v names each package as it is compiled: that is our progress signal.
    const child = spawn('go', ['build', '-v', '-trimpath', '-o', tmp, tool.mainPackage], {
      cwd,
      env: { ...process.env, CGO_ENABLED: process.env.CGO_ENABLED ?? '0' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderrTail = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-4000);
      for (const line of chunk.split('\n')) {
        if (line.trim() === '' || line.includes(' ')) continue;
        packages += 1;
        last = line.trim();
      }
    });
    const ticker = setInterval(() => {
      log(`tiergate: building ${tool.name}: ${packages} packages compiled, ${Math.round((Date.now() - started) / 1000)}s (${last})`);
    }, 15000);
    child.on('error', (err) => {
      clearInterval(ticker);
      reject(new ToolBuildError(`could not run go build for ${tool.name}: ${err.message}`));
    });
    child.on('exit', (code) => {
      clearInterval(ticker);
      if (code === 0) resolvePromise();
      else
        reject(
          new ToolBuildError(
            `building ${tool.name} failed (go build exit ${code}). Check that the Go module proxy is reachable and Go is 1.26 or newer. Last output:\n${stderrTail}`,
          ),
        );
    });
  });
  renameSync(tmp, toolPath(tool));
  writeFileSync(`${toolPath(tool)}.pin`, `${pinHash(tool)}\n`);
  log(`tiergate: built ${tool.name} in ${Math.round((Date.now() - started) / 1000)}s -> ${toolPath(tool)}`);
  return toolPath(tool);
}
