// The development issuer as a small OpenID Connect provider, so the console signs in
// the same way in development as against a real identity provider: metadata
// discovery, an authorization page listing the demo users, and a token endpoint
// for the authorization code flow with PKCE (S256 only, public client, no secret).
// Mounted at DEV_OIDC_PATH only when the dev issuer is trusted (never in production).
//
//   GET  /dev-issuer/.well-known/openid-configuration   metadata (RFC 8414 / OIDC Discovery)
//   GET  /dev-issuer/authorize                          the page: pick a user
//   POST /dev-issuer/authorize                          one-time code → 303 to the redirect URI
//   POST /dev-issuer/token                              code + code_verifier → access token
//
// Codes live in this process's memory for CODE_TTL_S, are single-use and bound to the
// client, the redirect URI and the PKCE challenge. The access token is the same kind
// `npm run token` mints, with `amr: ["pwd","mfa"]` and `auth_time`.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { SUBJECT_ID } from '../config.js';
import { Problem } from '../shared/problem.js';
import { DEV_ISSUER_JWKS_PATH, mintDevToken, type DevIssuerKeys } from './dev-issuer.js';

export const DEV_OIDC_PATH = '/dev-issuer';
/** The console's client id at the dev issuer. */
export const DEV_CONSOLE_CLIENT_ID = 'tiergate-console';
const CODE_TTL_S = 60;
const TOKEN_TTL_S = 3600;
const MAX_PENDING_CODES = 1000;
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
const VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;
const STATE = /^[\x21-\x7e]{1,512}$/;

export interface DevOidcOptions {
  keys: DevIssuerKeys;
  audience: string;
  /** Users offered on the authorization page (any valid id may still be typed). */
  users: () => readonly string[];
  /** Redirect URIs must be on the request's origin under this path (default /console/). */
  redirectPathPrefix?: string;
  now?: () => number;
}

interface PendingCode {
  sub: string;
  clientId: string;
  redirectUri: string;
  challenge: string;
  authTime: number;
  expires: number;
}

interface AuthorizeParams {
  clientId: string;
  redirectUri: string;
  challenge: string;
  state: string | undefined;
}

/** The issuer identifier the metadata names: this origin plus the mount path. */
function issuerOf(c: Context): string {
  return `${new URL(c.req.url).origin}${DEV_OIDC_PATH}`;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

function badRequest(detail: string, name: string): Problem {
  return new Problem(400, 'invalid-request', 'Invalid authorization request', { detail, 'invalid-params': [{ name, reason: detail }] });
}

/** An OAuth 2.0 error response (RFC 6749 §5.2), the format token clients parse. */
function tokenError(c: Context, error: string, description: string): Response {
  return c.json({ error, error_description: description }, 400, { 'cache-control': 'no-store' });
}

const PAGE_STYLE =
  'body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}' +
  'button{font:inherit;display:block;width:100%;margin:.4rem 0;padding:.6rem;border:1px solid #1d4ed8;border-radius:6px;background:#fff;color:#1d4ed8;cursor:pointer;text-align:left}' +
  'button:hover,button:focus-visible{background:#1d4ed8;color:#fff;outline:3px solid #93c5fd}' +
  'input{font:inherit;padding:.5rem;width:100%;box-sizing:border-box;margin:.3rem 0}label{font-weight:600}';
const PAGE_STYLE_HASH = createHash('sha256').update(PAGE_STYLE).digest('base64');
const PAGE_CSP = `default-src 'none'; style-src 'sha256-${PAGE_STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

export function devOidcApp(opts: DevOidcOptions): Hono {
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  const prefix = opts.redirectPathPrefix ?? '/console/';
  const codes = new Map<string, PendingCode>();
  const app = new Hono();

  const sweep = () => {
    const t = now();
    for (const [code, p] of codes) if (p.expires <= t) codes.delete(code);
  };

  /** The authorization request's parameters, checked; a bad one is a problem+json 400 (never a redirect). */
  function authorizeParams(c: Context, get: (name: string) => string | undefined): AuthorizeParams {
    if (get('response_type') !== 'code') throw badRequest('response_type must be code', 'query.response_type');
    const clientId = get('client_id');
    if (clientId !== DEV_CONSOLE_CLIENT_ID) throw badRequest(`client_id must be ${DEV_CONSOLE_CLIENT_ID}`, 'query.client_id');
    const redirectUri = get('redirect_uri') ?? '';
    let target: URL;
    try {
      target = new URL(redirectUri);
    } catch {
      throw badRequest('redirect_uri must be an absolute URL', 'query.redirect_uri');
    }
    if (target.origin !== new URL(c.req.url).origin || !target.pathname.startsWith(prefix) || target.hash !== '' || target.search !== '') {
      throw badRequest(`redirect_uri must be on this origin under ${prefix}, without query or fragment`, 'query.redirect_uri');
    }
    if (get('code_challenge_method') !== 'S256') throw badRequest('code_challenge_method must be S256', 'query.code_challenge_method');
    const challenge = get('code_challenge') ?? '';
    if (!CHALLENGE.test(challenge)) throw badRequest('code_challenge must be a base64url SHA-256 (43 characters)', 'query.code_challenge');
    const state = get('state');
    if (state !== undefined && !STATE.test(state)) throw badRequest('state must be 1-512 visible ASCII characters', 'query.state');
    return { clientId, redirectUri, challenge, state };
  }

  app.get('/.well-known/openid-configuration', (c) => {
    const issuer = issuerOf(c);
    return c.json(
      {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${new URL(c.req.url).origin}${DEV_ISSUER_JWKS_PATH}`,
        response_types_supported: ['code'],
        grant_types_supported: ['authorization_code'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['none'],
        authorization_response_iss_parameter_supported: true,
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['EdDSA'],
        scopes_supported: ['tiergate'],
      },
      200,
      { 'cache-control': 'no-store' },
    );
  });

  app.get('/authorize', (c) => {
    const p = authorizeParams(c, (n) => c.req.query(n));
    const hidden = (name: string, value: string | undefined) =>
      value === undefined ? '' : `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;
    const fields = [
      hidden('response_type', 'code'),
      hidden('client_id', p.clientId),
      hidden('redirect_uri', p.redirectUri),
      hidden('code_challenge', p.challenge),
      hidden('code_challenge_method', 'S256'),
      hidden('state', p.state),
    ].join('');
    const users = opts.users().filter((u) => SUBJECT_ID.test(u));
    const buttons = users.map((u) => `<button type="submit" name="user" value="${escapeHtml(u)}">${escapeHtml(u)}</button>`).join('');
    const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Sign in — tiergate development issuer</title><style>${PAGE_STYLE}</style></head><body><main>
<h1>Sign in</h1><p>Development issuer: choose who you are. The token says you signed in with a password and a second factor.</p>
<form method="post" action="${DEV_OIDC_PATH}/authorize">${fields}<nav aria-label="Demo users">${buttons}</nav></form>
<form method="post" action="${DEV_OIDC_PATH}/authorize">${fields}<label for="other">Another user id</label>
<input id="other" name="user" required pattern="[A-Za-z0-9][A-Za-z0-9_@.\\|\\-]{0,127}" autocomplete="username"><button type="submit">Sign in</button></form>
</main></body></html>`;
    return c.html(html, 200, { 'content-security-policy': PAGE_CSP, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY' });
  });

  app.post('/authorize', async (c) => {
    const form = await c.req.parseBody();
    const get = (n: string) => (typeof form[n] === 'string' ? form[n] : undefined);
    const p = authorizeParams(c, get);
    const sub = get('user') ?? '';
    if (!SUBJECT_ID.test(sub)) throw badRequest(`user must match ${SUBJECT_ID.source}`, 'body.user');
    sweep();
    if (codes.size >= MAX_PENDING_CODES) throw new Problem(503, 'not-ready', 'Too many pending sign-ins', { detail: 'try again in a minute' });
    const code = randomBytes(32).toString('base64url');
    const t = now();
    codes.set(code, { sub, clientId: p.clientId, redirectUri: p.redirectUri, challenge: p.challenge, authTime: t, expires: t + CODE_TTL_S });
    const target = new URL(p.redirectUri);
    target.searchParams.set('code', code);
    if (p.state !== undefined) target.searchParams.set('state', p.state);
    target.searchParams.set('iss', issuerOf(c));
    return c.redirect(target.href, 303);
  });

  app.post('/token', async (c) => {
    const form = await c.req.parseBody();
    const get = (n: string) => (typeof form[n] === 'string' ? form[n] : undefined);
    if (get('grant_type') !== 'authorization_code') return tokenError(c, 'unsupported_grant_type', 'only authorization_code is supported');
    const code = get('code') ?? '';
    const pending = codes.get(code);
    // Single use: gone whatever the outcome.
    codes.delete(code);
    if (pending === undefined || pending.expires <= now()) return tokenError(c, 'invalid_grant', 'unknown, used or expired code');
    if (get('client_id') !== pending.clientId) return tokenError(c, 'invalid_grant', 'the code was issued to another client');
    if (get('redirect_uri') !== pending.redirectUri) return tokenError(c, 'invalid_grant', 'redirect_uri differs from the authorization request');
    const verifier = get('code_verifier') ?? '';
    if (!VERIFIER.test(verifier)) return tokenError(c, 'invalid_grant', 'code_verifier must be 43-128 unreserved characters');
    const computed = Buffer.from(createHash('sha256').update(verifier).digest('base64url'));
    const expected = Buffer.from(pending.challenge);
    if (computed.length !== expected.length || !timingSafeEqual(computed, expected)) return tokenError(c, 'invalid_grant', 'code_verifier does not match');
    const accessToken = await mintDevToken(opts.keys, {
      sub: pending.sub,
      audience: opts.audience,
      ttlS: TOKEN_TTL_S,
      mfa: true,
      authTime: pending.authTime,
      now: now(),
    });
    return c.json({ access_token: accessToken, token_type: 'Bearer', expires_in: TOKEN_TTL_S, scope: 'tiergate' }, 200, {
      'cache-control': 'no-store',
      pragma: 'no-cache',
    });
  });

  // Problems thrown here are rendered by the gateway's one error handler.
  return app;
}
