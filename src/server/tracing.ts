// The OpenTelemetry SDK for the gateway process, configured by the standard OTEL_*
// environment variables, off unless asked for. When on, it hands its tracer and the W3C
// trace-context propagator to the facade every layer uses (../shared/tracing.ts).
//
// On when OTEL_TRACES_EXPORTER=otlp, or when OTEL_TRACES_EXPORTER is unset and
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. Off when
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none. Spans go out as OTLP/HTTP
// protobuf; the exporter reads its own variables (endpoint, headers, timeout,
// compression). A value tiergate cannot honour stops the start with the reason,
// rather than running without the traces the operator asked for.
import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { useTracing } from '../shared/tracing.js';
import { envValue as set, tracingRequested } from './tracing-env.js';

export { tracingRequested };

export const DEFAULT_SERVICE_NAME = 'tiergate-gateway';

type Env = Readonly<Record<string, string | undefined>>;

/** OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG; default parentbased_always_on. */
export function samplerFromEnv(env: Env): Sampler {
  const name = (set(env, 'OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on').toLowerCase();
  const ratio = (): number => {
    const arg = set(env, 'OTEL_TRACES_SAMPLER_ARG');
    if (arg === undefined) return 1;
    const n = Number(arg);
    if (!Number.isFinite(n) || n < 0 || n > 1) throw new Error(`OTEL_TRACES_SAMPLER_ARG: ${arg} is not a ratio between 0 and 1`);
    return n;
  };
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio());
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio()) });
    default:
      throw new Error(`OTEL_TRACES_SAMPLER: ${name} is not supported (always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)`);
  }
}

function positive(env: Env, name: string): number | undefined {
  const v = set(env, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}: ${v} is not a positive whole number`);
  return n;
}

export interface Tracing {
  /** Exports what is still queued, then stops (at shutdown). */
  shutdown(): Promise<void>;
}

let running: TracerProvider | undefined;

/** Sets tracing up when `env` asks for it; undefined (and nothing set up) when it does not. */
export function startTracing(env: Env = process.env): Tracing | undefined {
  if (!tracingRequested(env)) return undefined;
  const protocol = set(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? set(env, 'OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
  if (protocol !== 'http/protobuf') throw new Error(`OTEL_EXPORTER_OTLP_PROTOCOL: ${protocol} is not supported (http/protobuf)`);
  const sampler = samplerFromEnv(env);
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: DEFAULT_SERVICE_NAME }))
    .merge(detectResources({ detectors: [envDetector] }))
    .merge(set(env, 'OTEL_SERVICE_NAME') ? resourceFromAttributes({ [ATTR_SERVICE_NAME]: set(env, 'OTEL_SERVICE_NAME')! }) : null);
  const scheduledDelayMillis = positive(env, 'OTEL_BSP_SCHEDULE_DELAY');
  const maxQueueSize = positive(env, 'OTEL_BSP_MAX_QUEUE_SIZE');
  const maxExportBatchSize = positive(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE');
  const exportTimeoutMillis = positive(env, 'OTEL_BSP_EXPORT_TIMEOUT');
  const processor = new BatchSpanProcessor({
    exporter: new OTLPTraceExporter(),
    ...(scheduledDelayMillis ? { scheduledDelayMillis } : {}),
    ...(maxQueueSize ? { maxQueueSize } : {}),
    ...(maxExportBatchSize ? { maxExportBatchSize } : {}),
    ...(exportTimeoutMillis ? { exportTimeoutMillis } : {}),
  });
  const provider = new TracerProvider({ sampler, resource, spanProcessors: [processor] });
  const propagator = new W3CTraceContextPropagator();
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(propagator);
  useTracing({ tracer: provider.getTracer('tiergate'), propagator });
  running = provider;
  return {
    async shutdown() {
      useTracing(undefined);
      if (running === provider) running = undefined;
      await provider.shutdown();
    },
  };
}

/** Exports what is queued and stops tracing, if it is on; never rejects (for the exit path). */
export async function stopTracing(): Promise<void> {
  const provider = running;
  running = undefined;
  useTracing(undefined);
  await provider?.shutdown().catch(() => undefined);
}
