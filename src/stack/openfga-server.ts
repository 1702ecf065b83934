// Runs a real OpenFGA server (built from tools/openfga) for `npm start` and tests.
import { spawnSync } from 'node:child_process';
import { ensureTool, OPENFGA } from './go-tools.js';
import { startChild, waitUntilReady, type ManagedChild } from './child.js';
import { freePort } from './ports.js';

export interface OpenFgaServer {
  readonly apiUrl: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly child: ManagedChild;
  stop(): Promise<void>;
}

export interface OpenFgaServerOptions {
  httpPort?: number;
  grpcPort?: number;
  /** postgres://… runs `openfga migrate` first; unset means the memory datastore. */
  datastoreUri?: string;
  log?: (line: string) => void;
}

export async function startOpenFga(opts: OpenFgaServerOptions = {}): Promise<OpenFgaServer> {
  const bin = await ensureTool(OPENFGA, opts.log);
  const httpPort = opts.httpPort ?? (await freePort());
  const grpcPort = opts.grpcPort ?? (await freePort());
  const datastore = opts.datastoreUri
    ? ['--datastore-engine', 'postgres', '--datastore-uri', opts.datastoreUri]
    : ['--datastore-engine', 'memory'];
  if (opts.datastoreUri) {
    const migrate = spawnSync(bin, ['migrate', '--datastore-engine', 'postgres', '--datastore-uri', opts.datastoreUri], {
      encoding: 'utf8',
    });
    if (migrate.status !== 0) {
      throw new Error(`openfga migrate failed for OPENFGA_DATASTORE_URI: ${(migrate.stderr || migrate.stdout).trim().slice(-2000)}`);
    }
  }
  const child = startChild('openfga', bin, [
    'run',
    ...datastore,
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
  ]);
  const apiUrl = `http://127.0.0.1:${httpPort}`;
  await waitUntilReady(
    child,
    async () => {
      const res = await fetch(`${apiUrl}/healthz`);
      return res.ok;
    },
    30000,
  );
  return { apiUrl, httpPort, grpcPort, child, stop: () => child.stop() };
}
