// The upstream's cost of a gateway assertion it has not seen before (about one request
// in ten when warm, three in four on cache misses): the tenant service's verifier, which
// checks the Ed25519 signature with node:crypto, against jose's jwtVerify on the same
// tokens, the baseline it replaced (WebCrypto, so a job on the libuv thread pool per
// token). Benchmarks, not tests: no timed assertions anywhere in the unit tests.
// Run: npx vitest bench --run tests/bench/assertion-verify.bench.ts
import { createLocalJWKSet, jwtVerify } from 'jose';
import { bench, describe } from 'vitest';
import { createAssertionSigner } from '../../src/gateway/assertion-signer.js';
import { ASSERTION_ALG, ASSERTION_ISSUER } from '../../src/shared/assertion.js';
import { createAssertionVerifier } from '../../src/tenant-service/assertion-auth.js';

const AUDIENCE = 'tenant-service';
const signer = await createAssertionSigner({ audience: AUDIENCE, ttlSeconds: 600 });
const scope = { type: 'tenant' as const, id: 'acme-sales' };
// Distinct subjects and paths: every token is new to a verifier whose cache holds one.
const tokens = Array.from({ length: 2048 }, (_, i) =>
  signer.sign(`u${i}`, scope, ['acme-sales'], 'GET', `/api/v1/tenants/acme-sales/agents/a${i}`),
);
const keys = createLocalJWKSet(signer.jwks);
const verifier = createAssertionVerifier({ verifyKey: keys, audience: AUDIENCE, cacheMax: 1 });
const cached = createAssertionVerifier({ verifyKey: keys, audience: AUDIENCE });
for (const t of tokens.slice(0, 64)) await cached.verify(t);

let i = 0;
let j = 0;
let k = 0;

describe('upstream: verify a new gateway assertion', () => {
  bench('baseline: jose jwtVerify (WebCrypto)', async () => {
    await jwtVerify(tokens[i++ % tokens.length]!, keys, {
      algorithms: [ASSERTION_ALG],
      issuer: ASSERTION_ISSUER,
      audience: AUDIENCE,
      requiredClaims: ['exp', 'iat', 'sub'],
    });
  });
  bench('tenant service verifier (node:crypto), claims schema included', async () => {
    await verifier.verify(tokens[j++ % tokens.length]!);
  });
});

describe('upstream: a gateway assertion seen before', () => {
  bench('tenant service verifier: hash + LRU hit', async () => {
    await cached.verify(tokens[k++ % 64]!);
  });
});
