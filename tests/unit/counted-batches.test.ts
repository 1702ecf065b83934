// The in-memory counting the background audits share: one entry per key, bounded, written
// one batch at a time, and entries put back for the next batch only while not closing.
import { describe, expect, it } from 'vitest';
import { createCountedBatches } from '../../src/admin/counted-batches.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

type Entry = { count: number };

function recorder(maxKeys = 10) {
  const batches: Array<{ entries: Record<string, number>; lost: number }> = [];
  let failNext = false;
  const counted = createCountedBatches<Entry>({
    flushMs: 60_000,
    maxKeys,
    async write(batch, lost, requeue) {
      if (failNext) {
        failNext = false;
        for (const [k, e] of batch) requeue(k, e);
        return;
      }
      batches.push({ entries: Object.fromEntries([...batch].map(([k, e]) => [k, e.count])), lost });
    },
    merge(into, from) {
      into.count += from.count;
    },
  });
  const count = (key: string) => counted.count(key, (e) => e.count++, () => ({ count: 1 }));
  return { counted, count, batches, failOnce: () => (failNext = true) };
}

describe('counted batches', () => {
  it('counts events per key and writes them as one batch', async () => {
    const r = recorder();
    for (let i = 0; i < 500; i++) r.count('a');
    r.count('b');
    await r.counted.flush();
    expect(r.batches).toEqual([{ entries: { a: 500, b: 1 }, lost: 0 }]);
    await r.counted.flush();
    expect(r.batches).toHaveLength(1);
  });

  it('drops events of keys beyond maxKeys and reports how many', async () => {
    const r = recorder(2);
    r.count('a');
    r.count('b');
    r.count('c');
    r.count('c');
    r.count('a');
    await r.counted.flush();
    expect(r.batches).toEqual([{ entries: { a: 2, b: 1 }, lost: 2 }]);
  });

  it('folds a put-back entry into what was counted since, and puts nothing back once closing', async () => {
    const r = recorder();
    r.count('a');
    r.failOnce();
    await r.counted.flush();
    r.count('a');
    await r.counted.flush();
    expect(r.batches).toEqual([{ entries: { a: 2 }, lost: 0 }]);
    r.count('b');
    r.failOnce();
    await r.counted.close();
    await r.counted.flush();
    expect(r.batches).toHaveLength(1);
  });
});
