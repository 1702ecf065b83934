// A throwaway PostgreSQL for tests and benchmarks: initdb into a temporary folder, run
// on a free loopback port, removed at the end. Looks for initdb/pg_ctl on PATH, then in
// Debian's /usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run as root, so
// as root the server runs as the `postgres` system user (runuser).
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface ThrowawayPostgres {
  url: string;
  /** Where the binaries were found, for the report. */
  binDir: string;
  /** The postmaster's pid (its backends are its children), while it runs. */
  pid(): number | undefined;
  stop(): void;
}

function findBinDir(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  if (onPath.status === 0 && onPath.stdout.trim()) {
    const real = spawnSync('readlink', ['-f', onPath.stdout.trim()], { encoding: 'utf8' }).stdout.trim();
    const dir = real.slice(0, real.lastIndexOf('/'));
    if (existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')) && existsSync(join(base, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(base, versions[0]!, 'bin') : undefined;
}

/** uid/gid of the `postgres` user, when running as root. */
function runAsUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (id.status !== 0 || gid.status !== 0) throw new Error('running as root and there is no `postgres` user to run PostgreSQL as');
  return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export function postgresAvailable(): boolean {
  return findBinDir() !== undefined;
}

export async function startThrowawayPostgres(): Promise<ThrowawayPostgres> {
  const binDir = findBinDir();
  if (!binDir) throw new Error('PostgreSQL\'s initdb and pg_ctl were not found on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)');
  const as = runAsUser();
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-pg-'));
  const data = join(dir, 'data');
  if (as) chownSync(dir, as.uid, as.gid);
  const run = (bin: string, args: string[]) => {
    const cmd = as ? 'runuser' : join(binDir, bin);
    const full = as ? ['-u', 'postgres', '--', join(binDir, bin), ...args] : args;
    const r = spawnSync(cmd, full, { encoding: 'utf8', cwd: dir });
    if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  };
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'tiergate', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  // A throwaway database: durability off (fsync, synchronous_commit), nothing else tuned.
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
  run('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'server.log'), '-w', '-t', '30', 'start']);
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already gone
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', stop);
  const pid = () => {
    try {
      return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]) || undefined;
    } catch {
      return undefined;
    }
  };
  return { url: `postgres://tiergate@127.0.0.1:${port}/postgres`, binDir, pid, stop };
}
