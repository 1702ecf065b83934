// The scale benchmark's hierarchy (load/lib/scale-tree.ts) and its report's verdicts
// (load/lib/scale-report.ts): the shape the benchmark promises (about 100 divisions nested
// 4 deep, a moved division holding a fifth of the tenants, readers outside it), and a
// target that is missed read as missed.
import { describe, expect, it } from 'vitest';
import type { K6Result } from '../../load/lib/k6.js';
import type { ScaleResult, SizeResult } from '../../load/lib/scale.js';
import { scaleReport } from '../../load/lib/scale-report.js';
import { divisions, MOVED, MOVED_SUBTREE, READER_DIVISION, tenantDivision, tenantId } from '../../load/lib/scale-tree.js';

describe('the scale hierarchy', () => {
  const all = divisions();
  const byId = new Map(all.map((d) => [d.id, d]));

  it('has 100 divisions, unique, each under the organization or a division of the tree, one level deeper, at most 4 deep', () => {
    expect(all).toHaveLength(100);
    expect(byId.size).toBe(100);
    for (const d of all) {
      if (d.parent.startsWith('organization:')) {
        expect(d.depth).toBe(1);
        continue;
      }
      const parent = byId.get(d.parent.slice('division:'.length));
      expect(parent, d.id).toBeDefined();
      expect(d.depth).toBe(parent!.depth + 1);
    }
    expect(Math.max(...all.map((d) => d.depth))).toBe(4);
    expect(all.filter((d) => d.depth === 4).length).toBeGreaterThan(0);
  });

  it('puts every 5th of 10,000 tenants in the moved subtree, and spreads the rest over every other division', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const d = tenantDivision(i, all);
      expect(byId.has(d), d).toBe(true);
      counts.set(d, (counts.get(d) ?? 0) + 1);
    }
    const inMoved = MOVED_SUBTREE.reduce((sum, id) => sum + (counts.get(id) ?? 0), 0);
    expect(inMoved).toBe(2_000);
    // The moved subtree is the moved division and everything under it.
    for (const id of MOVED_SUBTREE) expect(id === MOVED || id.startsWith(`${MOVED}-`)).toBe(true);
    const others = all.filter((d) => !MOVED_SUBTREE.includes(d.id));
    const perOther = others.map((d) => counts.get(d.id) ?? 0);
    expect(Math.min(...perOther)).toBeGreaterThanOrEqual(Math.floor(8_000 / others.length));
    expect(Math.max(...perOther)).toBeLessThanOrEqual(Math.ceil(8_000 / others.length));
  });

  it('keeps the warm readers at depth 4, outside the moved subtree', () => {
    expect(byId.get(READER_DIVISION)?.depth).toBe(4);
    expect(MOVED_SUBTREE).not.toContain(READER_DIVISION);
    expect(READER_DIVISION.startsWith(`${MOVED}-`)).toBe(false);
  });

  it('names tenants so that they sort in creation order', () => {
    const ids = [0, 9, 10, 999, 1000, 9999].map(tenantId);
    expect([...ids].sort()).toEqual(ids);
  });
});

function k6(p50: number): K6Result {
  return { requests: 4000, rps: 200, p50, p95: p50 * 2, p99: p50 * 3, max: p50 * 5, failed: 0, dropped: 0, counters: {}, durationS: 20, warnings: [] };
}

function size(tenants: number, over: Partial<SizeResult> = {}): SizeResult {
  return {
    tenants,
    divisions: 100,
    users: tenants * 10,
    tuples: tenants * 11,
    warm: { k6: k6(1.4), cpuUsPerRequest: 700, hitRatio: 1, steal: 0, busy: 0.5, decisionP50Us: 16 },
    ...over,
  };
}

const listing = { firstPage: { n: 20, p50: 57, p99: 64, max: 65, mean: 58 }, complete: { n: 3, p50: 2554, p99: 2600, max: 2600, mean: 2560 }, pages: 10, total: 10_000, source: 'hierarchy-walk', correct: true };
const move = {
  subtreeTenants: 1980,
  sample: 100,
  adminAnswerMs: 43,
  everyReplicaMs: 61,
  readsToCorrect: 200,
  wrongAfter: 0,
  stormQuestions: 100,
  stormRequests: 600,
  stormOpenfgaChecks: 100,
  stormLeases: { acquired: 100 },
  outsideHitRatio: 1,
  outsideOpenfgaChecks: 0,
};

function result(big: Partial<SizeResult>, heapBytesPerDecision = 217): ScaleResult {
  return {
    retries: 0,
    provision: [{ tenants: 9000, tuples: 99_265, seconds: 65.9, tenantSeconds: 4.6, tenantCalls: 115, tupleCalls: 903 }],
    sizes: [size(3), size(10_000, { listing, move, ...big })],
    memory: { decisions: 29_798, heapBytesPerDecision, redisBytesPerDecision: 367, redisSampled: 1000 },
    failures: [],
  };
}

/** The verdict column of the targets table, by the target's first words. */
function verdicts(md: string): Record<string, string> {
  const table = md.slice(md.indexOf('## Targets'));
  const rows = table.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| target') && !l.startsWith('| ---'));
  return Object.fromEntries(rows.map((l) => l.split('|').map((c) => c.trim())).map((cells) => [cells[1]!, cells[cells.length - 2]!]));
}

describe('scaleReport', () => {
  it('says every target holds when each is met', () => {
    const v = verdicts(scaleReport(result({}), '# head').md);
    expect(Object.keys(v)).toHaveLength(6);
    expect(Object.values(v).every((x) => x === 'yes')).toBe(true);
  });

  it('says a target is missed when it is: more OpenFGA calls than questions, CPU or p50 more than 10% up, a slow or incomplete listing, a late replica, a large entry', () => {
    const missed = verdicts(
      scaleReport(
        result(
          {
            warm: { k6: k6(1.6), cpuUsPerRequest: 771, hitRatio: 1, steal: 0, busy: 0.5, decisionP50Us: 16 },
            listing: { ...listing, correct: false },
            move: { ...move, everyReplicaMs: 1001, stormOpenfgaChecks: 107 },
          },
          401,
        ),
        '# head',
      ).md,
    );
    expect(missed).toEqual({
      'warm CPU/request within 10%': 'no',
      'warm p50 within 10%': 'no',
      '/me/tenants first page ≤ 100 ms, complete': 'no',
      'after the move every replica answers accordingly within 1 s': 'no',
      'OpenFGA calls ≤ distinct (user, tenant) questions': 'no',
      'in-process cache ≤ 400 bytes per decision': 'no',
    });
  });

  it('reads a first page over 100 ms as missed even when the listing is complete', () => {
    const v = verdicts(scaleReport(result({ listing: { ...listing, firstPage: { ...listing.firstPage, p50: 101 } } }), '# head').md);
    expect(v['/me/tenants first page ≤ 100 ms, complete']).toBe('no');
  });

  it('marks an incomplete listing in its own table and names the failed parts', () => {
    const r = result({ listing: { ...listing, correct: false } });
    r.failures.push('cold row at 10,000 tenants: k6 failed');
    const { md } = scaleReport(r, '# head');
    expect(md).toContain('**Parts that failed:** cold row at 10,000 tenants: k6 failed.');
    expect(md.split('\n').find((l) => l.startsWith('| 10,000 | 57.00 |'))).toMatch(/\| \*\*no\*\* \|$/);
  });

  it('draws latency, CPU and listing against the hierarchy size', () => {
    const { charts } = scaleReport(result({}), '# head');
    expect(Object.keys(charts).sort()).toEqual(['scale-cpu.svg', 'scale-latency.svg', 'scale-listing.svg']);
    for (const svg of Object.values(charts)) expect(svg).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
    expect(charts['scale-latency.svg']).toContain('warm p50');
    expect(charts['scale-listing.svg']).toContain('first page');
  });
});
