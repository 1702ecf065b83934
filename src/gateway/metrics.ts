// Prometheus metrics (prom-client), served on a separate loopback listener.
import { collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export interface GatewayMetrics {
  registry: Registry;
  requestDuration: Histogram<'route' | 'method' | 'status'>;
  decisionDuration: Histogram<'layer' | 'allowed'>;
  upstreamDuration: Histogram<'status'>;
}

const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createGatewayMetrics(registry = new Registry()): GatewayMetrics {
  // Includes nodejs_eventloop_lag_* and process metrics.
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    requestDuration: new Histogram({
      name: 'tiergate_request_duration_seconds',
      help: 'Gateway request duration, from arrival to the last byte of the response.',
      labelNames: ['route', 'method', 'status'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    decisionDuration: new Histogram({
      name: 'tiergate_decision_duration_seconds',
      help: 'Time to an authorization decision, by the cache layer that answered.',
      labelNames: ['layer', 'allowed'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: 'tiergate_upstream_duration_seconds',
      help: 'Tenant-resource service response time as seen by the gateway.',
      labelNames: ['status'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
  };
}
