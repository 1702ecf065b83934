// The benchmark's reading of CPU steal from /proc/stat (load/lib/steal.ts).
import { describe, expect, it } from 'vitest';
import { busyMs, parseCpuTimes, stealShare } from '../../load/lib/steal.js';

describe('CPU steal from /proc/stat', () => {
  it('reads steal, busy time (not idle, iowait or steal) and the total of the first eight fields of the aggregate line', () => {
    const stat = 'cpu  100 5 20 800 3 0 2 70 0 0\ncpu0 50 2 10 400 1 0 1 35 0 0\nintr 1\n';
    expect(parseCpuTimes(stat)).toEqual({ steal: 70, busy: 127, total: 1000 });
  });

  it('gives the share of steal between two readings', () => {
    expect(stealShare({ steal: 70, busy: 0, total: 1000 }, { steal: 170, busy: 0, total: 2000 })).toBeCloseTo(0.1);
    expect(stealShare(undefined, { steal: 1, busy: 0, total: 2 })).toBeUndefined();
    expect(stealShare({ steal: 1, busy: 0, total: 2 }, { steal: 1, busy: 0, total: 2 })).toBeUndefined();
  });

  it('gives busy milliseconds between two readings at the clock tick rate', () => {
    expect(busyMs({ steal: 0, busy: 100, total: 1000 }, { steal: 0, busy: 350, total: 2000 }, 100)).toBe(2500);
    expect(busyMs(undefined, { steal: 0, busy: 1, total: 2 }, 100)).toBeUndefined();
  });

  it('refuses text without an aggregate cpu line or with a malformed one', () => {
    expect(parseCpuTimes('cpu0 1 2 3 4 5 6 7 8\n')).toBeUndefined();
    expect(parseCpuTimes('cpu  1 2 x 4 5 6 7 8\n')).toBeUndefined();
    expect(parseCpuTimes('cpu  1 2 3\n')).toBeUndefined();
  });
});
