// The gateway's per-request work before the decision, in process: normalise the
// target, check the headers, match the route policy and build the decision request,
// verify a token that was seen before (hash + LRU), and reuse a signed assertion.
// The decision lookup itself is in decisions.bench.ts. Benchmarks, not tests: no
// timed assertions anywhere in the unit tests.
// Run: npx vitest bench --run tests/bench/gateway.bench.ts
import type { IncomingHttpHeaders } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, createLocalJWKSet } from 'jose';
import { bench, describe } from 'vitest';
import { createAssertionSigner } from '../../src/gateway/assertion-signer.js';
import { createTokenVerifier } from '../../src/gateway/authenticate.js';
import { sanitizedHeaders } from '../../src/gateway/forward.js';
import { canonicaliseTarget, checkHeaders } from '../../src/gateway/normalise.js';
import { decisionRequest, loadPolicy } from '../../src/gateway/policy.js';

const TARGETS = Array.from({ length: 64 }, (_, i) => `/api/v1/tenants/acme-sales/agents/a${i}`);
const RAW_HEADERS = [
  'Host',
  '127.0.0.1:8080',
  'User-Agent',
  'k6/1.8.1 (https://k6.io/)',
  'Authorization',
  'Bearer eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl',
  'Accept-Encoding',
  'gzip',
];

const policy = loadPolicy('policy/routes.yaml');

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
    new SignJWT({})
      .setProtectedHeader({ alg: 'EdDSA', kid: 'k1' })
      .setIssuer('bench')
      .setAudience('tiergate')
      .setSubject(`u${i}`)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(privateKey),
  ),
);
for (const t of tokens) await verifier.verify(t); // now cached: the hot path hashes and looks up

const signer = await createAssertionSigner({ audience: 'tenant-service', ttlSeconds: 600 });
const scope = { type: 'tenant' as const, id: 'acme-sales' };
for (const p of TARGETS) signer.sign('u1', scope, ['acme-sales'], 'GET', p);

let i = 0;

describe('per request, before the decision', () => {
  bench('normalise: canonicalise the target + check the headers', () => {
    const r = canonicaliseTarget(TARGETS[i++ % TARGETS.length]!, 2048);
    if (!r.ok || checkHeaders(RAW_HEADERS, 16384) !== undefined) throw new Error('refused');
  });

  bench('policy: match the route + build the decision request', () => {
    const r = canonicaliseTarget(TARGETS[i++ % TARGETS.length]!, 2048);
    if (!r.ok) throw new Error('refused');
    const m = policy.match('GET', r.value.segments);
    if (m.kind !== 'matched') throw new Error(m.kind);
    decisionRequest(m.rule, m.params);
  });

  bench('authenticate: verify a token seen before (SHA-256 + LRU)', async () => {
    await verifier.verify(tokens[i++ % tokens.length]!);
  });

  bench('forward: reuse a signed assertion (no signing)', () => {
    signer.sign('u1', scope, ['acme-sales'], 'GET', TARGETS[i++ % TARGETS.length]!);
  });

  bench('all of the above, one request', async () => {
    const n = i++;
    const target = TARGETS[n % TARGETS.length]!;
    const r = canonicaliseTarget(target, 2048);
    if (!r.ok || checkHeaders(RAW_HEADERS, 16384) !== undefined) throw new Error('refused');
    const m = policy.match('GET', r.value.segments);
    if (m.kind !== 'matched') throw new Error(m.kind);
    decisionRequest(m.rule, m.params);
    await verifier.verify(tokens[n % tokens.length]!);
    signer.sign('u1', scope, ['acme-sales'], 'GET', target);
  });
});

// A cache miss is a new path, so a new assertion. The signer (node:crypto) against the
// same claims signed by jose's SignJWT through WebCrypto, which it replaced.
const { privateKey: webKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
let fresh = 0;

describe('per cache miss: sign a new assertion', () => {
  bench('signer (node:crypto Ed25519)', () => {
    signer.sign('u1', scope, ['acme-sales'], 'GET', `/api/v1/tenants/acme-sales/agents/new${fresh++}`);
  });

  bench('baseline: jose SignJWT (WebCrypto Ed25519)', async () => {
    const iat = Math.floor(Date.now() / 1000);
    await new SignJWT({ scope, tenants: ['acme-sales'], htm: 'GET', htu: `/api/v1/tenants/acme-sales/agents/new${fresh++}` })
      .setProtectedHeader({ alg: 'EdDSA', kid: 'k1', typ: 'JWT' })
      .setIssuer('tiergate')
      .setAudience('tenant-service')
      .setSubject('u1')
      .setIssuedAt(iat)
      .setExpirationTime(iat + 600)
      .sign(webKey);
  });
});

// The headers the upstream gets: the client's, without the ones it must not believe, then
// copied by http-proxy (`Object.assign({}, req.headers)`) as it builds its request. Each
// iteration starts from a new object filled the way Node fills a request's headers.
// Deleting from that object (what the forward stage did) leaves it a slow dictionary for
// every later reader; the forward stage now builds a new object instead.
function nodeLikeHeaders(): IncomingHttpHeaders {
  const h: IncomingHttpHeaders = {};
  for (let k = 0; k < RAW_HEADERS.length; k += 2) h[RAW_HEADERS[k]!.toLowerCase()] = RAW_HEADERS[k + 1]!;
  return h;
}

describe('per request: the headers forwarded upstream', () => {
  bench('sanitizedHeaders: a new object, then copied', () => {
    const copy = Object.assign({}, sanitizedHeaders(nodeLikeHeaders(), false));
    if (copy.authorization !== undefined) throw new Error('authorization forwarded');
  });

  bench('baseline: delete from the request object, then copied', () => {
    const h = nodeLikeHeaders();
    for (const name of Object.keys(h)) if (name === 'authorization') delete h[name];
    const copy = Object.assign({}, h);
    if (copy.authorization !== undefined) throw new Error('authorization forwarded');
  });
});
