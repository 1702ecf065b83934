// The tracing facade every layer uses: a span around one piece of work, the W3C
// `traceparent` into and out of HTTP headers, and the ids of the active span for log
// lines. The OpenTelemetry SDK itself is set up by the server (src/server/tracing.ts),
// which hands its tracer and propagator here; until then (tracing off, the default)
// every function is a check of one variable and returns undefined, so callers write
// `const span = startSpan(...)` and `span?.end()` and pay nothing else.
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type TextMapPropagator, type Tracer } from '@opentelemetry/api';

export { SpanKind, type Span };

interface TracingState {
  tracer: Tracer;
  propagator: TextMapPropagator;
}

let state: TracingState | undefined;

/** Called by the server once the SDK is set up (undefined turns tracing off again, e.g. at shutdown). */
export function useTracing(next: TracingState | undefined): void {
  state = next;
}

export function tracingEnabled(): boolean {
  return state !== undefined;
}

/** A span that is a child of the active one (or of `parent`); undefined when tracing is off. It is not made active. */
export function startSpan(name: string, kind: SpanKind = SpanKind.INTERNAL, attributes?: Attributes, parent?: Context): Span | undefined {
  if (state === undefined) return undefined;
  return state.tracer.startSpan(name, { kind, ...(attributes ? { attributes } : {}) }, parent ?? context.active());
}

/** Ends `span`, marked as an error when `err` is given. */
export function endSpan(span: Span, err?: unknown): void {
  if (err !== undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }
  span.end();
}

/** Runs `fn` with `span` as the active span (its async continuations included). */
export function withSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** The context active now (to run a later callback in it again). */
export function activeContext(): Context {
  return context.active();
}

/** Runs `fn` in `ctx`. */
export function withContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}

type HeaderCarrier = Record<string, string | string[] | undefined>;

/** Writes `span`'s `traceparent` (and `tracestate`) into `headers`; nothing when tracing is off. */
export function injectTraceHeaders(span: Span, headers: HeaderCarrier): void {
  if (state === undefined) return;
  state.propagator.inject(trace.setSpan(context.active(), span), headers, {
    set: (carrier, key, value) => {
      carrier[key] = value;
    },
  });
}

/**
 * The parent of a request's server span: the trace a W3C `traceparent` in `headers`
 * names, to continue it; the root context (a new trace) when `headers` is undefined
 * (the peer is not trusted), has none, or it is malformed.
 */
export function extractTraceContext(headers: Readonly<HeaderCarrier> | undefined): Context {
  if (state === undefined || headers === undefined) return ROOT_CONTEXT;
  return state.propagator.extract(ROOT_CONTEXT, headers, {
    get: (carrier, key) => carrier[key],
    keys: (carrier) => Object.keys(carrier),
  });
}

/** Ids for a log line: of `span`, else of the active span; undefined when there is none. */
export function traceIds(span?: Span): { trace_id: string; span_id: string } | undefined {
  if (state === undefined) return undefined;
  const s = span ?? trace.getSpan(context.active());
  if (s === undefined) return undefined;
  const ctx = s.spanContext();
  return { trace_id: ctx.traceId, span_id: ctx.spanId };
}

/** A pino `mixin`: the active span's ids on every line written inside a traced request. */
export function traceLogMixin(): Record<string, string> {
  return traceIds() ?? {};
}
