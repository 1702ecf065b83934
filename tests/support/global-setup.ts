import type { TestProject } from 'vitest/node';
import { startOpenFga } from '../../src/stack/openfga-server.js';
import { startRedis } from '../../src/stack/redis-server.js';
import { ensureConsoleBuilt } from '../../src/stack/console-build.js';

declare module 'vitest' {
  export interface ProvidedContext {
    openfgaUrl: string;
    /** The shared OpenFGA's preshared key: every client of it sends it, as tiergate's do. */
    openfgaToken: string;
    redisUrl: string;
  }
}

interface SharedServers {
  started: Promise<{ openfgaUrl: string; openfgaToken: string; redisUrl: string; stop: () => Promise<void> }>;
  users: number;
}

// Vitest runs a global setup once per project that declares it, each in its own module
// graph; the servers live on the main process's globalThis so the projects share one pair.
const KEY = Symbol.for('tiergate.tests.shared-servers');
const holder = globalThis as { [KEY]?: SharedServers };

async function startServers(): Promise<Awaited<SharedServers['started']>> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  // The console bundle the gateways under test serve (built once here, not by each `npm start`).
  const [fga, redis] = await Promise.all([startOpenFga({ log, presharedKey: 'random' }), startRedis(), ensureConsoleBuilt(log)]);
  log(`test servers: OpenFGA ${fga.apiUrl}, redis ${redis.url}`);
  return {
    openfgaUrl: fga.apiUrl,
    openfgaToken: fga.apiToken!,
    redisUrl: redis.url,
    stop: async () => {
      await Promise.all([fga.stop(), redis.stop()]);
    },
  };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const shared = (holder[KEY] ??= { started: startServers(), users: 0 });
  shared.users += 1;
  const servers = await shared.started;
  project.provide('openfgaUrl', servers.openfgaUrl);
  project.provide('openfgaToken', servers.openfgaToken);
  project.provide('redisUrl', servers.redisUrl);
  return async () => {
    shared.users -= 1;
    if (shared.users > 0) return;
    delete holder[KEY];
    await servers.stop();
  };
}
