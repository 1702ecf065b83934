// The peer benchmark's report (load/lib/peer.ts): how much of its one core each server
// used in its max rows, which says whether its max throughput was its own limit.
import { describe, expect, it } from 'vitest';
import { coreUsedAtMax, peerReport, type PeerRow } from '../../load/lib/peer.js';

function row(server: string, rps: number[], cpuUs: number[]): PeerRow {
  return {
    server,
    rate: { p50: [1, 1, 1], p99: [5, 5, 5], cpuUs: [500, 500, 500], errors: 0, dropped: 0 },
    max: { rps, cpuUs, errors: 0 },
    idleMsPerS: 0,
  };
}

describe('coreUsedAtMax', () => {
  it('is the median over the rounds of requests per second times CPU seconds per request', () => {
    // Rounds: 0.73, 0.75, 0.70 of the core.
    expect(coreUsedAtMax(row('bare proxy', [5840, 6000, 5600], [125, 125, 125]))).toBeCloseTo(0.73, 10);
  });

  it('pairs each round with its own CPU figure, not the medians of each', () => {
    // Rounds 0.40, 0.90, 0.99 of the core: median 0.90. The product of the medians
    // (3000 req/s × 220 µs) would say 0.66.
    expect(coreUsedAtMax(row('tiergate', [2000, 3000, 4500], [200, 300, 220]))).toBeCloseTo(0.9, 10);
  });

  it('is undefined when no max row was measured', () => {
    expect(coreUsedAtMax(row('heimdall', [], []))).toBeUndefined();
  });
});

describe('peerReport', () => {
  it('shows each server\'s share of its core at max, and – for a server with no max row', () => {
    const { md } = peerReport(
      { pinned: true, failures: [], rows: [row('bare proxy', [5882], [124]), row('tiergate', [4077], [229]), row('heimdall', [], [])] },
      '# head',
    );
    const lines = md.split('\n');
    expect(lines.find((l) => l.startsWith('| bare proxy |'))).toContain('| 124 | 73% |');
    expect(lines.find((l) => l.startsWith('| tiergate |'))).toContain('| 229 | 93% |');
    expect(lines.find((l) => l.startsWith('| heimdall |'))).toMatch(/\| – \| 0\.0 \| 0 \|$/);
  });

  it('says how long each server was warmed up before the rounds, when it was', () => {
    const rows = [row('bare proxy', [5882], [124])];
    expect(peerReport({ pinned: true, warmupS: 5, failures: [], rows }, '# head').md).toContain('Each server first warmed up at its maximum throughput for 5 s.');
    expect(peerReport({ pinned: true, failures: [], rows }, '# head').md).not.toContain('warmed up');
  });
});
