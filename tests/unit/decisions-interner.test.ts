// The in-process cache's dependency interner: one copy of each path's key list and of
// each version list.
import { describe, expect, it } from 'vitest';
import { DependencyInterner } from '../../src/decisions/caching-authorizer.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

// Built at run time, as the cache builds its keys: equal strings, distinct copies.
const key = (...parts: string[]) => parts.join('');

describe('DependencyInterner', () => {
  it('shares one array per equal key list and per equal version list', () => {
    const interner = new DependencyInterner();
    const a = interner.list(['#g', key('#s|', 'tenant:t1'), key('#s|', 'division:d1')]);
    const b = interner.list(['#g', key('#s|', 'tenant:t1'), key('#s|', 'division:d1')]);
    expect(a).toEqual(['#g', '#s|tenant:t1', '#s|division:d1']);
    expect(b).toBe(a);
    const other = interner.list(['#g', key('#s|', 'tenant:t2'), key('#s|', 'division:d1')]);
    expect(other).not.toBe(a);
    expect(other).toEqual(['#g', '#s|tenant:t2', '#s|division:d1']);
    const v1 = interner.versions([0, 3, 0]);
    expect(interner.versions([0, 3, 0])).toBe(v1);
    expect(interner.versions([0, 3, 1])).not.toBe(v1);
    expect(interner.versions([0, 3, 1])).toEqual([0, 3, 1]);
  });

  it('never takes one list for another whose keys join to the same text', () => {
    const interner = new DependencyInterner();
    const pairs: Array<[string[], string[]]> = [
      [['ab', 'c'], ['a', 'bc']],
      [['1:a'], ['a', '']],
      [['#s|a', '#s|b'], ['#s|a#s|b']],
      [['2:ab'], ['ab']],
    ];
    for (const [x, y] of pairs) {
      const lx = interner.list([...x]);
      const ly = interner.list([...y]);
      expect(lx).toEqual(x);
      expect(ly).toEqual(y);
    }
  });

  it('forgets past its bounds and still answers the same lists', () => {
    const interner = new DependencyInterner(4, 2);
    for (let i = 0; i < 10; i++) expect(interner.list([`#s|tenant:t${i}`, `#s|division:d${i % 2}`])).toEqual([`#s|tenant:t${i}`, `#s|division:d${i % 2}`]);
    for (let i = 0; i < 10; i++) expect(interner.keys([`#s|tenant:t${i}`, `#s|division:d${i % 2}`])).toEqual([`#s|tenant:t${i}`, `#s|division:d${i % 2}`]);
    for (let i = 0; i < 10; i++) expect(interner.versions([i, i])).toEqual([i, i]);
  });

  it('keeps sharing a list that is still asked for while many others come and go', () => {
    const interner = new DependencyInterner(1000, 100);
    const hot = interner.list(['#g', key('#s|', 'tenant:hot')]);
    const hotVersions = interner.versions([1_765_000_000_000_000, 7]);
    for (let i = 0; i < 1000; i++) {
      interner.list(['#g', key('#s|', `tenant:t${i}`)]);
      interner.versions([1_765_000_000_000_000, 100 + i]);
      // Asked again now and then (as every new decision on the hot path does).
      if (i % 10 === 0) {
        expect(interner.list(['#g', key('#s|', 'tenant:hot')])).toBe(hot);
        expect(interner.versions([1_765_000_000_000_000, 7])).toBe(hotVersions);
      }
    }
    // A list not asked for in a whole generation is forgotten: a new copy, equal.
    const cold = interner.list(['#g', key('#s|', 'tenant:t0')]);
    expect(cold).toEqual(['#g', '#s|tenant:t0']);
  });

  it('tells apart version lists that differ only above 2^32 or by length', () => {
    const interner = new DependencyInterner();
    const epoch = 1_765_000_000_000_000;
    const a = interner.versions([epoch, 3]);
    const b = interner.versions([epoch + 2 ** 32, 3]);
    expect(b).not.toBe(a);
    expect(b).toEqual([epoch + 2 ** 32, 3]);
    expect(interner.versions([epoch, 3, 0])).toEqual([epoch, 3, 0]);
    expect(interner.versions([epoch, 3])).toBe(a);
  });

  it('answers every list equal to what it was given, whatever collides', () => {
    // Many lists through a small interner: whether a list is shared or not, it is always equal.
    const interner = new DependencyInterner(50, 20);
    for (let i = 0; i < 5000; i++) {
      const keys = ['#g', `#s|tenant:t${i % 97}`, `#s|division:d${i % 13}`];
      expect(interner.list([...keys])).toEqual(keys);
      const versions = [i % 7, i % 11, i % 5];
      expect(interner.versions([...versions])).toEqual(versions);
    }
  });
});
