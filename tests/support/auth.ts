// Real tokens for tests: an Ed25519 key made with jose, JWTs signed with it, and
// the gateway's own authenticate stage verifying them against that key.
import type { MiddlewareHandler } from 'hono';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { authenticate, createTokenVerifier } from '../../src/gateway/authenticate.js';
import type { RequestEnv } from '../../src/authz/types.js';

export interface TestAuth {
  issuer: string;
  audience: string;
  /** The gateway's authenticate stage, trusting only this test issuer. */
  authenticate: MiddlewareHandler<RequestEnv>;
  /** A signed JWT for `sub`, valid for 15 minutes. */
  token(sub: string): Promise<string>;
}

export async function createTestAuth(): Promise<TestAuth> {
  const issuer = 'https://issuer.tiergate.test';
  const audience = 'tiergate';
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: 'EdDSA', use: 'sig' };
  const verifier = createTokenVerifier({
    issuers: [{ issuer, audiences: [audience], algorithms: ['EdDSA'], keys: createLocalJWKSet({ keys: [jwk] }) }],
    clockToleranceS: 5,
    tokenCacheMax: 1000,
  });
  return {
    issuer,
    audience,
    authenticate: authenticate(verifier),
    token: (sub) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA', kid: 'test-key' })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(sub)
        .setIssuedAt()
        .setExpirationTime('15m')
        .sign(privateKey),
  };
}
