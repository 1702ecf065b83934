// Stage 2: who is calling. A Bearer JWT from the Authorization header only,
// verified with jose against the configured (or development) issuers; the result
// is `c.var.principal`.
//
// - One Authorization header: two lines (Node joins or drops duplicates, so the
//   raw lines are counted) → 400 invalid_request. Tokens in the query are refused
//   by the normalise stage (400 invalid_request).
// - The issuer is chosen by the token's unverified `iss`, among configured issuers
//   only; its key set, algorithms and audiences are then enforced by jwtVerify.
//   The token's `alg` is never trusted: `algorithms` is the issuer's allow-list
//   (asymmetric only; the config schema has no `none`/HS*), and key sets refuse
//   secret keys. `jku`, `x5u` and an embedded `jwk` header are never read: keys
//   come only from the issuer's configured JWKS.
// - `exp` is required; `iss`, `aud`, `exp`, `nbf` are checked with the clock tolerance;
//   `exp`, `nbf` and `iat` must be finite numbers. `sub` is required and must be a
//   non-empty string matching SUBJECT_ID. A refused token is never cached, so no
//   principal (and no assertion) is ever made from it.
// - `amr`, `acr` and `auth_time` (else `iat`) are kept on the principal for the edge
//   policies (./edge-policy.ts); `auth_time` must be a finite number like the time claims.
// - A token whose `client_id` claim equals its `sub` was issued to a client for itself
//   (client credentials, RFC 9068 §2.2): the principal then carries `clientId`, which
//   is what the AuthZEN API (./authzen.ts) accepts.
// - Remote JWKS: jose's createRemoteJWKSet caches the set (cacheMaxAge), refetches
//   on an unknown `kid` at most once per cooldown, and shares one in-flight fetch
//   between concurrent callers (single-flight; see its `reload`), so nothing is
//   added here. A key set that cannot be fetched is 503, not the client's fault.
// - A verified token is remembered by its SHA-256 until its `exp` (LRU), so the
//   hot path hashes and looks up instead of verifying a signature. No failure is
//   cached. The token itself is never logged or echoed.
import { hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Context, MiddlewareHandler } from 'hono';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import { SUBJECT_ID, type Config, type IssuerConfig } from '../config.js';
import { incomingOf, rawHeaderCount } from '../shared/node-incoming.js';
import { Problem } from '../shared/problem.js';
import { whenAtHand } from '../shared/at-hand.js';
import type { Principal } from '../authz/types.js';
import type { RequestEnv } from '../authz/types.js';

/** An issuer the gateway trusts, with its key set ready to use. */
export interface TrustedIssuer {
  issuer: string;
  audiences: string[];
  algorithms: string[];
  keys: JWTVerifyGetKey;
}

export interface JwksOptions {
  /** AUTH_JWKS_COOLDOWN_S */
  cooldownS: number;
  /** AUTH_JWKS_CACHE_MAX_AGE_S */
  cacheMaxAgeS: number;
}

/** Build the key set for one configured issuer (a remote JWKS URL or a local JWKS file, read once). */
export function trustIssuer(cfg: IssuerConfig, jwks: JwksOptions): TrustedIssuer {
  const keys =
    cfg.jwksUrl !== undefined
      ? createRemoteJWKSet(new URL(cfg.jwksUrl), { cooldownDuration: jwks.cooldownS * 1000, cacheMaxAge: jwks.cacheMaxAgeS * 1000 })
      : createLocalJWKSet(JSON.parse(readFileSync(cfg.jwksFile!, 'utf8')) as Parameters<typeof createLocalJWKSet>[0]);
  return { issuer: cfg.issuer, audiences: [...cfg.audiences], algorithms: [...cfg.algorithms], keys };
}

/** Every issuer of AUTH_ISSUERS, with key sets built once. */
export function configuredIssuers(config: Pick<Config, 'AUTH_ISSUERS' | 'AUTH_JWKS_COOLDOWN_S' | 'AUTH_JWKS_CACHE_MAX_AGE_S'>): TrustedIssuer[] {
  const jwks = { cooldownS: config.AUTH_JWKS_COOLDOWN_S, cacheMaxAgeS: config.AUTH_JWKS_CACHE_MAX_AGE_S };
  return config.AUTH_ISSUERS.map((cfg) => trustIssuer(cfg, jwks));
}

export interface VerifierOptions {
  issuers: readonly TrustedIssuer[];
  /** AUTH_CLOCK_TOLERANCE_S */
  clockToleranceS: number;
  /** AUTH_TOKEN_CACHE_MAX */
  tokenCacheMax: number;
  /** Clock in ms since the epoch; tests move it. */
  now?: () => number;
}

/** Why a token was refused: status 401 (the token) or 503 (we could not check it). */
export class AuthError extends Error {
  constructor(
    readonly status: 401 | 503,
    /** RFC 6750 error_description: fixed text, no quotes or backslashes. */
    readonly description: string,
    cause?: unknown,
  ) {
    super(description, cause === undefined ? undefined : { cause });
    this.name = 'AuthError';
  }
}

export interface TokenVerifier {
  /** The token's principal: at once when the token is cached, else a promise (rejected with an AuthError when refused). */
  verify(token: string): Principal | Promise<Principal>;
  /**
   * Tokens answered from the cache, verified (signature and claims checked now), or
   * refused or not checkable (tiergate_token_verifications_total).
   */
  readonly counts: { cached: number; verified: number; failed: number };
}

const HMAC = /^HS/;

/** A JWS compact serialisation: three base64url parts (the shape of every token accepted). */
const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function createTokenVerifier(opts: VerifierOptions): TokenVerifier {
  const now = opts.now ?? Date.now;
  const byIssuer = new Map<string, TrustedIssuer>();
  for (const i of opts.issuers) {
    if (byIssuer.has(i.issuer)) throw new Error(`issuer ${i.issuer} is configured twice`);
    if (i.algorithms.length === 0 || i.algorithms.some((a) => a === 'none' || HMAC.test(a))) {
      throw new Error(`issuer ${i.issuer}: algorithms must be a non-empty list of asymmetric algorithms`);
    }
    byIssuer.set(i.issuer, i);
  }
  // ttlResolution 0: no timer per clock read (see the decision cache's L1).
  const cache = new LRUCache<string, Principal>({ max: opts.tokenCacheMax, ttlResolution: 0 });

  async function verifyUncached(token: string): Promise<Principal> {
    // Checked here, not before the cache: a token found there was once verified, so it is
    // one, and the regex runs over the whole token.
    if (!JWS_COMPACT.test(token)) throw new AuthError(401, 'malformed token');
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      throw new AuthError(401, 'malformed token');
    }
    const issuer = typeof iss === 'string' ? byIssuer.get(iss) : undefined;
    if (issuer === undefined) throw new AuthError(401, 'untrusted issuer');
    let payload;
    try {
      ({ payload } = await jwtVerify(token, issuer.keys, {
        issuer: issuer.issuer,
        audience: issuer.audiences,
        algorithms: issuer.algorithms,
        clockTolerance: opts.clockToleranceS,
        requiredClaims: ['exp', 'sub'],
        currentDate: new Date(now()),
      }));
    } catch (err) {
      throw toAuthError(err);
    }
    return principalOf(payload, issuer.issuer);
  }

  const counts = { cached: 0, verified: 0, failed: 0 };
  return {
    counts,
    verify(token) {
      const key = hash('sha256', token, 'base64url');
      const nowMs = now();
      const cached = cache.get(key);
      // The LRU's TTL only evicts; this comparison is what keeps an expired token out.
      if (cached !== undefined && cached.expiresAt * 1000 > nowMs) {
        counts.cached++;
        return cached;
      }
      return verifyAndKeep(token, key, nowMs);
    },
  };

  async function verifyAndKeep(token: string, key: string, nowMs: number): Promise<Principal> {
    let principal: Principal;
    try {
      principal = await verifyUncached(token);
    } catch (err) {
      counts.failed++;
      throw err;
    }
    counts.verified++;
    const ttl = principal.expiresAt * 1000 - nowMs;
    if (ttl > 0) cache.set(key, principal, { ttl: Math.ceil(ttl) });
    return principal;
  }
}

/** The time claims jose checks the type of (a number) but not its finiteness. */
const TIME_CLAIMS = ['exp', 'nbf', 'iat', 'auth_time'] as const;

/**
 * What jose leaves to the caller: it checks `sub` is present but not that it is a
 * string (`["tom"]` would pass SUBJECT_ID as "tom"), and the time claims are numbers
 * but not that they are finite (`1e309` parses as Infinity, a token that never expires).
 */
function principalOf(payload: JWTPayload, issuer: string): Principal {
  for (const claim of TIME_CLAIMS) {
    const value = payload[claim];
    if (value !== undefined && !Number.isFinite(value)) throw new AuthError(401, `${claim} claim must be a finite number`);
  }
  const sub: unknown = payload.sub;
  if (typeof sub !== 'string') throw new AuthError(401, 'sub claim must be a string');
  if (sub === '') throw new AuthError(401, 'sub claim is empty');
  if (!SUBJECT_ID.test(sub)) throw new AuthError(401, 'subject not acceptable');
  const principal: Principal = { subject: `user:${sub}`, sub, issuer, expiresAt: payload.exp! };
  // A client-credentials token names the client as its own subject (RFC 9068 §2.2).
  if (payload.client_id === sub) principal.clientId = sub;
  // What the edge policies judge the sign-in by (./edge-policy.ts); a claim of another shape is left out.
  const { amr, acr, auth_time: authTime, iat } = payload;
  if (Array.isArray(amr) && amr.length <= 32 && amr.every((m) => typeof m === 'string')) principal.amr = amr as string[];
  if (typeof acr === 'string') principal.acr = acr;
  // A malformed auth_time was refused above (TIME_CLAIMS), never replaced by iat, which would make the sign-in look newer.
  if (typeof authTime === 'number') principal.authTime = authTime;
  else if (typeof iat === 'number') principal.authTime = iat;
  return principal;
}

/** jose's error → what the client is told. Only token faults are 401. */
function toAuthError(err: unknown): AuthError {
  if (err instanceof errors.JWTExpired) return new AuthError(401, 'token expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return new AuthError(401, `token has no ${claimName(err.claim)} claim`);
    // jose's only `invalid` reason: a time claim (exp, nbf, iat) that is not a number.
    if (err.reason === 'invalid') return new AuthError(401, `${claimName(err.claim)} claim must be a number`);
    if (err.claim === 'nbf') return new AuthError(401, 'token not yet valid');
    if (err.claim === 'aud') return new AuthError(401, 'audience not accepted');
    return new AuthError(401, `${claimName(err.claim)} claim not accepted`);
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return new AuthError(401, 'algorithm not allowed');
  if (err instanceof errors.JWSSignatureVerificationFailed) return new AuthError(401, 'signature invalid');
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return new AuthError(401, 'no trusted key for this token');
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid || err instanceof errors.JWKInvalid) return new AuthError(401, 'malformed token');
  // Key set unreachable, timed out or malformed: we cannot tell whether the token is good.
  return new AuthError(503, 'issuer keys unavailable', err);
}

function claimName(claim: string): string {
  return /^[a-z]{1,16}$/.test(claim) ? claim : 'a required';
}

// RFC 6750: the scheme, one or more spaces, the token. The scheme alone (no space) is
// Bearer credentials without a token: malformed, not absent.
const BEARER_SCHEME = /^bearer(?: +|$)/i;

export function authenticate(verifier: TokenVerifier): MiddlewareHandler<RequestEnv> {
  // Not async: a cached token's principal is at hand, and the stage hands on at once.
  return (c, next) => {
    const incoming = incomingOf(c);
    if (incoming !== undefined && rawHeaderCount(incoming.rawHeaders, 'authorization') > 1) {
      throw new Problem(400, 'invalid-request', 'More than one Authorization header', {
        detail: 'send exactly one Authorization header',
        headers: { 'www-authenticate': 'Bearer error="invalid_request", error_description="more than one Authorization header"' },
      });
    }
    // Node's parsed headers when there are any (Hono's c.req.header builds a Headers view first);
    // more than one Authorization line was refused just above.
    const header = incoming !== undefined ? incoming.headers.authorization : c.req.header('authorization');
    const scheme = header === undefined ? null : BEARER_SCHEME.exec(header);
    if (scheme === null) {
      // No Bearer credentials at all: a bare challenge, no error code (RFC 6750 §3.1).
      throw new Problem(401, 'unauthenticated', 'Authentication required', {
        detail: 'send a Bearer token in the Authorization header',
        headers: { 'www-authenticate': 'Bearer' },
      });
    }
    const token = scheme.input.slice(scheme[0].length);
    return whenAtHand(
      () => {
        if (token === '') throw new AuthError(401, 'malformed token');
        return verifier.verify(token);
      },
      (principal) => {
        c.set('principal', principal);
        return next();
      },
      (err) => {
        throw refused(c, err);
      },
    );
  };
}

/** A refused or uncheckable token as the problem the client gets; any other error as it is. */
function refused(c: Context<RequestEnv>, err: unknown): unknown {
  if (!(err instanceof AuthError)) return err;
  if (err.status === 503) {
    c.get('log')?.warn({ reason: err.description, cause: String(err.cause) }, 'token issuer keys unavailable');
    return new Problem(503, 'issuer-unavailable', 'Token issuer keys unavailable', {
      detail: 'the token could not be checked: the issuer key set is unreachable; retry later',
    });
  }
  c.get('log')?.debug({ reason: err.description }, 'token refused');
  return new Problem(401, 'invalid-token', 'Invalid token', {
    detail: err.description,
    headers: { 'www-authenticate': `Bearer error="invalid_token", error_description="${err.description}"` },
  });
}
