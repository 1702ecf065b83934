// Signs the identity assertion the upstream trusts (see src/shared/assertion.ts)
// with the gateway's own Ed25519 key, and serves the public half as a JWKS.
// An assertion is bound to one method and path (htm/htu) but to nothing else of the
// request, so one is reused for the same subject, scope, tenants, method and path
// until half its lifetime has passed: no signing on the hot path for repeated calls.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type CryptoKey } from 'jose';
import { LRUCache } from 'lru-cache';
import { ASSERTION_ALG, ASSERTION_ISSUER } from '../shared/assertion.js';
import type { Scope } from './types.js';

export interface AssertionSigner {
  /** Public keys, for `/.well-known/tiergate/jwks.json`. */
  readonly jwks: { keys: JWK[] };
  /**
   * An assertion for one authorized request: `method` is its (uppercase) method,
   * `path` its canonical path without the query (becoming `htm` and `htu`).
   */
  sign(sub: string, scope: Scope, tenants: readonly string[], method: string, path: string): Promise<string>;
}

export interface AssertionSignerOptions {
  audience: string;
  ttlSeconds: number;
  /** Where the private JWK is kept across restarts (so upstream JWKS caches stay valid); in memory when absent. */
  keyFile?: string;
  maxCached?: number;
}

async function loadOrCreateKey(keyFile: string | undefined): Promise<{ privateKey: CryptoKey; publicJwk: JWK }> {
  if (keyFile && existsSync(keyFile)) {
    const jwk = JSON.parse(readFileSync(keyFile, 'utf8')) as JWK;
    const privateKey = (await importJWK(jwk, ASSERTION_ALG)) as CryptoKey;
    const { d: _private, ...publicJwk } = jwk;
    return { privateKey, publicJwk };
  }
  const { privateKey, publicKey } = await generateKeyPair(ASSERTION_ALG, { crv: 'Ed25519', extractable: true });
  const publicJwk = await exportJWK(publicKey);
  publicJwk.kid = createHash('sha256').update(JSON.stringify(publicJwk)).digest('base64url').slice(0, 16);
  publicJwk.alg = ASSERTION_ALG;
  publicJwk.use = 'sig';
  if (keyFile) {
    mkdirSync(dirname(keyFile), { recursive: true });
    writeFileSync(keyFile, JSON.stringify({ ...(await exportJWK(privateKey)), kid: publicJwk.kid, alg: ASSERTION_ALG, use: 'sig' }), {
      mode: 0o600,
    });
  }
  return { privateKey, publicJwk };
}

export async function createAssertionSigner(opts: AssertionSignerOptions): Promise<AssertionSigner> {
  const { privateKey, publicJwk } = await loadOrCreateKey(opts.keyFile);
  const reuseMs = (opts.ttlSeconds * 1000) / 2;
  const cache = new LRUCache<string, { token: string; reuseUntil: number }>({ max: opts.maxCached ?? 10000 });

  return {
    jwks: { keys: [publicJwk] },
    async sign(sub, scope, tenants, method, path) {
      // Ids and paths cannot contain NUL (the gateway refuses it, raw or encoded), so NUL
      // separates unambiguously; the tenants, the one variable-length part, come last.
      const key = `${sub}\0${scope.type}\0${scope.id}\0${method}\0${path}\0${tenants.join('\0')}`;
      const now = Date.now();
      const hit = cache.get(key);
      if (hit && hit.reuseUntil > now) return hit.token;
      const iat = Math.floor(now / 1000);
      const token = await new SignJWT({ scope: { type: scope.type, id: scope.id }, tenants: [...tenants], htm: method, htu: path })
        .setProtectedHeader({ alg: ASSERTION_ALG, kid: publicJwk.kid, typ: 'JWT' })
        .setIssuer(ASSERTION_ISSUER)
        .setAudience(opts.audience)
        .setSubject(sub)
        .setIssuedAt(iat)
        .setExpirationTime(iat + opts.ttlSeconds)
        .sign(privateKey);
      cache.set(key, { token, reuseUntil: now + reuseMs });
      return token;
    },
  };
}
