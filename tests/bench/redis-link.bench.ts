// How the request path's Redis commands are written: RedisLink.batched (the socket corked
// until the end of the tick), against ioredis' own auto-pipelining and against plain
// commands, one command per tick (a lone miss) and 32 in one tick (concurrent requests).
// Against the real redis-server the test harness starts. Compare rows of one run.
// Run: npx vitest bench --run tests/bench/redis-link.bench.ts
import { Redis } from 'ioredis';
import { afterAll, beforeAll, bench, describe, inject } from 'vitest';
import { RedisLink } from '../../src/decisions/redis-link.js';

const KEYS = Array.from({ length: 32 }, (_, i) => `tg:bench-link:${i}`);
let link: RedisLink;
let auto: Redis;
let plain: Redis;

function ready(r: Redis): Promise<void> {
  return r.status === 'ready' ? Promise.resolve() : new Promise((resolve) => r.once('ready', () => resolve()));
}

beforeAll(async () => {
  const url = inject('redisUrl');
  link = new RedisLink({ url, hotTimeoutMs: 2000, name: 'bench-link' });
  // The same fail-fast options as the link's hot connection, but for how commands are written.
  const options = { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 2000 };
  auto = new Redis(url, { ...options, enableAutoPipelining: true });
  plain = new Redis(url, options);
  await Promise.all([ready(link.hot), ready(auto), ready(plain)]);
  await plain.mset(...KEYS.flatMap((k, i) => [k, String(i)]));
});
afterAll(() => {
  link?.close();
  auto?.disconnect();
  plain?.disconnect();
});

describe('one GET per tick (a lone miss)', () => {
  bench('RedisLink.batched (socket corked for the tick)', async () => {
    await link.batched().get(KEYS[0]!);
  });
  bench('ioredis enableAutoPipelining', async () => {
    await auto.get(KEYS[0]!);
  });
  bench('plain ioredis', async () => {
    await plain.get(KEYS[0]!);
  });
});

describe('32 GET/MGET in one tick (concurrent requests)', () => {
  const burst = (get: (k: string) => Promise<unknown>, mget: (a: string, b: string) => Promise<unknown>) =>
    Promise.all(KEYS.map((k, i) => (i % 2 === 0 ? get(k) : mget(k, KEYS[0]!))));
  bench('RedisLink.batched (socket corked for the tick)', async () => {
    await burst(
      (k) => link.batched().get(k),
      (a, b) => link.batched().mget(a, b),
    );
  });
  bench('ioredis enableAutoPipelining', async () => {
    await burst(
      (k) => auto.get(k),
      (a, b) => auto.mget(a, b),
    );
  });
  bench('plain ioredis', async () => {
    await burst(
      (k) => plain.get(k),
      (a, b) => plain.mget(a, b),
    );
  });
});
