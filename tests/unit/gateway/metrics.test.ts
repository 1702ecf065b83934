import { AggregatorRegistry, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createGatewayMetrics, LatencyHistogram, upstreamObserver } from '../../../src/gateway/metrics.js';

function series(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(name));
}

describe('LatencyHistogram', () => {
  it('exposes cumulative buckets, sum and count per label set in the Prometheus text format', async () => {
    const registry = new Registry();
    const h = new LatencyHistogram({ name: 't_seconds', help: 'test', labelNames: ['layer'], buckets: [0.001, 0.01], registers: [registry] });
    h.labels('l1').observe(0.0005);
    h.labels('l1').observe(0.005);
    h.labels('l1').observe(5);
    h.observe({ layer: 'redis' }, 0.002);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE t_seconds histogram');
    expect(series(text, 't_seconds_bucket{layer="l1"')).toEqual([
      't_seconds_bucket{layer="l1",le="0.001"} 1',
      't_seconds_bucket{layer="l1",le="0.01"} 2',
      't_seconds_bucket{layer="l1",le="+Inf"} 3',
    ]);
    expect(text).toContain('t_seconds_count{layer="l1"} 3');
    expect(text).toContain('t_seconds_sum{layer="l1"} 5.0055');
    expect(text).toContain('t_seconds_bucket{layer="redis",le="0.01"} 1');
  });

  it('ignores values that are not finite numbers', async () => {
    const registry = new Registry();
    const h = new LatencyHistogram({ name: 'n_seconds', help: 'test', labelNames: ['x'], buckets: [1], registers: [registry] });
    h.labels('a').observe(Number.NaN);
    h.labels('a').observe(0.5);
    expect(await registry.metrics()).toContain('n_seconds_count{x="a"} 1');
  });

  it('is summed across registries the way the cluster primary aggregates workers', async () => {
    const workers = [new Registry(), new Registry()];
    for (const r of workers) {
      const m = createGatewayMetrics(r);
      m.decisionDuration.labels('l1', 'true').observe(0.000004);
      const reports = upstreamObserver(m, 'reports');
      reports(200, 0.002);
      reports('timeout', 1);
      upstreamObserver(m, 'tenant-service')(404, 0.001);
    }
    const aggregated = AggregatorRegistry.aggregate(await Promise.all(workers.map((r) => r.getMetricsAsJSON())));
    const text = await aggregated.metrics();
    expect(text).toContain('tiergate_decision_duration_seconds_count{layer="l1",allowed="true"} 2');
    expect(text).toContain('tiergate_decision_duration_seconds_bucket{layer="l1",allowed="true",le="0.000005"} 2');
    expect(text).toContain('tiergate_upstream_duration_seconds_count{upstream="reports",status="200"} 2');
    expect(text).toContain('tiergate_upstream_duration_seconds_count{upstream="reports",status="timeout"} 2');
    expect(text).toContain('tiergate_upstream_requests_total{upstream="reports",class="2xx"} 2');
    expect(text).toContain('tiergate_upstream_requests_total{upstream="reports",class="4xx"} 0');
    expect(text).toContain('tiergate_upstream_requests_total{upstream="tenant-service",class="4xx"} 2');
    expect(text).toContain('tiergate_upstream_errors_total{upstream="reports",reason="timeout"} 2');
    expect(text).toContain('tiergate_upstream_errors_total{upstream="reports",reason="unreachable"} 0');
  });

  it('samples the event-loop delay at the configured precision, and leaves runtime metrics out when asked', async () => {
    const coarse = new Registry();
    createGatewayMetrics(coarse, { eventLoopPrecisionMs: 100 });
    await new Promise((r) => setTimeout(r, 450));
    const text = await coarse.metrics();
    // The histogram records the interval between samples: never shorter than the precision.
    const min = Number(/^nodejs_eventloop_lag_min_seconds (\S+)$/m.exec(text)?.[1]);
    expect(min).toBeGreaterThanOrEqual(0.095);
    expect(text).toMatch(/^process_cpu_seconds_total /m);

    const none = new Registry();
    createGatewayMetrics(none, { runtime: false });
    const bare = await none.metrics();
    expect(bare).not.toMatch(/^(nodejs|process)_/m);
    expect(bare).toContain('tiergate_upstream_requests_total');
  });
});
