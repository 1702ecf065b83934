import type { TestProject } from 'vitest/node';
import { startOpenFga } from '../../src/stack/openfga-server.js';
import { startRedis } from '../../src/stack/redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    openfgaUrl: string;
    /** The shared OpenFGA's preshared key: every client of it sends it, as tiergate's do. */
    openfgaToken: string;
    redisUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const [fga, redis] = await Promise.all([startOpenFga({ log, presharedKey: 'random' }), startRedis()]);
  project.provide('openfgaUrl', fga.apiUrl);
  project.provide('openfgaToken', fga.apiToken!);
  project.provide('redisUrl', redis.url);
  return async () => {
    await Promise.all([fga.stop(), redis.stop()]);
  };
}
