// The development issuer's sign-in endpoints: discovery, the authorization page and
// its checks, and the code + PKCE exchange (single use, bound, expiring).
import { createHash } from 'node:crypto';
import { Hono } from 'hono';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEV_ISSUER, loadOrCreateDevIssuerKeys, type DevIssuerKeys } from '../../../src/gateway/dev-issuer.js';
import { DEV_CONSOLE_CLIENT_ID, devOidcApp } from '../../../src/gateway/dev-issuer-oidc.js';
import { renderGatewayError } from '../../../src/gateway/app.js';
import type { GatewayEnv } from '../../../src/gateway/types.js';
import { tempDir, useCleanup } from '../../support/cleanup.js';

useCleanup();

const ORIGIN = 'http://127.0.0.1:8080';
const REDIRECT = `${ORIGIN}/console/callback`;
const VERIFIER = 'a'.repeat(20) + 'B'.repeat(20) + '-._~0123';
const CHALLENGE = createHash('sha256').update(VERIFIER).digest('base64url');

let keys: DevIssuerKeys;
let clock = 1_800_000_000;
let app: Hono<GatewayEnv>;

beforeAll(async () => {
  keys = await loadOrCreateDevIssuerKeys(tempDir('tiergate-oidc-'));
  app = new Hono<GatewayEnv>();
  app.route('/dev-issuer', devOidcApp({ keys, audience: 'tiergate', users: () => ['olivia', 'dana', '<script>'], now: () => clock }));
  app.onError(renderGatewayError);
});

const authorizeQuery = (over: Record<string, string | undefined> = {}) => {
  const base: Record<string, string | undefined> = {
    response_type: 'code',
    client_id: DEV_CONSOLE_CLIENT_ID,
    redirect_uri: REDIRECT,
    code_challenge: CHALLENGE,
    code_challenge_method: 'S256',
    state: 'st-1',
    ...over,
  };
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(base)) if (v !== undefined) p.set(k, v);
  return p;
};

async function code(user = 'dana', over: Record<string, string | undefined> = {}): Promise<URL> {
  const form = authorizeQuery(over);
  form.set('user', user);
  const res = await app.request(`${ORIGIN}/dev-issuer/authorize`, { method: 'POST', body: form });
  expect(res.status).toBe(303);
  return new URL(res.headers.get('location')!);
}

function exchange(c: string, over: Record<string, string> = {}) {
  const form = new URLSearchParams({ grant_type: 'authorization_code', code: c, redirect_uri: REDIRECT, client_id: DEV_CONSOLE_CLIENT_ID, code_verifier: VERIFIER, ...over });
  return app.request(`${ORIGIN}/dev-issuer/token`, { method: 'POST', body: form });
}

describe('the development issuer as an OIDC provider', () => {
  it('publishes discovery metadata naming this origin, code + S256 only, public clients', async () => {
    const res = await app.request(`${ORIGIN}/dev-issuer/.well-known/openid-configuration`);
    expect(await res.json()).toMatchObject({
      issuer: `${ORIGIN}/dev-issuer`,
      authorization_endpoint: `${ORIGIN}/dev-issuer/authorize`,
      token_endpoint: `${ORIGIN}/dev-issuer/token`,
      jwks_uri: `${ORIGIN}/.well-known/dev-issuer/jwks.json`,
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['none'],
    });
  });

  it('shows the valid user ids as buttons, under a CSP that allows no script', async () => {
    const res = await app.request(`${ORIGIN}/dev-issuer/authorize?${authorizeQuery().toString()}`);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('value="olivia"');
    expect(html).not.toMatch(/<script|&#60;script/);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('script-src');
  });

  it.each([
    ['response_type', { response_type: 'token' }],
    ['client_id', { client_id: 'someone-else' }],
    ['redirect_uri', { redirect_uri: 'https://evil.example/console/callback' }],
    ['redirect_uri', { redirect_uri: `${ORIGIN}/admin/v1/callback` }],
    ['redirect_uri', { redirect_uri: `${REDIRECT}?next=x` }],
    ['code_challenge_method', { code_challenge_method: 'plain' }],
    ['code_challenge_method', { code_challenge_method: undefined }],
    ['code_challenge', { code_challenge: 'short' }],
  ])('refuses a bad %s with a problem, never a redirect', async (name, over) => {
    const res = await app.request(`${ORIGIN}/dev-issuer/authorize?${authorizeQuery(over).toString()}`);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    const body = (await res.json()) as { 'invalid-params': { name: string }[] };
    expect(body['invalid-params'][0]!.name).toBe(`query.${name}`);
  });

  it('redirects back with a code, the state and the issuer, then exchanges it once for a token with amr and auth_time', async () => {
    const back = await code('dana');
    expect(back.origin + back.pathname).toBe(REDIRECT);
    expect(back.searchParams.get('state')).toBe('st-1');
    expect(back.searchParams.get('iss')).toBe(`${ORIGIN}/dev-issuer`);
    const c = back.searchParams.get('code')!;
    expect(c).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const res = await exchange(c);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as { access_token: string; token_type: string; expires_in: number };
    expect(body.token_type).toBe('Bearer');
    const { payload } = await jwtVerify(body.access_token, createLocalJWKSet(keys.jwks), { issuer: DEV_ISSUER, audience: 'tiergate', currentDate: new Date(clock * 1000) });
    expect(payload).toMatchObject({ sub: 'dana', amr: ['pwd', 'mfa'], auth_time: clock, exp: clock + 3600 });

    const again = await exchange(c);
    expect(again.status).toBe(400);
    expect(await again.json()).toMatchObject({ error: 'invalid_grant' });
  });

  it.each([
    ['a wrong verifier', { code_verifier: 'x'.repeat(43) }],
    ['another redirect URI', { redirect_uri: `${ORIGIN}/console/other` }],
    ['another client', { client_id: 'other' }],
  ])('refuses a code with %s, and the code is spent', async (_what, over) => {
    const c = (await code()).searchParams.get('code')!;
    const res = await exchange(c, over);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_grant' });
    expect((await exchange(c)).status).toBe(400);
  });

  it('refuses a code after 60 s, another grant type, and a bad user id', async () => {
    const c = (await code()).searchParams.get('code')!;
    clock += 61;
    expect(await (await exchange(c)).json()).toMatchObject({ error: 'invalid_grant' });
    expect(await (await exchange('x', { grant_type: 'client_credentials' })).json()).toMatchObject({ error: 'unsupported_grant_type' });
    const form = authorizeQuery();
    form.set('user', 'no spaces');
    expect((await app.request(`${ORIGIN}/dev-issuer/authorize`, { method: 'POST', body: form })).status).toBe(400);
  });
});
