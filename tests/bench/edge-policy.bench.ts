// The cost of the edge-policy stage on the gateway's request path, in process: request
// context, normalise, authenticate (a token seen before), match policy, [edge policies],
// authorize (a fixed answer) through Hono, then a 204 instead of the proxy. The scope
// node's settings come from a function answering one snapshot object, as the settings
// cache does on a warm path (and the snapshot is resolved there anyway, for the
// assertion's claim). Three ways in one run: no edge stage, the stage with every policy
// at its default, and the stage with a three-range allowlist and MFA required.
// Benchmarks, not tests: no timed assertions anywhere in the unit tests.
// Run: npx vitest bench --run tests/bench/edge-policy.bench.ts
import { Hono, type MiddlewareHandler } from 'hono';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT } from 'jose';
import pino from 'pino';
import { bench, describe } from 'vitest';
import type { Authorizer, Decision } from '../../src/authz/types.js';
import type { SignedSettings } from '../../src/gateway/assertion-signer.js';
import { authenticate, createTokenVerifier } from '../../src/gateway/authenticate.js';
import { authorize } from '../../src/gateway/authorize.js';
import { edgePolicy } from '../../src/gateway/edge-policy.js';
import { createGatewayMetrics } from '../../src/gateway/metrics.js';
import { normalise } from '../../src/gateway/normalise.js';
import { loadPolicy, matchPolicy } from '../../src/gateway/policy.js';
import { requestContext } from '../../src/gateway/request-context.js';
import type { GatewayEnv } from '../../src/gateway/types.js';
import { Registry } from 'prom-client';

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
    new SignJWT({ amr: ['pwd', 'mfa'], auth_time: now })
      .setProtectedHeader({ alg: 'EdDSA', kid: 'k1' })
      .setIssuer('bench')
      .setAudience('tiergate')
      .setSubject(`u${i}`)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(privateKey),
  ),
);
for (const t of tokens) await verifier.verify(t);
const TARGETS = Array.from({ length: 64 }, (_, i) => `http://gw/api/v1/tenants/acme-sales/agents/a${i}`);

const allow: Authorizer = { check: async (): Promise<Decision> => ({ allowed: true, layer: 'l1', durationMs: 0 }) };
const policy = loadPolicy('policy/routes.yaml');
const metrics = createGatewayMetrics(new Registry());

const snapshot = (values: Record<string, unknown>) => ({ claim: { node: 'tenant:acme-sales', values, sources: {} }, digest: 'bench' }) as unknown as SignedSettings;
const defaults = snapshot({ 'security.ip_allowlist': [], 'security.require_mfa': false, 'security.session_max_age': '12h' });
const strict = snapshot({ 'security.ip_allowlist': ['192.168.0.0/16', '2001:db8::/32', '10.0.0.0/8'], 'security.require_mfa': true, 'security.session_max_age': '1h' });

function buildApp(settings: SignedSettings | undefined): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.use('*', requestContext({ logger: pino({ level: 'silent' }), trustedProxies: new Set<string>() }));
  const api = new Hono<GatewayEnv>();
  api.use('*', normalise({ maxPathLength: 2048, maxHeaderBytes: 16384 }), authenticate(verifier), matchPolicy(policy));
  if (settings) {
    const stage: MiddlewareHandler<GatewayEnv> = edgePolicy({ settings: async () => settings, trustedProxies: new Set<string>(), metrics, mfaAcrValues: [] });
    api.use('*', stage);
  }
  api.use('*', authorize({ authorizer: allow }));
  api.all('*', (c) => c.body(null, 204));
  app.route('/api/v1', api);
  return app;
}

const without = buildApp(undefined);
const withDefaults = buildApp(defaults);
const withStrict = buildApp(strict);
// The Node request @hono/node-server would pass (the allowlist reads the socket peer).
const incomings = TARGETS.map((target, n) => {
  const authorization = `Bearer ${tokens[n % tokens.length]!}`;
  return {
    method: 'GET',
    url: new URL(target).pathname,
    socket: { remoteAddress: '10.1.2.3' },
    headers: { host: 'gw', authorization },
    rawHeaders: ['Host', 'gw', 'Authorization', authorization],
  };
});

let i = 0;
async function one(app: Hono<GatewayEnv>): Promise<void> {
  const n = i++ % TARGETS.length;
  const res = await app.request(TARGETS[n]!, { headers: { authorization: incomings[n]!.headers.authorization } }, { incoming: incomings[n] });
  if (res.status !== 204) throw new Error(`status ${res.status}: ${await res.text()}`);
}

// Longer than the default: the figures sit at tens of microseconds on a shared machine.
const OPTIONS = { time: 3000, warmupTime: 1000 };

describe('request path through Hono: the edge-policy stage', () => {
  bench('no edge-policy stage', async () => {
    await one(without);
  }, OPTIONS);
  bench('edge policies at their defaults', async () => {
    await one(withDefaults);
  }, OPTIONS);
  bench('allowlist of three ranges + MFA + 1h session', async () => {
    await one(withStrict);
  }, OPTIONS);
});
