// An Ed25519 token issuer whose public key set the gateway trusts through AUTH_ISSUERS.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CompactSign, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

export interface TestIssuer {
  issuer: string;
  audience: string;
  kid: string;
  /** The JWKS file the gateway trusts (AUTH_ISSUERS jwksFile). */
  jwksFile: string;
  /** The AUTH_ISSUERS value trusting this issuer. */
  authIssuers: string;
  /** A token for `sub`, valid 15 minutes; `claims` and `ttlS` override the defaults. */
  token(sub: string, opts?: { ttlS?: number; claims?: Record<string, unknown> }): Promise<string>;
  /** A token whose claims are `claimsJson` byte for byte (e.g. `"sub":["tom"]` or `"exp":1e309`, which SignJWT refuses). */
  tokenFromJson(claimsJson: string): Promise<string>;
}

/** An Ed25519 issuer whose public key set is written to `dir` for AUTH_ISSUERS. */
export async function createTestIssuer(dir: string): Promise<TestIssuer> {
  const issuer = 'https://issuer.e2e.tiergate.test';
  const audience = 'tiergate';
  const kid = `e2e-${randomUUID().slice(0, 8)}`;
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  const jwksFile = join(dir, 'issuer-jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  const authIssuers = JSON.stringify([{ issuer, audiences: [audience], algorithms: ['EdDSA'], jwksFile }]);
  const sign = (sub: string, ttlS: number, claims: Record<string, unknown>, key: CryptoKey) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(sub)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlS)
      .sign(key);
  };
  return {
    issuer,
    audience,
    kid,
    jwksFile,
    authIssuers,
    token: (sub, opts = {}) => sign(sub, opts.ttlS ?? 900, opts.claims ?? {}, privateKey),
    tokenFromJson: (claimsJson) =>
      new CompactSign(new TextEncoder().encode(claimsJson)).setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' }).sign(privateKey),
  };
}
