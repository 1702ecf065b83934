// The benchmark's reading of a gateway's runtime between two /metrics scrapes
// (load/lib/prom.ts runtimeDelta), against what the installed prom-client exports.
import { collectDefaultMetrics, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseProm, runtimeDelta } from '../../load/lib/prom.js';

describe('runtimeDelta', () => {
  it('reads the longest event-loop delay and the GC pauses by kind from prom-client\'s default metrics', async () => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const before = parseProm(await registry.metrics());

    // Block the loop for 100 ms inside a timer callback, once the delay monitor (reset by
    // that scrape) has ticked again; then let its timer fire.
    await new Promise((r) => setTimeout(r, 50));
    await new Promise<void>((r) =>
      setTimeout(() => {
        const until = performance.now() + 100;
        while (performance.now() < until) {
          // busy
        }
        r();
      }, 5),
    );
    await new Promise((r) => setTimeout(r, 50));
    // Short-lived garbage: young-generation collections (scavenges, kind "minor"). Each
    // object escapes into a small ring, so no optimising compiler (Node 24's Maglev
    // and TurboFan elide allocations that do not escape) can skip allocating it.
    const n = 2_000_000;
    const ring: { i: number }[] = new Array<{ i: number }>(1024);
    for (let i = 0; i < n; i++) ring[i & 1023] = { i };
    expect(ring[(n - 1) & 1023]?.i).toBe(n - 1);
    await new Promise((r) => setTimeout(r, 30)); // GC entries reach the observer asynchronously

    const r = runtimeDelta(before, parseProm(await registry.metrics()));
    expect(r.loopDelayMaxMs).toBeGreaterThanOrEqual(90);
    expect(r.gc.minor?.count).toBeGreaterThan(0);
    expect(r.gc.minor?.ms).toBeGreaterThan(0);
  });

  it('leaves out kinds without a pause in between, and says NaN when no delay is exported', () => {
    const before = parseProm('nodejs_gc_duration_seconds_count{kind="minor"} 5\nnodejs_gc_duration_seconds_sum{kind="minor"} 0.004\nnodejs_gc_duration_seconds_count{kind="major"} 1\nnodejs_gc_duration_seconds_sum{kind="major"} 0.01\n');
    const after = parseProm('nodejs_gc_duration_seconds_count{kind="minor"} 8\nnodejs_gc_duration_seconds_sum{kind="minor"} 0.007\nnodejs_gc_duration_seconds_count{kind="major"} 1\nnodejs_gc_duration_seconds_sum{kind="major"} 0.01\n');
    const r = runtimeDelta(before, after);
    expect(Object.keys(r.gc)).toEqual(['minor']);
    expect(r.gc.minor!.count).toBe(3);
    expect(r.gc.minor!.ms).toBeCloseTo(3);
    expect(r.loopDelayMaxMs).toBeNaN();
  });
});
