import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Hono } from 'hono';
import { CompactSign, decodeJwt, decodeProtectedHeader } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseTokenArgs, runTokenCli } from '../../../src/cli/token.js';
import { authenticate, createTokenVerifier } from '../../../src/gateway/authenticate.js';
import {
  DEV_ISSUER,
  DEV_ISSUER_JWKS_PATH,
  devIssuerEnabled,
  devIssuerJwksHandler,
  devIssuerTrust,
  loadOrCreateDevIssuerKeys,
  mintDevToken,
  parseTtl,
  resolveTrustedIssuers,
  type DevIssuerKeys,
} from '../../../src/gateway/dev-issuer.js';
import type { GatewayEnv } from '../../../src/gateway/types.js';
import { renderGatewayError } from '../../../src/gateway/app.js';

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const freshDir = () => mkdtempSync(join(tmpdir(), 'tiergate-dev-'));

function gateway(keys: DevIssuerKeys, audience = 'tiergate'): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.onError(renderGatewayError);
  app.get(DEV_ISSUER_JWKS_PATH, devIssuerJwksHandler(keys));
  app.use('/api/*', authenticate(createTokenVerifier({ issuers: [devIssuerTrust(keys, audience)], clockToleranceS: 0, tokenCacheMax: 10 })));
  app.get('/api/*', (c) => c.json(c.var.principal));
  return app;
}

describe('dev issuer keys', () => {
  let dataDir: string;
  let keys: DevIssuerKeys;
  beforeAll(async () => {
    dataDir = freshDir();
    keys = await loadOrCreateDevIssuerKeys(dataDir);
  });

  it('creates a private JWK (0600), a public JWKS and a .gitignore on first run', () => {
    const dir = join(dataDir, 'dev-issuer');
    expect(statSync(join(dir, 'private.jwk.json')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, '.gitignore'), 'utf8')).toBe('*\n');
    const jwks = JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8'));
    expect(jwks).toEqual(keys.jwks);
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid: keys.kid });
    expect(jwks.keys[0].d).toBeUndefined();
  });

  it('reuses the same key on the next run, and concurrent first runs agree on one key', async () => {
    expect((await loadOrCreateDevIssuerKeys(dataDir)).kid).toBe(keys.kid);
    const other = freshDir();
    const both = await Promise.all([loadOrCreateDevIssuerKeys(other), loadOrCreateDevIssuerKeys(other), loadOrCreateDevIssuerKeys(other)]);
    expect(new Set(both.map((k) => k.kid)).size).toBe(1);
    expect(existsSync(join(other, 'dev-issuer', 'private.jwk.json'))).toBe(true);
  });

  it('a minted token passes the authenticate stage', async () => {
    const token = await mintDevToken(keys, { sub: 'alice', audience: 'tiergate', ttlS: 600 });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', kid: keys.kid, typ: 'JWT' });
    const res = await gateway(keys).request('/api/v1/x', { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ subject: 'user:alice', sub: 'alice', issuer: DEV_ISSUER });
  });

  it('a client token (--client) authenticates as that client; a user token does not', async () => {
    const client = await mintDevToken(keys, { sub: 'demo-pep', audience: 'tiergate', ttlS: 600, client: true });
    const user = await mintDevToken(keys, { sub: 'demo-pep', audience: 'tiergate', ttlS: 600 });
    const asClient = await gateway(keys).request('/api/v1/x', { headers: { authorization: `Bearer ${client}` } });
    const asUser = await gateway(keys).request('/api/v1/x', { headers: { authorization: `Bearer ${user}` } });
    expect(((await asClient.json()) as { clientId?: string }).clientId).toBe('demo-pep');
    expect(((await asUser.json()) as { clientId?: string }).clientId).toBeUndefined();
  });

  it('a user token shows a multi-factor sign-in (amr, auth_time) unless minted with mfa: false; the principal keeps them', async () => {
    const now = Math.floor(Date.now() / 1000);
    const mfa = await mintDevToken(keys, { sub: 'alice', audience: 'tiergate', ttlS: 600, now });
    const pwd = await mintDevToken(keys, { sub: 'alice', audience: 'tiergate', ttlS: 600, now, mfa: false, authTime: now - 100 });
    const seen = async (t: string) => (await (await gateway(keys).request('/api/v1/x', { headers: { authorization: `Bearer ${t}` } })).json()) as Record<string, unknown>;
    expect(await seen(mfa)).toMatchObject({ amr: ['pwd', 'mfa'], authTime: now });
    expect(await seen(pwd)).toMatchObject({ amr: ['pwd'], authTime: now - 100 });
    expect(parseTokenArgs(['--no-mfa', 'alice'])).toEqual({ sub: 'alice', ttlS: 3600, noMfa: true });
  });

  it('a token whose auth_time is not a number is refused', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const claims = `{"iss":"${DEV_ISSUER}","aud":"tiergate","sub":"alice","exp":${exp},"auth_time":"yesterday"}`;
    const token = await new CompactSign(new TextEncoder().encode(claims)).setProtectedHeader({ alg: 'EdDSA', kid: keys.kid }).sign(keys.privateKey);
    const res = await gateway(keys).request('/api/v1/x', { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token", error_description="auth_time claim must be a finite number"');
  });

  it('a token for another audience is refused', async () => {
    const token = await mintDevToken(keys, { sub: 'alice', audience: 'elsewhere', ttlS: 600 });
    const res = await gateway(keys).request('/api/v1/x', { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
  });

  it('a token signed with the dev key whose sub is not a string, or whose exp is not finite, is refused', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const app = gateway(keys);
    for (const [claims, description] of [
      [`{"iss":"${DEV_ISSUER}","aud":"tiergate","sub":["alice"],"exp":${exp}}`, 'sub claim must be a string'],
      [`{"iss":"${DEV_ISSUER}","aud":"tiergate","sub":42,"exp":${exp}}`, 'sub claim must be a string'],
      [`{"iss":"${DEV_ISSUER}","aud":"tiergate","sub":"alice","exp":1e309}`, 'exp claim must be a finite number'],
    ] as const) {
      const token = await new CompactSign(new TextEncoder().encode(claims)).setProtectedHeader({ alg: 'EdDSA', kid: keys.kid }).sign(keys.privateKey);
      const res = await app.request('/api/v1/x', { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe(`Bearer error="invalid_token", error_description="${description}"`);
    }
  });

  it('refuses to mint for an unsafe subject or ttl', async () => {
    await expect(mintDevToken(keys, { sub: 'a b', audience: 'tiergate', ttlS: 60 })).rejects.toThrow(/invalid subject/);
    await expect(mintDevToken(keys, { sub: 'alice', audience: 'tiergate', ttlS: 0 })).rejects.toThrow(/ttl/);
  });

  it('serves the public key set', async () => {
    const res = await gateway(keys).request(DEV_ISSUER_JWKS_PATH);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/jwk-set+json');
    expect(await res.json()).toEqual(keys.jwks);
  });

  it('refuses a private key file others can read', async () => {
    const dir = freshDir();
    await loadOrCreateDevIssuerKeys(dir);
    const { chmodSync } = await import('node:fs');
    chmodSync(join(dir, 'dev-issuer', 'private.jwk.json'), 0o644);
    await expect(loadOrCreateDevIssuerKeys(dir)).rejects.toThrow(/readable by other users/);
  });
});

describe('which issuers are trusted', () => {
  const base = { AUTH_ISSUERS: [], DEV_ISSUER: true, NODE_ENV: 'development' as const, AUTH_JWKS_COOLDOWN_S: 30, AUTH_JWKS_CACHE_MAX_AGE_S: 600, DEV_ISSUER_AUDIENCE: 'tiergate' };

  it('the dev issuer only with no issuer configured, enabled, outside production', () => {
    expect(devIssuerEnabled(base)).toBe(true);
    expect(devIssuerEnabled({ ...base, NODE_ENV: 'production' })).toBe(false);
    expect(devIssuerEnabled({ ...base, DEV_ISSUER: false })).toBe(false);
    expect(devIssuerEnabled({ ...base, AUTH_ISSUERS: [{ issuer: 'x', audiences: ['a'], algorithms: ['ES256'], jwksUrl: 'https://x/jwks' }] })).toBe(false);
  });

  it('resolveTrustedIssuers: configured issuers win; nothing trusted is an error', async () => {
    const configured = await resolveTrustedIssuers({
      ...base,
      TIERGATE_DATA_DIR: freshDir(),
      AUTH_ISSUERS: [{ issuer: 'https://idp', audiences: ['a'], algorithms: ['ES256'], jwksUrl: 'https://idp/jwks' }],
    });
    expect(configured.issuers.map((i) => i.issuer)).toEqual(['https://idp']);
    expect(configured.devIssuer).toBeUndefined();
    const dev = await resolveTrustedIssuers({ ...base, TIERGATE_DATA_DIR: freshDir() });
    expect(dev.issuers.map((i) => [i.issuer, i.audiences, i.algorithms])).toEqual([[DEV_ISSUER, ['tiergate'], ['EdDSA']]]);
    expect(dev.devIssuer?.kid).toBeTypeOf('string');
    await expect(resolveTrustedIssuers({ ...base, NODE_ENV: 'production', TIERGATE_DATA_DIR: freshDir() })).rejects.toThrow(/no token issuer/);
  });
});

describe('token CLI', () => {
  it.each([
    ['90', 90],
    ['90s', 90],
    ['15m', 900],
    ['1h', 3600],
    ['7d', 604800],
    ['30d', 2592000],
  ])('--ttl %s = %ds', (text, seconds) => {
    expect(parseTtl(text)).toBe(seconds);
  });

  it.each(['0', '0s', '31d', '1w', '-5m', '1.5h', 'h', '', '1h ', ' 1h'])('--ttl %j is refused', (text) => {
    expect(parseTtl(text)).toBeUndefined();
  });

  it('parses arguments', () => {
    expect(parseTokenArgs(['alice'])).toEqual({ sub: 'alice', ttlS: 3600 });
    expect(parseTokenArgs(['user:alice', '--ttl', '5m', '--aud', 'x'])).toEqual({ sub: 'alice', ttlS: 300, aud: 'x' });
    expect(parseTokenArgs(['--ttl=2h', 'bob@example.com'])).toEqual({ sub: 'bob@example.com', ttlS: 7200 });
    expect(parseTokenArgs(['--client', 'demo-pep'])).toEqual({ sub: 'demo-pep', ttlS: 3600, client: true });
  });

  it.each([
    [[], /missing <sub>/],
    [['a b'], /invalid subject/],
    [['-alice'], /unknown option/],
    [['user:'], /invalid subject/],
    [['alice', 'bob'], /unexpected argument/],
    [['alice', '--ttl'], /--ttl needs a value/],
    [['alice', '--ttl', 'soon'], /invalid --ttl/],
    [['alice', '--scope', 'x'], /unknown option/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseTokenArgs(argv)).toThrow(message);
  });

  function capture(): { io: { out: (t: string) => void; err: (t: string) => void }; out: () => string; err: () => string } {
    let out = '';
    let err = '';
    return { io: { out: (t) => (out += t), err: (t) => (err += t) }, out: () => out, err: () => err };
  }

  it('prints only the token, which the gateway accepts; exit 0', async () => {
    const dataDir = freshDir();
    const c = capture();
    expect(await runTokenCli(['carol', '--ttl', '10m'], { TIERGATE_DATA_DIR: dataDir }, c.io)).toBe(0);
    expect(c.err()).toBe('');
    expect(c.out()).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/);
    const token = c.out().trim();
    const claims = decodeJwt(token);
    expect(claims.exp! - claims.iat!).toBe(600);
    const keys = await loadOrCreateDevIssuerKeys(dataDir);
    const res = await gateway(keys).request('/api/v1/x', { headers: { authorization: `Bearer ${token}` } });
    expect(await res.json()).toMatchObject({ subject: 'user:carol' });
  });

  it('bad arguments or a production environment: nothing on stdout, message on stderr, exit 1', async () => {
    const bad = capture();
    expect(await runTokenCli(['bad sub'], { TIERGATE_DATA_DIR: freshDir() }, bad.io)).toBe(1);
    expect(bad.out()).toBe('');
    expect(bad.err()).toMatch(/^token: invalid subject/);
    const prod = capture();
    const issuers = JSON.stringify([{ issuer: 'https://idp', audiences: ['a'], algorithms: ['ES256'], jwksUrl: 'https://idp/jwks' }]);
    expect(await runTokenCli(['alice'], { TIERGATE_DATA_DIR: freshDir(), NODE_ENV: 'production', AUTH_ISSUERS: issuers }, prod.io)).toBe(1);
    expect(prod.out()).toBe('');
    expect(prod.err()).toMatch(/does not trust the development issuer/);
  });

  it('`npm run -s token` prints exactly one token line on stdout', async () => {
    const dataDir = freshDir();
    const { stdout } = await promisify(execFile)('npm', ['run', '-s', 'token', '--', 'dave', '--ttl', '1h'], {
      cwd: join(import.meta.dirname, '../../..'),
      env: { ...process.env, TIERGATE_DATA_DIR: dataDir, NODE_ENV: 'development', AUTH_ISSUERS: '' },
    });
    expect(stdout).toMatch(/^[^\n]+\n$/);
    expect(stdout.trim()).toMatch(JWT);
    const keys = await loadOrCreateDevIssuerKeys(dataDir);
    expect(decodeProtectedHeader(stdout.trim()).kid).toBe(keys.kid);
    const res = await gateway(keys).request('/api/v1/x', { headers: { authorization: `Bearer ${stdout.trim()}` } });
    expect(res.status).toBe(200);
  });
});
