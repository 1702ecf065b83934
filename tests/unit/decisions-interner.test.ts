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

  it('starts over past its bounds and still answers the same lists', () => {
    const interner = new DependencyInterner(4, 2);
    for (let i = 0; i < 10; i++) expect(interner.list([`#s|tenant:t${i}`, `#s|division:d${i % 2}`])).toEqual([`#s|tenant:t${i}`, `#s|division:d${i % 2}`]);
    for (let i = 0; i < 10; i++) expect(interner.keys([`#s|tenant:t${i}`, `#s|division:d${i % 2}`])).toEqual([`#s|tenant:t${i}`, `#s|division:d${i % 2}`]);
    for (let i = 0; i < 10; i++) expect(interner.versions([i, i])).toEqual([i, i]);
  });
});
