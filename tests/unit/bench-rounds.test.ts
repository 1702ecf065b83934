// The benchmark's round-by-round reading of a p99 comparison (load/lib/stats.ts
// compareRounds): paired differences in round order, and the baseline's own movement.
import { describe, expect, it } from 'vitest';
import { compareRounds, roundSpread } from '../../load/lib/stats.js';

describe('compareRounds', () => {
  it('pairs each round of the measured row with the same round of its baseline', () => {
    // Rounds of a bare proxy (b) and a warm gateway (c) whose baseline moved more than their difference.
    const cmp = compareRounds([25.76, 16.62, 9.03], [25.71, 27.19, 24.16]);
    expect(cmp?.paired.map((d) => Number(d.toFixed(2)))).toEqual([-0.05, 10.57, 15.13]);
    expect(cmp?.baselineMin).toBe(9.03);
    expect(cmp?.baselineMax).toBe(25.76);
    expect(cmp?.baselineSpread).toBeCloseTo(16.73, 10);
  });

  it('says nothing of a single round, or of rows with different numbers of rounds', () => {
    expect(compareRounds([5], [6])).toBeUndefined();
    expect(compareRounds([5, 6, 7], [6, 7])).toBeUndefined();
    expect(compareRounds([], [])).toBeUndefined();
  });
});

describe('roundSpread', () => {
  it('gives the lowest and highest round and the distance between them, in any order', () => {
    expect(roundSpread([7.96, 4.9, 9.75])).toEqual({ min: 4.9, max: 9.75, spread: 9.75 - 4.9 });
  });
});
