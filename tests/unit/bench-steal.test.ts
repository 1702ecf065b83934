// The benchmark's reading of CPU steal from /proc/stat (load/lib/steal.ts).
import { describe, expect, it } from 'vitest';
import { parseCpuTimes, stealShare } from '../../load/lib/steal.js';

describe('CPU steal from /proc/stat', () => {
  it('reads steal and the total of the first eight fields of the aggregate line', () => {
    const stat = 'cpu  100 5 20 800 3 0 2 70 0 0\ncpu0 50 2 10 400 1 0 1 35 0 0\nintr 1\n';
    expect(parseCpuTimes(stat)).toEqual({ steal: 70, total: 1000 });
  });

  it('gives the share of steal between two readings', () => {
    expect(stealShare({ steal: 70, total: 1000 }, { steal: 170, total: 2000 })).toBeCloseTo(0.1);
    expect(stealShare(undefined, { steal: 1, total: 2 })).toBeUndefined();
    expect(stealShare({ steal: 1, total: 2 }, { steal: 1, total: 2 })).toBeUndefined();
  });

  it('refuses text without an aggregate cpu line or with a malformed one', () => {
    expect(parseCpuTimes('cpu0 1 2 3 4 5 6 7 8\n')).toBeUndefined();
    expect(parseCpuTimes('cpu  1 2 x 4 5 6 7 8\n')).toBeUndefined();
    expect(parseCpuTimes('cpu  1 2 3\n')).toBeUndefined();
  });
});
