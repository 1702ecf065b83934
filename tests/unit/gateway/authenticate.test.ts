import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import {
  CompactSign,
  createLocalJWKSet,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  UnsecuredJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate, createTokenVerifier, trustIssuer, type TrustedIssuer, type VerifierOptions } from '../../../src/gateway/authenticate.js';
import type { GatewayEnv } from '../../../src/gateway/types.js';
import { renderGatewayError } from '../../../src/gateway/app.js';
import { timersStartedBy } from '../../support/timers.js';
import { serveRaw } from '../../support/raw-http.js';

const ISS = 'https://idp.example';
const AUD = 'tiergate';
const nowS = () => Math.floor(Date.now() / 1000);

interface KeyPair {
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function keyPair(alg: string, kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

let es: KeyPair;
let ed: KeyPair;
let attacker: KeyPair;

beforeAll(async () => {
  [es, ed, attacker] = await Promise.all([keyPair('ES256', 'es-1'), keyPair('EdDSA', 'ed-1'), keyPair('ES256', 'es-1')]);
});

function mint(key: KeyPair, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  const alg = key.publicJwk.alg!;
  return new SignJWT({ iss: ISS, aud: AUD, sub: 'alice', exp: nowS() + 600, ...claims })
    .setProtectedHeader({ alg, kid: key.publicJwk.kid, ...header })
    .sign(key.privateKey);
}

/**
 * A token whose claims are `json` exactly as written: what SignJWT cannot produce
 * (a `sub` that is not a string is refused by it, `1e309` cannot be a JS number).
 */
function mintJson(key: KeyPair, json: string): Promise<string> {
  return new CompactSign(new TextEncoder().encode(json)).setProtectedHeader({ alg: key.publicJwk.alg!, kid: key.publicJwk.kid }).sign(key.privateKey);
}

/** Claims JSON of a good token (iss, aud, sub alice, exp in 10 minutes) with `members` replaced or added. */
function claimsJson(members: Record<string, string>): string {
  const all: Record<string, string> = { iss: JSON.stringify(ISS), aud: JSON.stringify(AUD), sub: '"alice"', exp: String(nowS() + 600), ...members };
  return `{${Object.entries(all).map(([k, v]) => `"${k}":${v}`).join(',')}}`;
}

function issuer(overrides: Partial<TrustedIssuer> = {}): TrustedIssuer {
  return { issuer: ISS, audiences: [AUD], algorithms: ['ES256'], keys: createLocalJWKSet({ keys: [es.publicJwk, ed.publicJwk] }), ...overrides };
}

function appWith(opts: Partial<VerifierOptions> = {}): Hono<GatewayEnv> {
  const verifier = createTokenVerifier({ issuers: [issuer()], clockToleranceS: 30, tokenCacheMax: 100, ...opts });
  const app = new Hono<GatewayEnv>();
  app.onError(renderGatewayError);
  app.use('*', authenticate(verifier));
  app.get('*', (c) => c.json(c.var.principal));
  return app;
}

async function call(app: Hono<GatewayEnv>, authorization?: string): Promise<{ status: number; challenge: string | null; body: Record<string, unknown> }> {
  const res = await app.request('/api/v1/x', { headers: authorization === undefined ? {} : { authorization } });
  return { status: res.status, challenge: res.headers.get('www-authenticate'), body: (await res.json()) as Record<string, unknown> };
}

describe('authenticate: accepted tokens', () => {
  it('sets the principal from a verified token', async () => {
    const exp = nowS() + 600;
    const r = await call(appWith(), `Bearer ${await mint(es, { exp })}`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ subject: 'user:alice', sub: 'alice', issuer: ISS, expiresAt: exp });
  });

  it('marks a client-credentials token (client_id = sub) as a client, and only that', async () => {
    const exp = nowS() + 600;
    const client = await call(appWith(), `Bearer ${await mint(es, { sub: 'pep-1', client_id: 'pep-1', exp })}`);
    expect(client.body).toEqual({ subject: 'user:pep-1', sub: 'pep-1', issuer: ISS, expiresAt: exp, clientId: 'pep-1' });
    // A user's token obtained through an application names that application, not the user.
    const viaApp = await call(appWith(), `Bearer ${await mint(es, { sub: 'alice', client_id: 'pep-1', exp })}`);
    expect(viaApp.body).toEqual({ subject: 'user:alice', sub: 'alice', issuer: ISS, expiresAt: exp });
  });

  it('accepts the scheme in any case and any of several audiences', async () => {
    const app = appWith({ issuers: [issuer({ audiences: ['other', AUD] })] });
    expect((await call(app, `bearer ${await mint(es, { aud: ['x', AUD] })}`)).status).toBe(200);
  });

  it('accepts a token expired by less than the clock tolerance, not more', async () => {
    const app = appWith({ clockToleranceS: 30 });
    expect((await call(app, `Bearer ${await mint(es, { exp: nowS() - 10 })}`)).status).toBe(200);
    const late = await call(app, `Bearer ${await mint(es, { exp: nowS() - 60 })}`);
    expect(late.status).toBe(401);
    expect(late.challenge).toBe('Bearer error="invalid_token", error_description="token expired"');
  });
});

describe('authenticate: refused requests', () => {
  it('no Authorization header: 401 with a bare Bearer challenge, problem+json', async () => {
    const res = await appWith().request('/api/v1/x');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toMatchObject({ type: 'https://tiergate.dev/problems/unauthenticated', status: 401 });
  });

  it('another scheme counts as no Bearer credentials', async () => {
    const r = await call(appWith(), 'Basic YWxpY2U6cHc=');
    expect(r.status).toBe(401);
    expect(r.challenge).toBe('Bearer');
  });

  it.each([
    ['Bearer', 'malformed token'],
    ['Bearer not-a-jwt', 'malformed token'],
    ['Bearer a.b.c', 'malformed token'],
  ])('%s → 401 %s', async (authorization, description) => {
    const r = await call(appWith(), authorization);
    expect(r.status).toBe(401);
    expect(r.challenge).toBe(`Bearer error="invalid_token", error_description="${description}"`);
    expect(r.body).toMatchObject({ type: 'https://tiergate.dev/problems/invalid-token', detail: description });
  });

  const cases: Array<[string, () => Promise<string>, string]> = [
    ['an unknown issuer', () => mint(es, { iss: 'https://evil.example' }), 'untrusted issuer'],
    ['no iss', () => mint(es, { iss: undefined }), 'untrusted issuer'],
    ['the wrong audience', () => mint(es, { aud: 'someone-else' }), 'audience not accepted'],
    ['no exp', () => mint(es, { exp: undefined }), 'token has no exp claim'],
    ['no sub', () => mint(es, { sub: undefined }), 'token has no sub claim'],
    ['nbf in the future', () => mint(es, { nbf: nowS() + 300 }), 'token not yet valid'],
    ['an unsafe sub', () => mint(es, { sub: 'alice bob' }), 'subject not acceptable'],
    ['a sub with a type prefix', () => mint(es, { sub: 'user:alice' }), 'subject not acceptable'],
    ['an algorithm the issuer does not allow (EdDSA, key in the set)', () => mint(ed), 'algorithm not allowed'],
    ['a forged signature (same kid, other key)', () => mint(attacker), 'signature invalid'],
    ['an unknown kid', () => mint(es, {}, { kid: 'nope' }), 'no trusted key for this token'],
  ];
  it.each(cases)('a token with %s → 401', async (_name, token, description) => {
    const t = await token();
    const r = await call(appWith(), `Bearer ${t}`);
    expect(r.status).toBe(401);
    expect(r.challenge).toBe(`Bearer error="invalid_token", error_description="${description}"`);
    expect(JSON.stringify(r.body)).not.toContain(t);
  });

  // jose checks that sub is present and that exp/nbf/iat are numbers; the rest is ours.
  const claimCases: Array<[string, Record<string, string>, string]> = [
    ['sub as an array', { sub: '["alice"]' }, 'sub claim must be a string'],
    ['sub as a number', { sub: '7' }, 'sub claim must be a string'],
    ['sub as an object', { sub: '{"id":"alice"}' }, 'sub claim must be a string'],
    ['sub null', { sub: 'null' }, 'sub claim must be a string'],
    ['sub as an empty string', { sub: '""' }, 'sub claim is empty'],
    ['exp 1e309 (Infinity)', { exp: '1e309' }, 'exp claim must be a finite number'],
    ['iat 1e309 (Infinity)', { iat: '1e309' }, 'iat claim must be a finite number'],
    ['nbf -1e309 (-Infinity)', { nbf: '-1e309' }, 'nbf claim must be a finite number'],
    ['nbf 1e309 (never valid)', { nbf: '1e309' }, 'token not yet valid'],
    ['exp -1e309', { exp: '-1e309' }, 'token expired'],
    ['nbf huge (1e300)', { nbf: '1e300' }, 'token not yet valid'],
    ['exp as a string', { exp: `"${nowS() + 600}"` }, 'exp claim must be a number'],
    ['nbf as a string', { nbf: '"0"' }, 'nbf claim must be a number'],
    ['iat as a string', { iat: '"0"' }, 'iat claim must be a number'],
    ['exp null', { exp: 'null' }, 'exp claim must be a number'],
  ];
  it.each(claimCases)('a token with %s → 401, nothing cached', async (_name, members, description) => {
    let keyLookups = 0;
    const local = createLocalJWKSet({ keys: [es.publicJwk] });
    const app = appWith({
      issuers: [
        issuer({
          keys: (h, t) => {
            keyLookups++;
            return local(h, t);
          },
        }),
      ],
    });
    const t = await mintJson(es, claimsJson(members));
    for (let i = 1; i <= 2; i++) {
      const r = await call(app, `Bearer ${t}`);
      expect(r.status).toBe(401);
      expect(r.challenge).toBe(`Bearer error="invalid_token", error_description="${description}"`);
      expect(r.body).toMatchObject({ type: 'https://tiergate.dev/problems/invalid-token', detail: description });
      // Verified again each time: a refused token never reaches the cache.
      expect(keyLookups).toBe(i);
    }
  });

  it('a huge but finite exp and iat are numbers jose and the cache accept: the token is the issuer\'s word', async () => {
    const r = await call(appWith(), `Bearer ${await mintJson(es, claimsJson({ exp: '1e300', iat: '1e15' }))}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ subject: 'user:alice', expiresAt: 1e300 });
  });

  it('a token with an array sub naming a cached subject neither authenticates as it nor replaces its cache entry', async () => {
    const verifier = createTokenVerifier({ issuers: [issuer()], clockToleranceS: 0, tokenCacheMax: 10 });
    const good = await mint(es);
    expect(await verifier.verify(good)).toMatchObject({ subject: 'user:alice', sub: 'alice' });
    await expect(verifier.verify(await mintJson(es, claimsJson({ sub: '["alice"]' })))).rejects.toMatchObject({ status: 401 });
    expect(await verifier.verify(good)).toMatchObject({ subject: 'user:alice', sub: 'alice' });
    expect(verifier.counts).toEqual({ cached: 1, verified: 1, failed: 1 });
  });

  it('a cached token with anything added to it is refused: only the token itself is served from the cache', async () => {
    const app = appWith();
    const t = await mint(es);
    expect((await call(app, `Bearer ${t}`)).status).toBe(200); // verified and cached
    expect((await call(app, `Bearer   ${t}`)).status).toBe(200); // several spaces, as RFC 6750 allows
    for (const changed of [`Bearer ${t} x`, `Bearer ${t}.x`, `Bearer x${t}`, `Bearer ${t.slice(0, -1)}`]) {
      const r = await call(app, changed);
      expect(r.status).toBe(401);
      expect(r.challenge).toMatch(/^Bearer error="invalid_token"/);
    }
  });

  it('alg none is refused', async () => {
    const unsecured = new UnsecuredJWT({ iss: ISS, aud: AUD, sub: 'alice', exp: nowS() + 60 }).encode();
    // An unsecured JWT has an empty signature part; with a dummy part it reaches jose and is still refused.
    for (const token of [unsecured, `${unsecured}AAAA`]) {
      const r = await call(appWith(), `Bearer ${token}`);
      expect(r.status).toBe(401);
      expect(r.challenge).toMatch(/^Bearer error="invalid_token"/);
    }
  });

  it('HS256 signed with the issuer public key as the secret is refused (no key confusion)', async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const rsa: KeyPair = { privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' } };
    const pem = await exportSPKI(publicKey);
    const forged = await new SignJWT({ iss: ISS, aud: AUD, sub: 'alice', exp: nowS() + 60 })
      .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
      .sign(new TextEncoder().encode(pem));
    const app = appWith({ issuers: [issuer({ algorithms: ['RS256'], keys: createLocalJWKSet({ keys: [rsa.publicJwk] }) })] });
    const r = await call(app, `Bearer ${forged}`);
    expect(r.status).toBe(401);
    expect(r.challenge).toBe('Bearer error="invalid_token", error_description="algorithm not allowed"');
    expect((await call(app, `Bearer ${await mint(rsa)}`)).status).toBe(200);
  });

  it('never uses jku, x5u or an embedded jwk to find a key', async () => {
    let fetched = 0;
    const keyServer = createServer((_req, res) => {
      fetched++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [attacker.publicJwk] }));
    });
    await new Promise<void>((r) => keyServer.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}/jwks.json`;
    try {
      const token = await mint(attacker, {}, { kid: 'attacker', jku: url, x5u: url, jwk: attacker.publicJwk });
      const r = await call(appWith(), `Bearer ${token}`);
      expect(r.status).toBe(401);
      expect(r.challenge).toBe('Bearer error="invalid_token", error_description="no trusted key for this token"');
      expect(fetched).toBe(0);
    } finally {
      keyServer.close();
    }
  });

  it('two Authorization headers on the wire → 400 invalid_request, even if both are valid', async () => {
    const token = await mint(es);
    const server = await serveRaw(appWith().fetch as never);
    try {
      const twice = await server.send('GET /api/v1/x', [`Authorization: Bearer ${token}`, `Authorization: Bearer ${token}`]);
      expect(twice.status).toBe(400);
      expect(twice.headers['www-authenticate']).toBe('Bearer error="invalid_request", error_description="more than one Authorization header"');
      expect(JSON.parse(twice.body)).toMatchObject({ title: 'More than one Authorization header', status: 400 });
      const once = await server.send('GET /api/v1/x', [`Authorization: Bearer ${token}`]);
      expect(once.status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('verified-token cache', () => {
  function counting(keys: JWTVerifyGetKey): { keys: JWTVerifyGetKey; calls: () => number } {
    let calls = 0;
    return {
      keys: (h, t) => {
        calls++;
        return keys(h, t);
      },
      calls: () => calls,
    };
  }

  it('verifies a token once, then serves it from the cache until exp', async () => {
    let clock = Date.now();
    const keys = counting(createLocalJWKSet({ keys: [es.publicJwk] }));
    const verifier = createTokenVerifier({ issuers: [issuer({ keys: keys.keys })], clockToleranceS: 0, tokenCacheMax: 10, now: () => clock });
    const exp = Math.floor(clock / 1000) + 60;
    const token = await mint(es, { exp });
    expect((await verifier.verify(token)).sub).toBe('alice');
    expect((await verifier.verify(token)).sub).toBe('alice');
    expect(keys.calls()).toBe(1);
    expect(verifier.counts).toEqual({ cached: 1, verified: 1, failed: 0 });

    clock = exp * 1000 + 1; // past exp: the cached entry must not pass
    await expect(verifier.verify(token)).rejects.toMatchObject({ status: 401, description: 'token expired' });
    expect(keys.calls()).toBe(2);
    expect(verifier.counts).toEqual({ cached: 1, verified: 1, failed: 1 });
  });

  it('serves a cached token without starting a timer', async () => {
    const verifier = createTokenVerifier({ issuers: [issuer()], clockToleranceS: 0, tokenCacheMax: 10 });
    const token = await mint(es);
    await verifier.verify(token);
    expect(await timersStartedBy(() => verifier.verify(token), 5)).toBe(0);
  });

  it('caches nothing for a refused token', async () => {
    const keys = counting(createLocalJWKSet({ keys: [es.publicJwk] }));
    const verifier = createTokenVerifier({ issuers: [issuer({ keys: keys.keys })], clockToleranceS: 0, tokenCacheMax: 10 });
    const forged = await mint(attacker);
    await expect(verifier.verify(forged)).rejects.toMatchObject({ description: 'signature invalid' });
    await expect(verifier.verify(forged)).rejects.toMatchObject({ description: 'signature invalid' });
    expect(keys.calls()).toBe(2);
    expect(verifier.counts).toEqual({ cached: 0, verified: 0, failed: 2 });
  });

  it('refuses HMAC or none in an issuer allow-list at construction', () => {
    expect(() => createTokenVerifier({ issuers: [issuer({ algorithms: ['HS256'] })], clockToleranceS: 0, tokenCacheMax: 1 })).toThrow(/asymmetric/);
    expect(() => createTokenVerifier({ issuers: [issuer({ algorithms: ['none'] })], clockToleranceS: 0, tokenCacheMax: 1 })).toThrow(/asymmetric/);
  });
});

describe('issuer key sets', () => {
  let jwks: { keys: JWK[] };
  let hits = 0;
  let server: Server;
  let jwksUrl: string;

  beforeAll(async () => {
    jwks = { keys: [es.publicJwk] };
    server = createServer((_req, res) => {
      hits++;
      // A little latency so concurrent callers overlap one fetch.
      setTimeout(() => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(jwks));
      }, 20);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  function remote(cooldownS: number): ReturnType<typeof createTokenVerifier> {
    const trusted = trustIssuer({ issuer: ISS, audiences: [AUD], algorithms: ['ES256'], jwksUrl }, { cooldownS, cacheMaxAgeS: 600 });
    return createTokenVerifier({ issuers: [trusted], clockToleranceS: 0, tokenCacheMax: 100 });
  }

  it('fetches a cold remote key set once for many concurrent requests (single-flight)', async () => {
    jwks = { keys: [es.publicJwk] };
    hits = 0;
    const verifier = remote(30);
    const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => mint(es, { sub: `u${i}` })));
    const subs = await Promise.all(tokens.map(async (t) => (await verifier.verify(t)).sub));
    expect(subs).toEqual(tokens.map((_, i) => `u${i}`));
    expect(hits).toBe(1);
  });

  it('an unknown kid within the cooldown is refused without a refetch', async () => {
    jwks = { keys: [es.publicJwk] };
    hits = 0;
    const verifier = remote(30);
    await verifier.verify(await mint(es));
    const rotated = await keyPair('ES256', 'es-2');
    jwks = { keys: [es.publicJwk, rotated.publicJwk] };
    const tokens = await Promise.all(Array.from({ length: 5 }, () => mint(rotated)));
    const results = await Promise.allSettled(tokens.map((t) => verifier.verify(t)));
    expect(results.every((r) => r.status === 'rejected' && (r.reason as { description: string }).description === 'no trusted key for this token')).toBe(true);
    expect(hits).toBe(1);
  });

  it('picks up a rotated key on an unknown kid once the cooldown has passed, one fetch for concurrent callers', async () => {
    jwks = { keys: [es.publicJwk] };
    hits = 0;
    const verifier = remote(0);
    await verifier.verify(await mint(es));
    const rotated = await keyPair('ES256', 'es-3');
    jwks = { keys: [rotated.publicJwk] };
    const tokens = await Promise.all(Array.from({ length: 5 }, (_, i) => mint(rotated, { sub: `r${i}` })));
    const subs = await Promise.all(tokens.map(async (t) => (await verifier.verify(t)).sub));
    expect(subs).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(hits).toBe(2);
  });

  it('an unreachable key set is 503, not a token fault', async () => {
    const dead = trustIssuer({ issuer: ISS, audiences: [AUD], algorithms: ['ES256'], jwksUrl: 'http://127.0.0.1:1/jwks.json' }, { cooldownS: 30, cacheMaxAgeS: 600 });
    const app = appWith({ issuers: [dead] });
    const res = await app.request('/api/v1/x', { headers: { authorization: `Bearer ${await mint(es)}` } });
    expect(res.status).toBe(503);
    expect(res.headers.get('www-authenticate')).toBeNull();
    expect(await res.json()).toMatchObject({ type: 'https://tiergate.dev/problems/issuer-unavailable', status: 503 });
  });

  it('reads a local JWKS file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-jwks-'));
    const file = join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [ed.publicJwk] }));
    const trusted = trustIssuer({ issuer: ISS, audiences: [AUD], algorithms: ['EdDSA'], jwksFile: file }, { cooldownS: 30, cacheMaxAgeS: 600 });
    const verifier = createTokenVerifier({ issuers: [trusted], clockToleranceS: 0, tokenCacheMax: 10 });
    expect((await verifier.verify(await mint(ed))).subject).toBe('user:alice');
    await expect(verifier.verify(await mint(es))).rejects.toMatchObject({ description: 'algorithm not allowed' });
  });
});
