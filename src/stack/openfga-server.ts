// Runs a real OpenFGA server (built from tools/openfga) for `npm start`, the reconcile
// command, tests and benchmarks.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from '../shared/private-dir.js';
import { ensureTool, OPENFGA } from './go-tools.js';
import { startChild, waitUntilReady, type ManagedChild } from './child.js';
import { freePort } from './ports.js';

/** Where the embedded OpenFGA keeps its tuples. */
export type OpenFgaDatastore =
  | { engine: 'memory' }
  /** A SQLite file (OpenFGA's pure-Go driver): `npm start`'s default, under TIERGATE_DATA_DIR. */
  | { engine: 'sqlite'; file: string }
  | { engine: 'postgres'; uri: string };

export interface OpenFgaServer {
  readonly apiUrl: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly datastore: OpenFgaDatastore;
  /** The preshared key every call must carry (`Authorization: Bearer …`); undefined when it needs none. */
  readonly apiToken: string | undefined;
  readonly child: ManagedChild;
  stop(): Promise<void>;
}

export interface OpenFgaServerOptions {
  httpPort?: number;
  grpcPort?: number;
  /** Default: memory. sqlite and postgres run `openfga migrate` first. */
  datastore?: OpenFgaDatastore;
  /**
   * Require this preshared key on every call (`--authn-method preshared`); `'random'`
   * makes a fresh one. Unset: no authentication (the tests' shared server).
   */
  presharedKey?: string | 'random';
  log?: (line: string) => void;
}

/** A fresh preshared key: only the process that started OpenFGA knows it. */
export function randomPresharedKey(): string {
  return randomBytes(32).toString('base64url');
}

function datastoreArgs(ds: OpenFgaDatastore): string[] {
  switch (ds.engine) {
    case 'memory':
      return ['--datastore-engine', 'memory'];
    case 'sqlite':
      // modernc's driver takes a `file:` URI; OpenFGA adds WAL and busy-timeout pragmas.
      return ['--datastore-engine', 'sqlite', '--datastore-uri', `file:${ds.file}`];
    case 'postgres':
      return ['--datastore-engine', 'postgres', '--datastore-uri', ds.uri];
  }
}

/** Human form for the ready line: `memory`, `sqlite <file>`, `postgres`. */
export function describeDatastore(ds: OpenFgaDatastore): string {
  return ds.engine === 'sqlite' ? `sqlite ${ds.file}` : ds.engine;
}

export async function startOpenFga(opts: OpenFgaServerOptions = {}): Promise<OpenFgaServer> {
  const bin = await ensureTool(OPENFGA, opts.log);
  let httpPort = opts.httpPort ?? (await freePort());
  let grpcPort = opts.grpcPort ?? (await freePort());
  const datastore = opts.datastore ?? { engine: 'memory' };
  if (datastore.engine === 'sqlite') {
    if (/[?#]/.test(datastore.file)) throw new Error(`the OpenFGA SQLite path may not contain ? or #: ${datastore.file}`);
    ensurePrivateDir(dirname(datastore.file), opts.log);
  }
  if (datastore.engine !== 'memory') {
    const fresh = datastore.engine === 'sqlite' && !existsSync(datastore.file);
    const migrate = spawnSync(bin, ['migrate', ...datastoreArgs(datastore)], { encoding: 'utf8' });
    if (migrate.status !== 0) {
      const what = datastore.engine === 'postgres' ? 'OPENFGA_DATASTORE_URI' : datastore.file;
      throw new Error(`openfga migrate failed for ${what}: ${(migrate.stderr || migrate.stdout).trim().slice(-2000)}`);
    }
    if (datastore.engine === 'sqlite') {
      // SQLite gives its -wal and -shm files the database file's mode.
      chmodSync(datastore.file, PRIVATE_FILE_MODE);
      if (fresh) opts.log?.(`OpenFGA: created ${datastore.file}`);
    }
  }
  const apiToken = opts.presharedKey === 'random' ? randomPresharedKey() : opts.presharedKey;
  // Ports this function picked were free a moment ago, not reserved: another process may
  // bind one before OpenFGA does. Then it exits at once ("address already in use"), and
  // the start is tried again on new ports; ports the caller chose are never changed.
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await runOpenFga(bin, datastore, apiToken, httpPort, grpcPort);
    } catch (err) {
      const picked = opts.httpPort === undefined || opts.grpcPort === undefined;
      if (!picked || attempt >= 3 || !(err instanceof Error) || !err.message.includes('address already in use')) throw err;
      opts.log?.(`OpenFGA: a port picked for it was taken meanwhile; starting again on new ports`);
      if (opts.httpPort === undefined) httpPort = await freePort();
      if (opts.grpcPort === undefined) grpcPort = await freePort();
    }
  }
}

async function runOpenFga(bin: string, datastore: OpenFgaDatastore, apiToken: string | undefined, httpPort: number, grpcPort: number): Promise<OpenFgaServer> {
  const child = startChild('openfga', bin, [
    'run',
    ...datastoreArgs(datastore),
    ...(apiToken ? ['--authn-method', 'preshared'] : []),
    '--http-addr',
    `127.0.0.1:${httpPort}`,
    '--grpc-addr',
    `127.0.0.1:${grpcPort}`,
    '--playground-enabled=false',
    '--metrics-enabled=false',
    '--log-level',
    'warn',
    // tiergate owns decision caching (with invalidation); OpenFGA's own caches
    // stay at their defaults (off), so a revoked tuple is never served by it.
    // The key goes in the environment, not the command line: /proc/<pid>/environ is
    // readable by this user only, the command line by everyone.
  ], apiToken ? { ...process.env, OPENFGA_AUTHN_PRESHARED_KEYS: apiToken } : process.env);
  const apiUrl = `http://127.0.0.1:${httpPort}`;
  await waitUntilReady(
    child,
    async () => {
      const res = await fetch(`${apiUrl}/healthz`);
      return res.ok;
    },
    30000,
  );
  return { apiUrl, httpPort, grpcPort, datastore, apiToken, child, stop: () => child.stop() };
}

/** The embedded OpenFGA's datastore for a configuration (`npm start`, `npm run reconcile`). */
export function embeddedDatastore(config: { TIERGATE_DATA_DIR: string; OPENFGA_DATASTORE_URI?: string | undefined }): OpenFgaDatastore {
  const uri = config.OPENFGA_DATASTORE_URI;
  if (uri === 'memory') return { engine: 'memory' };
  if (uri) return { engine: 'postgres', uri };
  return { engine: 'sqlite', file: join(config.TIERGATE_DATA_DIR, 'openfga', 'openfga.db') };
}
