// The development issuer: when no issuer is configured (and not in production),
// the gateway trusts a local Ed25519 key it creates on first run. The gateway and
// `npm run token` share the same files and the same code path:
//   ${TIERGATE_DATA_DIR}/dev-issuer/private.jwk.json  (mode 0600, never served)
//   ${TIERGATE_DATA_DIR}/dev-issuer/jwks.json         (public key set)
// The folder holds its own `.gitignore` (`*`), so it stays out of git wherever
// TIERGATE_DATA_DIR points.
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Handler } from 'hono';
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import { SUBJECT_ID, type Config } from '../config.js';
import { ensurePrivateDir } from '../shared/private-dir.js';
import { configuredIssuers, type TrustedIssuer } from './authenticate.js';

export const DEV_ISSUER = 'tiergate-dev';
export const DEV_ISSUER_ALG = 'EdDSA';
/** Where the lead mounts `devIssuerJwksHandler`. */
export const DEV_ISSUER_JWKS_PATH = '/.well-known/dev-issuer/jwks.json';
const MAX_TTL_S = 30 * 24 * 3600;

export interface DevIssuerKeys {
  dir: string;
  kid: string;
  privateKey: CryptoKey;
  /** Public key set, as served and trusted. */
  jwks: { keys: JWK[] };
}

/** The dev issuer is used only when nothing else is trusted, it is enabled, and this is not production. */
export function devIssuerEnabled(config: Pick<Config, 'AUTH_ISSUERS' | 'DEV_ISSUER' | 'NODE_ENV'>): boolean {
  return config.AUTH_ISSUERS.length === 0 && config.DEV_ISSUER && config.NODE_ENV !== 'production';
}

export function devIssuerDir(dataDir: string): string {
  return resolve(dataDir, 'dev-issuer');
}

/**
 * Load the dev signing key, creating it on first use. Safe against a concurrent
 * first run (gateway and CLI): the key file is published with link(2), which
 * fails if another process got there first, and then that key is used.
 */
export async function loadOrCreateDevIssuerKeys(dataDir: string): Promise<DevIssuerKeys> {
  const dir = devIssuerDir(dataDir);
  const privateFile = join(dir, 'private.jwk.json');
  ensurePrivateDir(dir);
  if (!existsSync(join(dir, '.gitignore'))) writeFileSync(join(dir, '.gitignore'), '*\n');
  if (!existsSync(privateFile)) {
    const { privateKey } = await generateKeyPair(DEV_ISSUER_ALG, { crv: 'Ed25519', extractable: true });
    const jwk = await exportJWK(privateKey);
    const tmp = `${privateFile}.${process.pid}.${randomUUID()}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(jwk)}\n`, { mode: 0o600 });
    try {
      linkSync(tmp, privateFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkSync(tmp);
    }
  }
  if (process.platform !== 'win32' && (statSync(privateFile).mode & 0o077) !== 0) {
    throw new Error(`${privateFile} is readable by other users; run: chmod 600 ${privateFile}`);
  }
  const privateJwk = JSON.parse(readFileSync(privateFile, 'utf8')) as JWK;
  if (privateJwk.kty !== 'OKP' || privateJwk.crv !== 'Ed25519' || typeof privateJwk.d !== 'string') {
    throw new Error(`${privateFile} is not an Ed25519 private JWK; delete it to create a new key`);
  }
  const { d: _secret, ...publicPart } = privateJwk;
  const kid = await calculateJwkThumbprint(publicPart);
  const jwks = { keys: [{ kty: 'OKP', crv: 'Ed25519', x: publicPart.x, kid, alg: DEV_ISSUER_ALG, use: 'sig' }] };
  const jwksFile = join(dir, 'jwks.json');
  const jwksText = `${JSON.stringify(jwks, null, 2)}\n`;
  if (!existsSync(jwksFile) || readFileSync(jwksFile, 'utf8') !== jwksText) {
    writeFileSync(jwksFile, jwksText);
    chmodSync(jwksFile, 0o644);
  }
  const privateKey = (await importJWK(privateJwk, DEV_ISSUER_ALG)) as CryptoKey;
  return { dir, kid, privateKey, jwks };
}

/** The trust entry for the dev issuer: a local key set, EdDSA only. */
export function devIssuerTrust(keys: DevIssuerKeys, audience: string): TrustedIssuer {
  return { issuer: DEV_ISSUER, audiences: [audience], algorithms: [DEV_ISSUER_ALG], keys: createLocalJWKSet(keys.jwks) };
}

/** Serves the dev issuer's public key set (mount at DEV_ISSUER_JWKS_PATH). */
export function devIssuerJwksHandler(keys: DevIssuerKeys): Handler {
  const body = JSON.stringify(keys.jwks);
  return () => new Response(body, { headers: { 'content-type': 'application/jwk-set+json', 'cache-control': 'public, max-age=300' } });
}

/**
 * What the gateway trusts: AUTH_ISSUERS when set; otherwise the dev issuer when
 * enabled (its keys are returned so the JWKS can be served); otherwise an error.
 */
export async function resolveTrustedIssuers(
  config: Pick<Config, 'AUTH_ISSUERS' | 'AUTH_JWKS_COOLDOWN_S' | 'AUTH_JWKS_CACHE_MAX_AGE_S' | 'DEV_ISSUER' | 'DEV_ISSUER_AUDIENCE' | 'NODE_ENV' | 'TIERGATE_DATA_DIR'>,
): Promise<{ issuers: TrustedIssuer[]; devIssuer?: DevIssuerKeys }> {
  if (config.AUTH_ISSUERS.length > 0) return { issuers: configuredIssuers(config) };
  if (!devIssuerEnabled(config)) {
    throw new Error('no token issuer is trusted: set AUTH_ISSUERS, or DEV_ISSUER=true outside production');
  }
  const devIssuer = await loadOrCreateDevIssuerKeys(config.TIERGATE_DATA_DIR);
  return { issuers: [devIssuerTrust(devIssuer, config.DEV_ISSUER_AUDIENCE)], devIssuer };
}

export interface MintOptions {
  sub: string;
  audience: string;
  ttlS: number;
  /** Seconds since the epoch. */
  now?: number;
  /** A client-credentials token: `client_id` equals `sub` (what the AuthZEN API accepts). */
  client?: boolean;
  /** Authentication methods (`amr`, RFC 8176), e.g. ["pwd", "mfa"]. */
  amr?: readonly string[];
  /** When the user authenticated (`auth_time`, seconds since the epoch). */
  authTime?: number;
}

export async function mintDevToken(keys: DevIssuerKeys, opts: MintOptions): Promise<string> {
  if (!SUBJECT_ID.test(opts.sub)) throw new Error(`invalid subject ${JSON.stringify(opts.sub)}: must match ${SUBJECT_ID}`);
  if (!Number.isInteger(opts.ttlS) || opts.ttlS <= 0 || opts.ttlS > MAX_TTL_S) throw new Error(`ttl must be between 1s and ${MAX_TTL_S}s`);
  const iat = opts.now ?? Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = opts.client === true ? { client_id: opts.sub } : {};
  if (opts.amr !== undefined) claims.amr = [...opts.amr];
  if (opts.authTime !== undefined) claims.auth_time = opts.authTime;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: DEV_ISSUER_ALG, kid: keys.kid, typ: 'JWT' })
    .setIssuer(DEV_ISSUER)
    .setAudience(opts.audience)
    .setSubject(opts.sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + opts.ttlS)
    .sign(keys.privateKey);
}

/** `90`, `90s`, `15m`, `1h`, `7d` → seconds; undefined when not a valid ttl (1s … 30d). */
export function parseTtl(text: string): number | undefined {
  const m = /^(\d{1,7})([smhd]?)$/.exec(text);
  if (m === null) return undefined;
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(m[1]) * unit;
  return seconds > 0 && seconds <= MAX_TTL_S ? seconds : undefined;
}
