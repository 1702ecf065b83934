// Signs the identity assertion the upstream trusts (see src/shared/assertion.ts)
// with the gateway's own Ed25519 key, and serves the public half as a JWKS.
// An assertion is bound to one method and path (htm/htu) but to nothing else of the
// request, so one is reused for the same subject, scope, tenants, method and path: no
// signing on the hot path for repeated calls. Each token is reused until a point drawn
// at random between half and three quarters of its validity, so it always reaches the
// upstream with a quarter of its life left, and tokens first signed together (a burst
// of new traffic, a restart) are not all signed again in the same second every half
// lifetime after: each re-signature also costs the upstream a verification.
//
// Signed with node:crypto, not jose's SignJWT: jose signs through WebCrypto and builds
// its claims on every call, several times the CPU of crypto.sign, and every cache miss
// is a new path, so a new assertion. The token is a plain compact JWS (RFC 7515 §7.1);
// the upstream still verifies it with jose.
import { createHash, createPrivateKey, generateKeyPairSync, sign as signBytes, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from '../shared/private-dir.js';
import { dirname } from 'node:path';
import type { JWK } from 'jose';
import { LRUCache } from 'lru-cache';
import { ASSERTION_ALG, ASSERTION_ISSUER, type AssertionClaims, type SettingsClaim } from '../shared/assertion.js';
import type { Scope } from '../authz/types.js';

/** The scope node's effective settings for the `settings` claim, with a digest that names them. */
export interface SignedSettings {
  claim: SettingsClaim;
  /** Changes whenever the claim does: part of the reuse key. */
  digest: string;
}

export interface AssertionSigner {
  /** Public keys, for `/.well-known/tiergate/jwks.json`. */
  readonly jwks: { keys: JWK[] };
  /**
   * An assertion for one authorized request: `method` is its (uppercase) method,
   * `path` its canonical path without the query (becoming `htm` and `htu`).
   */
  sign(sub: string, scope: Scope, tenants: readonly string[], method: string, path: string, settings?: SignedSettings): string;
  /** Assertions reused from the cache, or signed now (tiergate_assertions_total). */
  readonly counts: { reused: number; signed: number };
}

/** The private key's file name in TIERGATE_DATA_DIR; replicas of one gateway share the file. */
export const ASSERTION_KEY_FILE = 'gateway-assertion-key.json';

export interface AssertionSignerOptions {
  audience: string;
  ttlSeconds: number;
  /** Where the private JWK is kept across restarts (so upstream JWKS caches stay valid); in memory when absent. */
  keyFile?: string;
  maxCached?: number;
  /** Where in the reuse window (0..1) a new token stops being reused; tests replace it. */
  random?: () => number;
}

/** A token is reused until this share of its validity has passed, plus up to REUSE_SPREAD at random. */
const REUSE_FROM = 0.5;
const REUSE_SPREAD = 0.25;

function loadOrCreateKey(keyFile: string | undefined): { privateKey: KeyObject; publicJwk: JWK } {
  if (keyFile && existsSync(keyFile)) {
    // A private key others could read is narrowed to this user, not trusted as it was.
    if (process.platform !== 'win32' && (statSync(keyFile).mode & 0o077) !== 0) chmodSync(keyFile, PRIVATE_FILE_MODE);
    const jwk = JSON.parse(readFileSync(keyFile, 'utf8')) as JWK;
    if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.d !== 'string' || typeof jwk.x !== 'string') {
      throw new Error(`${keyFile} does not hold a private Ed25519 JWK`);
    }
    const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d }, format: 'jwk' });
    const { d: _private, ...publicJwk } = jwk;
    return { privateKey, publicJwk };
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const { kty, crv, x } = publicKey.export({ format: 'jwk' });
  const publicJwk: JWK = { kty, crv, x };
  publicJwk.kid = createHash('sha256').update(JSON.stringify(publicJwk)).digest('base64url').slice(0, 16);
  publicJwk.alg = ASSERTION_ALG;
  publicJwk.use = 'sig';
  if (keyFile) {
    ensurePrivateDir(dirname(keyFile));
    writeFileSync(keyFile, JSON.stringify({ ...privateKey.export({ format: 'jwk' }), kid: publicJwk.kid, alg: ASSERTION_ALG, use: 'sig' }), {
      mode: PRIVATE_FILE_MODE,
    });
  }
  return { privateKey, publicJwk };
}

const base64url = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

export async function createAssertionSigner(opts: AssertionSignerOptions): Promise<AssertionSigner> {
  const { privateKey, publicJwk } = loadOrCreateKey(opts.keyFile);
  const random = opts.random ?? Math.random;
  // The same for every assertion: encoded once.
  const header = base64url(JSON.stringify({ alg: ASSERTION_ALG, kid: publicJwk.kid, typ: 'JWT' }));
  const cache = new LRUCache<string, { token: string; reuseUntil: number }>({ max: opts.maxCached ?? 10000 });

  const counts = { reused: 0, signed: 0 };
  return {
    jwks: { keys: [publicJwk] },
    counts,
    sign(sub, scope, tenants, method, path, settings) {
      // Ids and paths cannot contain NUL (the gateway refuses it, raw or encoded), so NUL
      // separates unambiguously; the tenants, the one variable-length part, come last.
      const key = `${sub}\0${scope.type}\0${scope.id}\0${method}\0${path}\0${settings?.digest ?? ''}\0${tenants.join('\0')}`;
      const now = Date.now();
      const hit = cache.get(key);
      if (hit && hit.reuseUntil > now) {
        counts.reused++;
        return hit.token;
      }
      const iat = Math.floor(now / 1000);
      const claims: AssertionClaims = {
        iss: ASSERTION_ISSUER,
        aud: opts.audience,
        sub,
        iat,
        exp: iat + opts.ttlSeconds,
        scope: { type: scope.type, id: scope.id },
        tenants: [...tenants],
        htm: method,
        htu: path,
        ...(settings ? { settings: settings.claim } : {}),
      };
      const signingInput = `${header}.${base64url(JSON.stringify(claims))}`;
      // Ed25519 takes no digest name: the algorithm is the key's (RFC 8037).
      const token = `${signingInput}.${signBytes(null, Buffer.from(signingInput, 'utf8'), privateKey).toString('base64url')}`;
      // exp is whole seconds: the validity runs from now to exp, not a full ttlSeconds.
      const validMs = claims.exp * 1000 - now;
      cache.set(key, { token, reuseUntil: now + validMs * (REUSE_FROM + REUSE_SPREAD * random()) });
      counts.signed++;
      return token;
    },
  };
}
