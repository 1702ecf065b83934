// Verifies the gateway's assertion: the only thing this service believes about who
// is calling and which tenants the call may touch. Client identity headers
// (X-User-Id, X-Tenant-Id, …) are never read anywhere in the service.
//
// The signature is checked with node:crypto, synchronously, not with jose's jwtVerify:
// jose verifies through WebCrypto, which Node runs as a job on the libuv thread pool, so
// each new assertion costs a round trip to another thread besides more CPU, in the
// mean and more so in the tail (`npx vitest bench --run
// tests/bench/assertion-verify.bench.ts` compares both). jose still finds the key (JWKS fetching,
// caching, kid and alg matching); what jwtVerify did besides is below, explicitly: only
// EdDSA, no `crit` extensions, an Ed25519/Ed448 public key, iss/aud/sub/iat/exp required
// and nbf checked with the same clock tolerance, and then the contract's schema.
import { createHash, createPublicKey, KeyObject, verify as verifyBytes, type JsonWebKey } from 'node:crypto';
import { errors, type FlattenedJWSInput, type JWTHeaderParameters, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import type { MiddlewareHandler } from 'hono';
import {
  ASSERTION_ALG,
  ASSERTION_HEADER,
  ASSERTION_ISSUER,
  assertionClaimsSchema,
  type AssertionClaims,
} from '../shared/assertion.js';
import { Problem } from '../shared/problem.js';
import { type TenantServiceEnv } from './http.js';

/** A key resolver (e.g. createRemoteJWKSet / createLocalJWKSet) or one public key. */
export type AssertionKey = JWTVerifyGetKey | CryptoKey | KeyObject;

export interface AssertionVerifierOptions {
  verifyKey: AssertionKey;
  audience: string;
  /** Seconds of clock skew tolerated on exp/iat/nbf. */
  clockToleranceSec?: number;
  /** Verified assertions remembered (by token hash) until they expire. */
  cacheMax?: number;
  /** Assertions are a few hundred bytes; anything far larger is not one. */
  maxTokenBytes?: number;
}

/** `invalid`: the caller's fault (401). `unavailable`: we could not check it (503). */
export class AssertionError extends Error {
  constructor(
    readonly kind: 'invalid' | 'unavailable',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'AssertionError';
  }
}

interface CachedAssertion {
  claims: AssertionClaims;
  expiresAtMs: number;
}

export interface AssertionVerifier {
  verify(token: string): Promise<AssertionClaims>;
  /** Entries in the verified-assertion cache (for tests and metrics). */
  readonly cacheSize: number;
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function createAssertionVerifier(opts: AssertionVerifierOptions): AssertionVerifier {
  const clockToleranceSec = opts.clockToleranceSec ?? 5;
  const maxTokenBytes = opts.maxTokenBytes ?? 8192;
  const cache = new LRUCache<string, CachedAssertion>({ max: opts.cacheMax ?? 10_000 });
  const key = opts.verifyKey;

  /** The key that must have signed this token: jose's key set picks it by kid and alg. */
  async function signingKey(header: JWTHeaderParameters, input: FlattenedJWSInput): Promise<KeyObject> {
    let found: unknown;
    try {
      found = typeof key === 'function' ? await key(header, input) : key;
    } catch (err) {
      // A key set we cannot fetch is our outage, not the caller's bad token.
      if (err instanceof errors.JWKSTimeout || !(err instanceof errors.JOSEError)) {
        throw new AssertionError('unavailable', 'assertion keys unavailable', { cause: err });
      }
      throw new AssertionError('invalid', describeJoseError(err), { cause: err });
    }
    const keyObject = publicKeyObject(found);
    // EdDSA (RFC 8037) is Ed25519 or Ed448; any other key cannot have made an EdDSA signature.
    if (keyObject.asymmetricKeyType !== 'ed25519' && keyObject.asymmetricKeyType !== 'ed448') {
      throw new AssertionError('unavailable', `the gateway key is ${keyObject.asymmetricKeyType ?? keyObject.type}, not an EdDSA public key`);
    }
    return keyObject;
  }

  async function verifySignature(token: string): Promise<Record<string, unknown>> {
    // The caller checked the compact shape (three base64url parts).
    const firstDot = token.indexOf('.');
    const lastDot = token.lastIndexOf('.');
    const encodedHeader = token.slice(0, firstDot);
    const encodedPayload = token.slice(firstDot + 1, lastDot);
    const encodedSignature = token.slice(lastDot + 1);
    const header = decodeJsonPart(encodedHeader);
    // Never what the token asks for: never HMAC, never none.
    if (header.alg !== ASSERTION_ALG) throw new AssertionError('invalid', 'assertion algorithm not allowed');
    // No extension is understood here, so none may be critical (RFC 7515 §4.1.11); b64 is one.
    if (header.crit !== undefined || header.b64 !== undefined) throw new AssertionError('invalid', 'assertion malformed');
    const signature = Buffer.from(encodedSignature, 'base64url');
    // One encoding per signature: base64url's spare trailing bits must be zero, so a
    // token cannot be altered into another string that still verifies.
    if (signature.toString('base64url') !== encodedSignature) throw new AssertionError('invalid', 'assertion malformed');
    const publicKey = await signingKey(header as JWTHeaderParameters, {
      protected: encodedHeader,
      payload: encodedPayload,
      signature: encodedSignature,
    });
    // Ed25519/Ed448 take no digest name: the algorithm is the key's.
    if (!verifyBytes(null, Buffer.from(token.slice(0, lastDot), 'latin1'), publicKey, signature)) {
      throw new AssertionError('invalid', 'assertion signature not from the gateway');
    }
    const payload = decodeJsonPart(encodedPayload);
    checkRegisteredClaims(payload, opts.audience, clockToleranceSec);
    return payload;
  }

  return {
    get cacheSize() {
      return cache.size;
    },
    async verify(token: string): Promise<AssertionClaims> {
      if (token.length > maxTokenBytes || !COMPACT_JWS.test(token)) {
        throw new AssertionError('invalid', 'not a compact JWS');
      }
      // Keyed by hash: the cache never holds the bearer tokens themselves.
      const hash = createHash('sha256').update(token).digest('base64url');
      const hit = cache.get(hash);
      if (hit && hit.expiresAtMs > Date.now()) return hit.claims;

      const payload = await verifySignature(token);
      const parsed = assertionClaimsSchema.safeParse(payload);
      if (!parsed.success) throw new AssertionError('invalid', 'assertion claims do not match the contract');
      const claims = parsed.data;
      // Remember only until exp (not exp + tolerance): a cached answer is never more lenient than a fresh one.
      const ttl = claims.exp * 1000 - Date.now();
      if (ttl > 0) cache.set(hash, { claims, expiresAtMs: claims.exp * 1000 }, { ttl });
      return claims;
    },
  };
}

/** Node's KeyObject for what a key set returned; each CryptoKey is converted once (jose imports each JWK once). */
const converted = new WeakMap<object, KeyObject>();
function publicKeyObject(found: unknown): KeyObject {
  if (found instanceof Uint8Array) throw new AssertionError('unavailable', 'the gateway key is a shared secret, not a public key');
  let keyObject: KeyObject;
  if (found instanceof KeyObject) keyObject = found;
  else if (isCryptoKey(found)) {
    const known = converted.get(found);
    keyObject = known ?? KeyObject.from(found as Parameters<typeof KeyObject.from>[0]);
    if (!known) converted.set(found, keyObject);
  } else if (typeof found === 'object' && found !== null) {
    keyObject = createPublicKey({ key: found as JsonWebKey, format: 'jwk' });
  } else throw new AssertionError('unavailable', 'the gateway key set returned no key');
  if (keyObject.type !== 'public') throw new AssertionError('unavailable', `the gateway key is a ${keyObject.type} key, not a public key`);
  return keyObject;
}

function isCryptoKey(value: unknown): value is object {
  return typeof value === 'object' && value !== null && (value as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] === 'CryptoKey';
}

/** A base64url part holding a JSON object (the header or the claims), or 401. */
function decodeJsonPart(part: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new AssertionError('invalid', 'assertion malformed');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AssertionError('invalid', 'assertion malformed');
  return value as Record<string, unknown>;
}

/** RFC 7519 §4.1: the claims jwtVerify checked before, with the same tolerance on times. */
function checkRegisteredClaims(claims: Record<string, unknown>, audience: string, toleranceSec: number): void {
  const rejected = (claim: string) => new AssertionError('invalid', `assertion claim "${claim}" rejected`);
  if (claims.iss !== ASSERTION_ISSUER) throw rejected('iss');
  const aud = claims.aud;
  if (!(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) throw rejected('aud');
  if (typeof claims.sub !== 'string') throw rejected('sub');
  const now = Math.floor(Date.now() / 1000);
  for (const name of ['exp', 'iat'] as const) {
    if (!Number.isFinite(claims[name])) throw rejected(name);
  }
  if ((claims.exp as number) <= now - toleranceSec) throw new AssertionError('invalid', 'assertion expired');
  if (claims.nbf !== undefined && !(Number.isFinite(claims.nbf) && (claims.nbf as number) <= now + toleranceSec)) throw rejected('nbf');
}

/** What a key set's refusal means for the caller: only key lookups reach jose now. */
function describeJoseError(err: errors.JOSEError): string {
  // No key of the gateway's has this token's kid (and alg): someone else signed it.
  if (err instanceof errors.JWKSNoMatchingKey) return 'assertion signature not from the gateway';
  return 'assertion malformed';
}

/**
 * Whether verified claims were issued for this very request: its method and path
 * (`htm`/`htu`, see src/shared/assertion.ts). `path` is Hono's `c.req.path`: the
 * exact string the router matches and the handlers' params come from, without the
 * query. The gateway forwards only canonical paths (safe ASCII, never a `%`), which
 * reach Hono unchanged, so a gateway-issued `htu` equals `c.req.path` exactly; an
 * `htu` without `%` can only equal a path whose segments (and so params) are its own.
 */
export function assertionMatchesRequest(claims: AssertionClaims, method: string, path: string): boolean {
  return claims.htm === method && claims.htu === path;
}

/** Middleware: 401 unless the request carries exactly one valid assertion issued for it; sets `claims`. */
export function requireAssertion(verifier: AssertionVerifier): MiddlewareHandler<TenantServiceEnv> {
  return async (c, next) => {
    // Two headers arrive joined with ", ", which is not a compact JWS: refused below.
    const token = c.req.header(ASSERTION_HEADER);
    if (token === undefined || token === '') {
      throw unauthorized('missing gateway assertion');
    }
    let claims: AssertionClaims;
    try {
      claims = await verifier.verify(token);
    } catch (err) {
      if (err instanceof AssertionError && err.kind === 'invalid') throw unauthorized(err.message);
      if (err instanceof AssertionError) {
        throw new Problem(503, 'assertion-keys-unavailable', 'Service Unavailable', {
          detail: 'the gateway assertion could not be checked right now',
          cause: err.cause,
        });
      }
      throw err;
    }
    // Checked on every request, cached verification or not: the cache is keyed by
    // token alone, and one token must not open any other method or path.
    if (!assertionMatchesRequest(claims, c.req.method, c.req.path)) {
      throw unauthorized('assertion was issued for another request');
    }
    c.set('claims', claims);
    await next();
  };
}

function unauthorized(detail: string) {
  return new Problem(401, 'invalid-assertion', 'Unauthorized', { detail });
}
