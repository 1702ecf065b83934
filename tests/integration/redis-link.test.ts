// The hot Redis connection writes the commands issued in one tick as one batch
// (RedisLink.batched), against the real Redis the test harness started.
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RedisLink } from '../../src/decisions/redis-link.js';

/** Counts the writes the socket hands to the kernel (one per _write or _writev call). */
function countWrites(socket: Socket): { readonly count: number } {
  const counter = { count: 0 };
  const s = socket as Socket & { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
  for (const method of ['_write', '_writev'] as const) {
    const original = s[method].bind(s);
    s[method] = (...a: unknown[]) => {
      counter.count++;
      original(...a);
    };
  }
  return counter;
}

describe('RedisLink: request-path commands go out in batches', () => {
  let link: RedisLink;
  const prefix = `tg:test-link:${process.pid}:`;

  beforeAll(async () => {
    link = new RedisLink({ url: inject('redisUrl'), hotTimeoutMs: 2000, name: 'test-link' });
    await new Promise<void>((resolve, reject) => {
      link.hot.once('ready', () => resolve());
      link.hot.once('error', reject);
    });
    const keys = Array.from({ length: 40 }, (_, i) => [`${prefix}${i}`, `v${i}`]).flat();
    await link.hot.mset(...keys);
  });
  afterAll(() => link?.close());

  it('writes every command of one tick in one write, and each caller gets its own answer', async () => {
    const writes = countWrites(link.hot.stream as Socket);
    const answers = Promise.all([
      ...Array.from({ length: 40 }, (_, i) => link.batched().get(`${prefix}${i}`)),
      link.batched().mget(`${prefix}0`, `${prefix}missing`, `${prefix}39`),
      link.batched().set(`${prefix}new`, 'fresh', 'PX', 60_000),
    ]);
    const got = await answers;
    expect(writes.count).toBe(1);
    expect(got.slice(0, 40)).toEqual(Array.from({ length: 40 }, (_, i) => `v${i}`));
    expect(got[40]).toEqual(['v0', null, 'v39']);
    expect(got[41]).toBe('OK');
    expect(await link.hot.get(`${prefix}new`)).toBe('fresh');
  });

  it('starts a new batch in the next tick: commands a request issues after an answer are not held back', async () => {
    const writes = countWrites(link.hot.stream as Socket);
    expect(await link.batched().get(`${prefix}1`)).toBe('v1');
    expect(await link.batched().get(`${prefix}2`)).toBe('v2');
    const [a, b] = await Promise.all([link.batched().get(`${prefix}3`), link.batched().get(`${prefix}4`)]);
    expect([a, b]).toEqual(['v3', 'v4']);
    expect(writes.count).toBe(3);
  });
});
