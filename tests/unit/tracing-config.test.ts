// Which OTEL_* settings turn tracing on, and which sampler they name: the on-switch of
// src/server/tracing.ts (off unless asked for; a value tiergate cannot honour refuses
// the start), and the forward stage's rule that a traceparent is a trusted proxy's only.
import { describe, expect, it } from 'vitest';
import { sanitizedHeaders } from '../../src/gateway/forward.js';
import { samplerFromEnv, tracingRequested } from '../../src/server/tracing.js';

describe('tracingRequested', () => {
  it('is off with no OTEL_* variable, and with an empty endpoint', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' })).toBe(false);
    expect(tracingRequested({ OTEL_SERVICE_NAME: 'gw' })).toBe(false);
  });

  it('is on with an OTLP endpoint (either variable) or OTEL_TRACES_EXPORTER=otlp', () => {
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe(true);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
  });

  it('is off when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, whatever the endpoint', () => {
    expect(tracingRequested({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' })).toBe(false);
    expect(tracingRequested({ OTEL_SDK_DISABLED: 'TRUE', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toBe(false);
    expect(tracingRequested({ OTEL_SDK_DISABLED: 'false', OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
  });

  it('refuses an exporter it does not have, rather than running without the traces asked for', () => {
    expect(() => tracingRequested({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(/OTEL_TRACES_EXPORTER: zipkin is not supported/);
    expect(() => tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp,console' })).toThrow(/console is not supported/);
  });
});

describe('samplerFromEnv', () => {
  it('defaults to parentbased_always_on and reads the ratio of the ratio samplers', () => {
    expect(samplerFromEnv({}).toString()).toMatch(/ParentBased\{root=AlwaysOnSampler/);
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'always_off' }).toString()).toBe('AlwaysOffSampler');
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).toString()).toBe('TraceIdRatioBased{0.25}');
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' }).toString()).toMatch(/root=TraceIdRatioBased\{0.1\}/);
  });

  it('refuses an unknown sampler and a ratio outside 0..1', () => {
    expect(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'jaeger_remote' })).toThrow(/OTEL_TRACES_SAMPLER: jaeger_remote is not supported/);
    expect(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(/not a ratio/);
  });
});

describe('traceparent on the way to the upstream', () => {
  const headers = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'k=v', accept: '*/*' };

  it("drops a client's traceparent and tracestate", () => {
    expect(sanitizedHeaders(headers, false)).toEqual({ accept: '*/*' });
  });

  it("keeps a trusted proxy's (tracing on replaces it with the gateway's own)", () => {
    expect(sanitizedHeaders(headers, true)).toEqual(headers);
  });
});
