// The in-process cache's dependency interner: one copy of each shared key and version list.
import { describe, expect, it } from 'vitest';
import { DependencyInterner } from '../../src/decisions/caching-authorizer.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

// Built at run time, as the cache builds its keys: equal strings, distinct copies.
const key = (...parts: string[]) => parts.join('');

describe('DependencyInterner', () => {
  it('keeps every key list as given and shares one array per equal version list', () => {
    const interner = new DependencyInterner();
    const a = interner.keys(['#g', key('#s|', 'tenant:t1'), key('#r|9:tenant:t1', 'user:ann')]);
    const b = interner.keys(['#g', key('#s|', 'tenant:t1'), key('#r|9:tenant:t1', 'user:bob')]);
    expect(a).toEqual(['#g', '#s|tenant:t1', '#r|9:tenant:t1user:ann']);
    expect(b).toEqual(['#g', '#s|tenant:t1', '#r|9:tenant:t1user:bob']);
    const v1 = interner.versions([0, 3, 0]);
    expect(interner.versions([0, 3, 0])).toBe(v1);
    expect(interner.versions([0, 3, 1])).not.toBe(v1);
    expect(interner.versions([0, 3, 1])).toEqual([0, 3, 1]);
  });

  it('starts over past its bounds and still answers the same lists', () => {
    const interner = new DependencyInterner(4, 2);
    for (let i = 0; i < 10; i++) expect(interner.keys([`#s|tenant:t${i}`, `#s|division:d${i % 2}`])).toEqual([`#s|tenant:t${i}`, `#s|division:d${i % 2}`]);
    for (let i = 0; i < 10; i++) expect(interner.versions([i, i])).toEqual([i, i]);
  });
});
