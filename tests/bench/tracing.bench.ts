// The cost of tracing on the gateway's request path, in process: request context,
// normalise, authenticate (a token seen before), match policy and authorize (a fixed
// answer) through Hono, composed as src/gateway/app.ts composes them (every stage in
// stageSpan), then a 204 instead of the proxy. Three ways in one run: tracing off (the
// default: stageSpan hands back the stage itself and the request context checks one
// variable), tracing on with a sampler that records nothing (OTEL_TRACES_SAMPLER=always_off),
// and tracing on with every request recorded and exported (to an exporter that drops it).
// Benchmarks, not tests: no timed assertions anywhere in the unit tests.
// Run: npx vitest bench --run tests/bench/tracing.bench.ts
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core';
import { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, TracerProvider, type Sampler, type SpanExporter } from '@opentelemetry/sdk-trace';
import { Hono } from 'hono';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT } from 'jose';
import pino from 'pino';
import { bench, describe } from 'vitest';
import type { Authorizer, Decision } from '../../src/authz/types.js';
import { authenticate, createTokenVerifier } from '../../src/gateway/authenticate.js';
import { authorize } from '../../src/gateway/authorize.js';
import { normalise } from '../../src/gateway/normalise.js';
import { loadPolicy, matchPolicy } from '../../src/gateway/policy.js';
import { requestContext } from '../../src/gateway/request-context.js';
import { authorizeSpanEnd, policySpanEnd, stageSpan } from '../../src/gateway/stage-spans.js';
import type { GatewayEnv } from '../../src/gateway/types.js';
import { useTracing } from '../../src/shared/tracing.js';

const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'EdDSA' };
const verifier = createTokenVerifier({
  issuers: [{ issuer: 'bench', audiences: ['tiergate'], algorithms: ['EdDSA'], keys: createLocalJWKSet({ keys: [jwk] }) }],
  clockToleranceS: 30,
  tokenCacheMax: 10_000,
});
const now = Math.floor(Date.now() / 1000);
const tokens = await Promise.all(
  Array.from({ length: 32 }, (_, i) =>
    new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid: 'k1' }).setIssuer('bench').setAudience('tiergate').setSubject(`u${i}`).setIssuedAt(now).setExpirationTime(now + 3600).sign(privateKey),
  ),
);
for (const t of tokens) await verifier.verify(t);
const TARGETS = Array.from({ length: 64 }, (_, i) => `http://gw/api/v1/tenants/acme-sales/agents/a${i}`);

const allow: Authorizer = { check: async (): Promise<Decision> => ({ allowed: true, layer: 'l1', durationMs: 0 }) };
const policy = loadPolicy('policy/routes.yaml');

function buildApp(): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.use('*', requestContext({ logger: pino({ level: 'silent' }), trustedProxies: new Set<string>() }));
  const api = new Hono<GatewayEnv>();
  api.use(
    '*',
    stageSpan('normalise', normalise({ maxPathLength: 2048, maxHeaderBytes: 16384 })),
    stageSpan('authenticate', authenticate(verifier)),
    stageSpan('policy', matchPolicy(policy), policySpanEnd),
    stageSpan('authorize', authorize({ authorizer: allow }), authorizeSpanEnd),
  );
  api.all('*', (c) => c.body(null, 204));
  app.route('/api/v1', api);
  return app;
}

const dropAll: SpanExporter = {
  export: (_spans, done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: async () => undefined,
};
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const propagator = new W3CTraceContextPropagator();
function tracingWith(sampler: Sampler) {
  const provider = new TracerProvider({ sampler, spanProcessors: [new BatchSpanProcessor({ exporter: dropAll })] });
  return { tracer: provider.getTracer('bench'), propagator };
}
const unsampled = tracingWith(new AlwaysOffSampler());
const sampled = tracingWith(new AlwaysOnSampler());

// Each app is built with tracing as it runs (stageSpan decides when the app is built).
useTracing(undefined);
const offApp = buildApp();
useTracing(unsampled);
const unsampledApp = buildApp();
useTracing(sampled);
const sampledApp = buildApp();
useTracing(undefined);

let i = 0;
async function one(app: Hono<GatewayEnv>): Promise<void> {
  const n = i++;
  const res = await app.request(TARGETS[n % TARGETS.length]!, { headers: { authorization: `Bearer ${tokens[n % tokens.length]!}` } });
  if (res.status !== 204) throw new Error(`status ${res.status}: ${await res.text()}`);
}

// Longer than the default: the figures sit at tens of microseconds on a shared machine.
const OPTIONS = { time: 3000, warmupTime: 1000 };

describe('request path through Hono: request context + four stages', () => {
  bench('tracing off (default)', async () => {
    useTracing(undefined);
    await one(offApp);
  }, OPTIONS);
  bench('tracing on, not sampled (always_off)', async () => {
    useTracing(unsampled);
    await one(unsampledApp);
  }, OPTIONS);
  bench('tracing on, every request sampled and exported', async () => {
    useTracing(sampled);
    await one(sampledApp);
  }, OPTIONS);
});
