// Runs a real redis-server on a free loopback port for tests and benchmarks.
import { spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { startChild, waitUntilReady, type ManagedChild } from './child.js';
import { freePort } from './ports.js';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly child: ManagedChild;
  stop(): Promise<void>;
}

export function redisServerAvailable(): boolean {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.setTimeout(500);
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => {
      sock.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    sock.once('error', () => resolve(false));
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
  });
}

export async function startRedis(opts: { port?: number } = {}): Promise<RedisServer> {
  if (!redisServerAvailable()) {
    throw new Error('redis-server is not installed: install it (Debian: apt-get install redis-server) or unset REDIS_URL.');
  }
  const port = opts.port ?? (await freePort());
  const child = startChild('redis-server', 'redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--protected-mode',
    'yes',
  ]);
  await waitUntilReady(child, () => ping(port), 10000);
  return { url: `redis://127.0.0.1:${port}`, port, child, stop: () => child.stop() };
}
