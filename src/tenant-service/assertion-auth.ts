// Verifies the gateway's assertion: the only thing this service believes about who
// is calling and which tenants the call may touch. Client identity headers
// (X-User-Id, X-Tenant-Id, …) are never read anywhere in the service.
import { createHash } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { errors, jwtVerify, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import { LRUCache } from 'lru-cache';
import type { MiddlewareHandler } from 'hono';
import {
  ASSERTION_ALG,
  ASSERTION_HEADER,
  ASSERTION_ISSUER,
  assertionClaimsSchema,
  type AssertionClaims,
} from '../shared/assertion.js';
import { httpProblem, type TenantServiceEnv } from './http.js';

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
  const verifyOptions: JWTVerifyOptions = {
    algorithms: [ASSERTION_ALG], // never what the token asks for, never HMAC or none
    issuer: ASSERTION_ISSUER,
    audience: opts.audience,
    requiredClaims: ['exp', 'iat', 'sub'],
    clockTolerance: clockToleranceSec,
  };
  const cache = new LRUCache<string, CachedAssertion>({ max: opts.cacheMax ?? 10_000 });
  const key = opts.verifyKey;

  async function verifySignature(token: string): Promise<unknown> {
    try {
      const { payload } =
        typeof key === 'function' ? await jwtVerify(token, key, verifyOptions) : await jwtVerify(token, key, verifyOptions);
      return payload;
    } catch (err) {
      // A key set we cannot fetch is our outage, not the caller's bad token.
      if (err instanceof errors.JWKSTimeout || !(err instanceof errors.JOSEError)) {
        throw new AssertionError('unavailable', 'assertion keys unavailable', { cause: err });
      }
      throw new AssertionError('invalid', describeJoseError(err), { cause: err });
    }
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

function describeJoseError(err: errors.JOSEError): string {
  if (err instanceof errors.JWTExpired) return 'assertion expired';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'assertion algorithm not allowed';
  if (err instanceof errors.JWTClaimValidationFailed) return `assertion claim "${err.claim}" rejected`;
  if (err instanceof errors.JWSSignatureVerificationFailed || err instanceof errors.JWKSNoMatchingKey) {
    return 'assertion signature not from the gateway';
  }
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
        throw httpProblem(503, 'assertion-keys-unavailable', 'Service Unavailable', {
          detail: 'the gateway assertion could not be checked right now',
        }, { cause: err.cause });
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
  return httpProblem(401, 'invalid-assertion', 'Unauthorized', { detail });
}
