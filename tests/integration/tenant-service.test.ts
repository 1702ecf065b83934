// The tenant-resource service against a real (in-memory) PGlite database, called
// with real Ed25519-signed gateway assertions. No mocks: the only stand-in is the
// gateway itself, whose job of signing assertions the functions below do.
import { KeyObject, randomUUID, sign as signBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SignJWT,
  UnsecuredJWT,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  type CryptoKey,
  type JWTVerifyGetKey,
} from 'jose';
import type { Hono } from 'hono';
import { migrate, openDb, type Db } from '../../src/db/index.js';
import { ASSERTION_HEADER } from '../../src/shared/assertion.js';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import { RESOURCE_KINDS } from '../../src/shared/resource-kinds.js';
import { createTenantServiceApp } from '../../src/tenant-service/app.js';
import type { TenantServiceEnv } from '../../src/tenant-service/http.js';
import { TENANT_SERVICE_COMPONENT, TENANT_SERVICE_MIGRATIONS } from '../../src/tenant-service/migrations.js';
import { insertCallRecord } from '../../src/tenant-service/repository.js';
import { startTenantService } from '../../src/tenant-service/server.js';

const AUDIENCE = 'tenant-service';
const KID = 'gw-1';

let db: Db;
let app: Hono<TenantServiceEnv>;
let gatewayKey: CryptoKey;
let strangerKey: CryptoKey;
let verifyKey: JWTVerifyGetKey;
/** How often the service resolved a verification key: once per signature it checked. */
let keyLookups = 0;

type ScopeType = 'tenant' | 'division' | 'organization';

interface AssertionOptions {
  scope: { type: ScopeType; id: string };
  tenants: string[];
  /** The request the assertion is bound to (`htm`, `htu`), as the gateway binds it. */
  method: string;
  path: string;
  sub?: string;
  iss?: string;
  aud?: string;
  /** Seconds from now; negative for an expired assertion. */
  expiresIn?: number;
  key?: CryptoKey;
  /** The effective settings claim, as the gateway adds it. */
  settings?: { node: string; values: Record<string, unknown>; sources: Record<string, string> };
}

function sign(o: AssertionOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const exp = now + (o.expiresIn ?? 60);
  return new SignJWT({ scope: o.scope, tenants: o.tenants, htm: o.method, htu: o.path, ...(o.settings ? { settings: o.settings } : {}) })
    .setProtectedHeader({ alg: 'EdDSA', kid: KID })
    .setIssuer(o.iss ?? 'tiergate')
    .setAudience(o.aud ?? AUDIENCE)
    .setSubject(o.sub ?? 'alice')
    .setIssuedAt(Math.min(now, exp - 30))
    .setExpirationTime(exp)
    .sign(o.key ?? gatewayKey);
}

/** What an assertion grants, apart from the request it is bound to. */
type Grant = Omit<AssertionOptions, 'method' | 'path'>;

const tenantGrant = (tenantId: string): Grant => ({ scope: { type: 'tenant', id: tenantId }, tenants: [tenantId] });

/** The path the gateway binds (`htu`): the request path without its query. */
const pathOf = (target: string) => target.split('?')[0]!;

/** An assertion for `tenantId`, bound to `method` and `target`'s path, as the gateway signs it. */
const tenantAssertion = (tenantId: string, method: string, target: string) =>
  sign({ ...tenantGrant(tenantId), method, path: pathOf(target) });

interface CallOptions {
  /** An assertion to send as is (for replays and malformed tokens). */
  token?: string;
  /** Sign an assertion with this grant, bound to exactly this call's method and path. */
  as?: Grant;
  body?: unknown;
  rawBody?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

async function call(method: string, path: string, o: CallOptions = {}): Promise<Response> {
  const headers = new Headers(o.headers);
  const token = o.token ?? (o.as ? await sign({ ...o.as, method, path: pathOf(path) }) : undefined);
  if (token !== undefined) headers.set(ASSERTION_HEADER, token);
  let body: string | undefined;
  if (o.body !== undefined || o.rawBody !== undefined) {
    body = o.rawBody ?? JSON.stringify(o.body);
    headers.set('content-type', o.contentType ?? 'application/json');
  }
  return app.request(path, { method, headers, body });
}

/** Calls a tenant route with a valid assertion for that tenant and this request. */
function asTenant(tenantId: string, method: string, rest: string, body?: unknown): Promise<Response> {
  return call(method, `/api/v1/tenants/${tenantId}${rest}`, { as: tenantGrant(tenantId), body });
}

async function expectProblem(res: Response, status: number): Promise<Record<string, unknown>> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE);
  const p = (await res.json()) as Record<string, unknown>;
  expect(p.status).toBe(status);
  expect(typeof p.type).toBe('string');
  return p;
}

beforeAll(async () => {
  db = await openDb({});
  await migrate(db, TENANT_SERVICE_COMPONENT, TENANT_SERVICE_MIGRATIONS);
  const gateway = await generateKeyPair('EdDSA');
  gatewayKey = gateway.privateKey;
  strangerKey = (await generateKeyPair('EdDSA')).privateKey;
  const jwk = { ...(await exportJWK(gateway.publicKey)), kid: KID, alg: 'EdDSA', use: 'sig' };
  const jwks = createLocalJWKSet({ keys: [jwk] });
  verifyKey = (header, token) => {
    keyLookups += 1;
    return jwks(header, token);
  };
  app = createTenantServiceApp({ db, verifyKey, audience: AUDIENCE });
});

afterAll(async () => {
  await db?.close();
});

describe('health', () => {
  it('answers /healthz without an assertion, /readyz only with one', async () => {
    const health = await call('GET', '/healthz');
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });

    await expectProblem(await call('GET', '/readyz'), 401);
    const ready = await call('GET', '/readyz', { as: tenantGrant('t-health') });
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', db: 'pglite' });
  });
});

describe('gateway assertion', () => {
  const path = '/api/v1/tenants/t-auth/agents';
  const scope = { type: 'tenant' as const, id: 't-auth' };
  /** Everything but the signature and standard claims right: the tests below vary one thing each. */
  const bound = { scope, tenants: ['t-auth'], method: 'GET', path };

  it('accepts a valid assertion', async () => {
    const res = await call('GET', path, { as: tenantGrant('t-auth') });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ items: [], nextCursor: null });
  });

  it('refuses a request without one, and ignores identity headers', async () => {
    const p = await expectProblem(
      await call('GET', path, { headers: { 'x-user-id': 'alice', 'x-tenant-id': 't-auth', authorization: 'Bearer x' } }),
      401,
    );
    expect(p.detail).toBe('missing gateway assertion');
  });

  it('refuses expired, foreign-audience, foreign-issuer and foreign-key assertions', async () => {
    const cases: [string, Promise<string>, string][] = [
      ['expired', sign({ ...bound, expiresIn: -60 }), 'assertion expired'],
      ['wrong audience', sign({ ...bound, aud: 'other-service' }), 'assertion claim "aud" rejected'],
      ['wrong issuer', sign({ ...bound, iss: 'https://evil.example' }), 'assertion claim "iss" rejected'],
      ['another key', sign({ ...bound, key: strangerKey }), 'assertion signature not from the gateway'],
    ];
    for (const [name, token, detail] of cases) {
      const p = await expectProblem(await call('GET', path, { token: await token }), 401);
      expect(p.detail, name).toBe(detail);
    }
  });

  it('refuses HS256, alg none, and claims outside the contract', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { scope, tenants: ['t-auth'], htm: 'GET', htu: path };
    const hs256 = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', kid: KID })
      .setIssuer('tiergate')
      .setAudience(AUDIENCE)
      .setSubject('alice')
      .setIssuedAt()
      .setExpirationTime(now + 60)
      .sign(new TextEncoder().encode('a-shared-secret-that-is-long-enough!!'));
    const none = new UnsecuredJWT(claims).setIssuer('tiergate').setAudience(AUDIENCE).setSubject('alice').setIssuedAt().setExpirationTime(now + 60).encode();
    const noScope = await new SignJWT({ tenants: ['t-auth'], htm: 'GET', htu: path })
      .setProtectedHeader({ alg: 'EdDSA', kid: KID })
      .setIssuer('tiergate')
      .setAudience(AUDIENCE)
      .setSubject('alice')
      .setIssuedAt()
      .setExpirationTime(now + 60)
      .sign(gatewayKey);

    expect((await expectProblem(await call('GET', path, { token: hs256 }), 401)).detail).toBe('assertion algorithm not allowed');
    await expectProblem(await call('GET', path, { token: none }), 401);
    expect((await expectProblem(await call('GET', path, { token: noScope }), 401)).detail).toBe(
      'assertion claims do not match the contract',
    );
    await expectProblem(await call('GET', path, { token: 'not-a-jwt' }), 401);
  });

  it('refuses two assertion headers', async () => {
    const token = await sign(bound);
    const headers = new Headers();
    headers.append(ASSERTION_HEADER, token);
    headers.append(ASSERTION_HEADER, token);
    await expectProblem(await app.request(path, { headers }), 401);
  });

  it('verifies a repeated assertion once, a new one again', async () => {
    // EdDSA signatures are deterministic: a fresh subject makes a token no earlier test sent.
    const token = await sign({ ...bound, sub: `cache-${randomUUID()}` });
    const before = keyLookups;
    for (let i = 0; i < 3; i += 1) expect((await call('GET', path, { token })).status).toBe(200);
    expect(keyLookups - before).toBe(1);
    const other = await sign({ ...bound, sub: `cache-${randomUUID()}` });
    expect((await call('GET', path, { token: other })).status).toBe(200);
    expect(keyLookups - before).toBe(2);
  });

  it('answers 503, not 401, when the gateway keys cannot be fetched', async () => {
    const unreachable: JWTVerifyGetKey = () => Promise.reject(new TypeError('fetch failed'));
    const isolated = createTenantServiceApp({ db, verifyKey: unreachable, audience: AUDIENCE });
    const res = await isolated.request(path, { headers: { [ASSERTION_HEADER]: await sign(bound) } });
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE);
  });

  it('answers 503 when the key set holds a shared secret instead of the gateway public key', async () => {
    const secret: JWTVerifyGetKey = () => Promise.resolve(new TextEncoder().encode('a-shared-secret-that-is-long-enough!!'));
    const misconfigured = createTenantServiceApp({ db, verifyKey: secret, audience: AUDIENCE });
    const res = await misconfigured.request(path, { headers: { [ASSERTION_HEADER]: await sign(bound) } });
    expect(res.status).toBe(503);
  });

  /** A compact JWS with exactly this header and these claims, signed by the gateway key (or not at all). */
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signRaw = (header: Record<string, unknown>, claims: Record<string, unknown>): string => {
    const input = `${b64(header)}.${b64(claims)}`;
    return `${input}.${signBytes(null, Buffer.from(input), KeyObject.from(gatewayKey)).toString('base64url')}`;
  };
  const validClaims = () => {
    const now = Math.floor(Date.now() / 1000);
    return { iss: 'tiergate', aud: AUDIENCE, sub: `raw-${randomUUID()}`, iat: now, exp: now + 60, scope, tenants: ['t-auth'], htm: 'GET', htu: path };
  };

  it('accepts what the gateway signs (node:crypto, no jose), and an audience list that names this service', async () => {
    expect((await call('GET', path, { token: signRaw({ alg: 'EdDSA', kid: KID, typ: 'JWT' }, validClaims()) })).status).toBe(200);
    const listed = { ...validClaims(), aud: ['another-service', AUDIENCE] };
    expect((await call('GET', path, { token: signRaw({ alg: 'EdDSA', kid: KID }, listed) })).status).toBe(200);
  });

  it('refuses altered tokens, critical extensions, malformed parts and missing or early time claims', async () => {
    const header = { alg: 'EdDSA', kid: KID };
    const good = signRaw(header, validClaims());
    const [h, , s] = good.split('.') as [string, string, string];
    const now = Math.floor(Date.now() / 1000);
    const { exp: _exp, ...noExp } = validClaims();
    const { iat: _iat, ...noIat } = validClaims();
    const { sub: _sub, ...noSub } = validClaims();
    // Ed25519 signatures are 64 bytes: the last base64url character carries 4 spare bits.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const spareBitsSet = s.slice(0, -1) + alphabet[alphabet.indexOf(s.at(-1)!) + 1];
    const cases: [string, string, string][] = [
      ['claims swapped under the signature', `${h}.${b64({ ...validClaims(), tenants: ['t-other'] })}.${s}`, 'assertion signature not from the gateway'],
      ['the same signature bytes, spelt another way', `${good.slice(0, good.lastIndexOf('.'))}.${spareBitsSet}`, 'assertion malformed'],
      ['a critical extension', signRaw({ ...header, crit: ['exp'] }, validClaims()), 'assertion malformed'],
      ['b64 false', signRaw({ ...header, b64: false }, validClaims()), 'assertion malformed'],
      ['a header that is not JSON', `${Buffer.from('{alg').toString('base64url')}.${good.split('.')[1]}.${s}`, 'assertion malformed'],
      ['claims that are a list', signRaw(header, [validClaims()] as unknown as Record<string, unknown>), 'assertion malformed'],
      ['alg Ed25519 by another name', signRaw({ ...header, alg: 'Ed25519' }, validClaims()), 'assertion algorithm not allowed'],
      ['a kid the gateway never had', signRaw({ ...header, kid: 'gw-unknown' }, validClaims()), 'assertion signature not from the gateway'],
      ['no exp', signRaw(header, noExp), 'assertion claim "exp" rejected'],
      ['no iat', signRaw(header, noIat), 'assertion claim "iat" rejected'],
      ['no sub', signRaw(header, noSub), 'assertion claim "sub" rejected'],
      ['exp as text', signRaw(header, { ...validClaims(), exp: String(now + 60) }), 'assertion claim "exp" rejected'],
      ['not before two minutes from now', signRaw(header, { ...validClaims(), nbf: now + 120 }), 'assertion claim "nbf" rejected'],
      ['expired beyond the tolerance', signRaw(header, { ...validClaims(), iat: now - 90, exp: now - 30 }), 'assertion expired'],
      ['an audience list without this service', signRaw(header, { ...validClaims(), aud: ['another-service'] }), 'assertion claim "aud" rejected'],
    ];
    for (const [name, token, detail] of cases) {
      const p = await expectProblem(await call('GET', path, { token }), 401);
      expect(p.detail, name).toBe(detail);
    }
    // Within the tolerance (5 s by default) on either side, still accepted.
    const edges = { ...validClaims(), nbf: now + 3, exp: now - 3, iat: now - 60 };
    expect((await call('GET', path, { token: signRaw(header, edges) })).status).toBe(200);
  });
});

describe('request binding (htm, htu)', () => {
  const t = 't-bind';
  const base = `/api/v1/tenants/${t}/agents`;
  /** A subject no other test uses: its tokens are new to the verifier's cache. */
  const fresh = (): Grant => ({ ...tenantGrant(t), sub: `bind-${randomUUID()}` });

  beforeAll(async () => {
    for (const agentNo of ['2000', '2001']) {
      expect((await asTenant(t, 'POST', '/agents', { agentNo, name: `Agent ${agentNo}` })).status).toBe(201);
    }
  });

  it('refuses an assertion for GET …/agents replayed on DELETE …/agents/2000, even once it is cached', async () => {
    const listToken = await sign({ ...fresh(), method: 'GET', path: base });
    const before = keyLookups;
    expect((await call('GET', base, { token: listToken })).status).toBe(200);

    const p = await expectProblem(await call('DELETE', `${base}/2000`, { token: listToken }), 401);
    expect(p.detail).toBe('assertion was issued for another request');
    // The replay was answered from the verified-assertion cache, and still refused.
    expect(keyLookups - before).toBe(1);

    const read = await asTenant(t, 'GET', '/agents/2000');
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ agentNo: '2000', name: 'Agent 2000' });
  });

  it('refuses an assertion on another method of the same path', async () => {
    const readToken = await sign({ ...fresh(), method: 'GET', path: `${base}/2000` });
    const p = await expectProblem(await call('DELETE', `${base}/2000`, { token: readToken }), 401);
    expect(p.detail).toBe('assertion was issued for another request');
    await expectProblem(await call('PUT', `${base}/2000`, { token: readToken, body: { name: 'hijacked' } }), 401);
    expect(await (await asTenant(t, 'GET', '/agents/2000')).json()).toMatchObject({ name: 'Agent 2000' });
  });

  it('refuses an assertion for …/agents/2000 replayed on …/agents/2001', async () => {
    const readToken = await sign({ ...fresh(), method: 'GET', path: `${base}/2000` });
    expect(await (await call('GET', `${base}/2000`, { token: readToken })).json()).toMatchObject({ agentNo: '2000' });
    const p = await expectProblem(await call('GET', `${base}/2001`, { token: readToken }), 401);
    expect(p.detail).toBe('assertion was issued for another request');
    expect(JSON.stringify(p)).not.toContain('Agent 2001');

    const deleteToken = await sign({ ...fresh(), method: 'DELETE', path: `${base}/2000` });
    await expectProblem(await call('DELETE', `${base}/2001`, { token: deleteToken }), 401);
    expect((await asTenant(t, 'GET', '/agents/2001')).status).toBe(200);
    // The same token does what it was issued for; the other agent is untouched.
    expect((await call('DELETE', `${base}/2000`, { token: deleteToken })).status).toBe(204);
    await expectProblem(await asTenant(t, 'GET', '/agents/2000'), 404);
    expect((await asTenant(t, 'GET', '/agents/2001')).status).toBe(200);
    expect((await asTenant(t, 'POST', '/agents', { agentNo: '2000', name: 'Agent 2000' })).status).toBe(201);
  });

  it('compares the path exactly: no trailing slash, other case or prefix', async () => {
    const token = await sign({ ...fresh(), method: 'GET', path: base });
    for (const other of [`${base}/`, base.toUpperCase(), `/api/v1/tenants/${t}`, `${base}/2000`]) {
      const p = await expectProblem(await call('GET', other, { token }), 401);
      expect(p.detail, other).toBe('assertion was issued for another request');
    }
    expect((await call('GET', base, { token })).status).toBe(200);
  });

  it('binds the path without the query', async () => {
    const token = await sign({ ...fresh(), method: 'GET', path: base });
    const page = await call('GET', `${base}?limit=1`, { token });
    expect(page.status).toBe(200);
    expect(((await page.json()) as { items: unknown[] }).items).toHaveLength(1);
  });

  it('binds HEAD as HEAD, not as the GET that answers it', async () => {
    expect((await call('HEAD', base, { as: fresh() })).status).toBe(200);
    const getToken = await sign({ ...fresh(), method: 'GET', path: base });
    expect((await call('HEAD', base, { token: getToken })).status).toBe(401);
  });

  it('refuses assertions without htm/htu, or with them outside the contract', async () => {
    const now = Math.floor(Date.now() / 1000);
    const withClaims = (extra: Record<string, unknown>) =>
      new SignJWT({ scope: { type: 'tenant', id: t }, tenants: [t], ...extra })
        .setProtectedHeader({ alg: 'EdDSA', kid: KID })
        .setIssuer('tiergate')
        .setAudience(AUDIENCE)
        .setSubject(`bind-${randomUUID()}`)
        .setIssuedAt(now)
        .setExpirationTime(now + 60)
        .sign(gatewayKey);
    const cases: [string, Record<string, unknown>][] = [
      ['neither', {}],
      ['no htm', { htu: base }],
      ['no htu', { htm: 'GET' }],
      ['lowercase htm', { htm: 'get', htu: base }],
      ['htu with the query', { htm: 'GET', htu: `${base}?limit=1` }],
      ['htu not a path', { htm: 'GET', htu: `http://tenant-service${base}` }],
    ];
    for (const [name, extra] of cases) {
      const p = await expectProblem(await call('GET', base, { token: await withClaims(extra) }), 401);
      expect(p.detail, name).toBe('assertion claims do not match the contract');
    }
    // The same token with both claims right is accepted: what refused the others was the binding.
    expect((await call('GET', base, { token: await withClaims({ htm: 'GET', htu: base }) })).status).toBe(200);
  });
});

interface KindCase {
  segment: string;
  id: string;
  create: Record<string, unknown>;
  /** Full replacement without `dropped`, which create set. */
  replace: Record<string, unknown>;
  dropped: string;
  patch: Record<string, unknown>;
}

const KIND_CASES: KindCase[] = [
  {
    segment: 'agents',
    id: '2000',
    create: { agentNo: '2000', name: 'Alice', skills: ['billing'] },
    replace: { name: 'Alice B' },
    dropped: 'skills',
    patch: { enabled: false },
  },
  {
    segment: 'queues',
    id: '1000',
    create: { queueNo: '1000', name: 'Sales', agents: ['2000'] },
    replace: { name: 'Sales 2', strategy: 'ring-all' },
    dropped: 'agents',
    patch: { maxWaitSeconds: 120 },
  },
  {
    segment: 'extensions',
    id: '2000',
    create: { exten: '2000', name: 'Desk 1' },
    replace: { type: 'webrtc' },
    dropped: 'name',
    patch: { enabled: false },
  },
  {
    segment: 'tel-groups',
    id: '3000',
    create: { tgno: '3000', name: 'Front desk', members: ['2000'] },
    replace: { name: 'Front desk 2' },
    dropped: 'members',
    patch: { strategy: 'simultaneous' },
  },
  {
    segment: 'ivrs',
    id: 'main',
    create: { ivrId: 'main', name: 'Main menu', options: [{ digit: '1', target: { type: 'queue', id: '1000' } }] },
    replace: { name: 'Main menu 2' },
    dropped: 'options',
    patch: { greeting: 'Welcome' },
  },
  {
    segment: 'phone-numbers',
    id: 'hq-1',
    create: { numberId: 'hq-1', number: '+14155550100', name: 'HQ line' },
    replace: { number: '+14155550101' },
    dropped: 'name',
    patch: { target: { type: 'ivr', id: 'main' } },
  },
  {
    segment: 'routing-rules',
    id: 'default',
    create: { ruleId: 'default', name: 'Default', match: { callerPrefix: '+44' }, target: { type: 'queue', id: '1000' } },
    replace: { name: 'Default 2', target: { type: 'ivr', id: 'main' }, priority: 5 },
    dropped: 'match',
    patch: { enabled: false },
  },
  {
    segment: 'configurations',
    id: 'recording',
    create: { configKey: 'recording', value: true, description: 'record calls' },
    replace: { value: 'off' },
    dropped: 'description',
    patch: { description: 'recording switched off' },
  },
];

describe('resource CRUD', () => {
  it('covers every writable kind of the shared table', () => {
    const writable = RESOURCE_KINDS.filter((k) => !k.readOnly).map((k) => k.segment);
    expect(KIND_CASES.map((k) => k.segment).sort()).toEqual([...writable].sort());
  });

  for (const k of KIND_CASES) {
    it(`${k.segment}: create, read, list, replace, merge, delete`, async () => {
      const kind = RESOURCE_KINDS.find((r) => r.segment === k.segment)!;
      const tenant = `t-crud-${k.segment}`;
      const item = `/${k.segment}/${k.id}`;

      const created = await asTenant(tenant, 'POST', `/${k.segment}`, k.create);
      expect(created.status).toBe(201);
      expect(created.headers.get('location')).toBe(`/api/v1/tenants/${tenant}${item}`);
      expect(await created.json()).toMatchObject({ ...k.create, tenantId: tenant });

      await expectProblem(await asTenant(tenant, 'POST', `/${k.segment}`, k.create), 409);

      const read = await asTenant(tenant, 'GET', item);
      expect(read.status).toBe(200);
      const stored = (await read.json()) as Record<string, unknown>;
      expect(stored).toMatchObject(k.create);
      expect(typeof stored.createdAt).toBe('string');

      const list = (await (await asTenant(tenant, 'GET', `/${k.segment}`)).json()) as { items: Record<string, unknown>[] };
      expect(list.items.map((i) => i[kind.idParam])).toEqual([k.id]);

      const replaced = await asTenant(tenant, 'PUT', item, k.replace);
      expect(replaced.status).toBe(200);
      const afterPut = (await replaced.json()) as Record<string, unknown>;
      expect(afterPut).toMatchObject({ ...k.replace, [kind.idParam]: k.id });
      expect(afterPut).not.toHaveProperty(k.dropped);

      const patched = await asTenant(tenant, 'PATCH', item, k.patch);
      expect(patched.status).toBe(200);
      expect(await patched.json()).toMatchObject({ ...k.replace, ...k.patch, [kind.idParam]: k.id });

      const deleted = await asTenant(tenant, 'DELETE', item);
      expect(deleted.status).toBe(204);
      await expectProblem(await asTenant(tenant, 'GET', item), 404);
      await expectProblem(await asTenant(tenant, 'PUT', item, k.replace), 404);
      await expectProblem(await asTenant(tenant, 'PATCH', item, k.patch), 404);
      await expectProblem(await asTenant(tenant, 'DELETE', item), 404);
    });
  }
});

describe('validation', () => {
  const tenant = 't-valid';

  it('refuses unknown fields, bad ids and bad values, naming each', async () => {
    const p = await expectProblem(
      await asTenant(tenant, 'POST', '/agents', { agentNo: '2000', name: 'A', role: 'admin', status: 'busy' }),
      400,
    );
    expect(p['invalid-params']).toEqual([
      { name: 'body.role', reason: 'unknown field' },
      { name: 'body.status', reason: 'unknown field' },
    ]);
    const badId = await expectProblem(await asTenant(tenant, 'POST', '/agents', { agentNo: '../x', name: 'A' }), 400);
    expect(badId['invalid-params']).toMatchObject([{ name: 'body.agentNo' }]);
    await expectProblem(await asTenant(tenant, 'POST', '/agents', { name: 'A' }), 400);
    await expectProblem(await asTenant(tenant, 'POST', '/phone-numbers', { numberId: 'n1', number: '555' }), 400);
    await expectProblem(await asTenant(tenant, 'GET', '/agents/bad.id'), 400);
  });

  it('refuses a changed id, non-JSON, other media types and oversized bodies', async () => {
    expect((await asTenant(tenant, 'POST', '/queues', { queueNo: 'q1', name: 'Q' })).status).toBe(201);
    await expectProblem(await asTenant(tenant, 'PUT', '/queues/q1', { queueNo: 'q2', name: 'Q' }), 400);
    await expectProblem(await asTenant(tenant, 'PATCH', '/queues/q1', { queueNo: 'q2' }), 400);
    const as = tenantGrant(tenant);
    const path = `/api/v1/tenants/${tenant}/queues`;
    await expectProblem(await call('POST', path, { as, rawBody: '{"queueNo":' }), 400);
    await expectProblem(await call('POST', path, { as, rawBody: 'queueNo=q3', contentType: 'application/x-www-form-urlencoded' }), 415);
    const huge = { queueNo: 'q4', name: 'x'.repeat(70 * 1024) };
    await expectProblem(await call('POST', path, { as, body: huge }), 413);
    expect((await asTenant(tenant, 'GET', '/queues/q4')).status).toBe(404);
    const merge = await call('PATCH', `${path}/q1`, { as, body: { name: 'Q merged' }, contentType: 'application/merge-patch+json' });
    expect(merge.status).toBe(200);
  });

  it('pages lists with a bounded limit and an opaque cursor', async () => {
    const t = 't-paging';
    for (const id of ['e', 'a', 'c', 'b', 'd']) {
      expect((await asTenant(t, 'POST', '/extensions', { exten: id })).status).toBe(201);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = (await (await asTenant(t, 'GET', `/extensions${q}`)).json()) as { items: { exten: string }[]; nextCursor: string | null };
      seen.push(...page.items.map((i) => i.exten));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor !== null && pages < 10);
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(pages).toBe(3);
    for (const q of ['?limit=0', '?limit=201', '?limit=abc', '?cursor=%2E%2E', '?cursor=Li4v', '?sort=name']) {
      await expectProblem(await asTenant(t, 'GET', `/extensions${q}`), 400);
    }
  });
});

describe('tenant isolation', () => {
  it('keeps the same agentNo in two tenants as two agents', async () => {
    expect((await asTenant('t-iso-a', 'POST', '/agents', { agentNo: '2000', name: 'Agent of A' })).status).toBe(201);
    expect((await asTenant('t-iso-b', 'POST', '/agents', { agentNo: '2000', name: 'Agent of B' })).status).toBe(201);
    expect(await (await asTenant('t-iso-a', 'GET', '/agents/2000')).json()).toMatchObject({ tenantId: 't-iso-a', name: 'Agent of A' });
    expect(await (await asTenant('t-iso-b', 'GET', '/agents/2000')).json()).toMatchObject({ tenantId: 't-iso-b', name: 'Agent of B' });
    await asTenant('t-iso-b', 'DELETE', '/agents/2000');
    expect(await (await asTenant('t-iso-a', 'GET', '/agents/2000')).json()).toMatchObject({ name: 'Agent of A' });
    expect((await asTenant('t-iso-b', 'POST', '/agents', { agentNo: '2000', name: 'Agent of B' })).status).toBe(201);
  });

  it("refuses tenant A's assertion on tenant B's paths, revealing nothing of B", async () => {
    // Each assertion is bound to the request it is sent with: only the tenant differs.
    const asA = tenantGrant('t-iso-a');
    for (const [method, path, body] of [
      ['GET', '/api/v1/tenants/t-iso-b/agents', undefined],
      ['GET', '/api/v1/tenants/t-iso-b/agents/2000', undefined],
      ['PUT', '/api/v1/tenants/t-iso-b/agents/2000', { name: 'hijacked' }],
      ['DELETE', '/api/v1/tenants/t-iso-b/agents/2000', undefined],
      ['PUT', '/api/v1/tenants/t-iso-b/agents/2000/status', { status: 'busy' }],
      ['GET', '/api/v1/tenants/t-iso-b/reports/summary', undefined],
    ] as const) {
      const res = await call(method, path, { as: asA, body });
      const text = await res.clone().text();
      await expectProblem(res, 403);
      expect(text).not.toContain('Agent of B');
    }
    expect(await (await asTenant('t-iso-b', 'GET', '/agents/2000')).json()).toMatchObject({ name: 'Agent of B', status: 'offline' });
  });

  it('refuses a tenant scope the tenants claim does not list, and non-tenant scopes on tenant routes', async () => {
    const path = '/api/v1/tenants/t-iso-b/agents';
    await expectProblem(await call('GET', path, { as: { scope: { type: 'tenant', id: 't-iso-b' }, tenants: ['t-iso-a'] } }), 403);
    await expectProblem(await call('GET', path, { as: { scope: { type: 'division', id: 't-iso-b' }, tenants: ['t-iso-b'] } }), 403);
  });

  it('ignores X-Tenant-Id and X-User-Id: only the assertion decides', async () => {
    const res = await call('GET', '/api/v1/tenants/t-iso-a/agents', {
      as: tenantGrant('t-iso-a'),
      headers: { 'x-tenant-id': 't-iso-b', 'x-user-id': 'mallory', 'x-tiergate-tenant': 't-iso-b' },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { items: Record<string, unknown>[] };
    expect(body.items).toEqual([expect.objectContaining({ tenantId: 't-iso-a', name: 'Agent of A' })]);
  });
});

describe('agent status', () => {
  const t = 't-status';

  it('changes only the status, which a replace keeps', async () => {
    expect((await asTenant(t, 'POST', '/agents', { agentNo: '7', name: 'Seven' })).status).toBe(201);
    const set = await asTenant(t, 'PUT', '/agents/7/status', { status: 'available' });
    expect(set.status).toBe(200);
    expect(await set.json()).toMatchObject({ agentNo: '7', name: 'Seven', status: 'available' });
    const replaced = (await (await asTenant(t, 'PUT', '/agents/7', { name: 'Seven B' })).json()) as Record<string, unknown>;
    expect(replaced).toMatchObject({ name: 'Seven B', status: 'available' });
    await expectProblem(await asTenant(t, 'PUT', '/agents/7/status', { status: 'sleeping' }), 400);
    await expectProblem(await asTenant(t, 'PUT', '/agents/7/status', { status: 'busy', name: 'x' }), 400);
    await expectProblem(await asTenant(t, 'PUT', '/agents/8/status', { status: 'busy' }), 404);
    const get = await asTenant(t, 'GET', '/agents/7/status');
    await expectProblem(get, 405);
    expect(get.headers.get('allow')).toBe('PUT');
  });
});

describe('call records', () => {
  const t = 't-calls';

  it('are read-only through the API and inserted with insertCallRecord', async () => {
    const record = {
      callId: 'c1',
      direction: 'inbound' as const,
      from: '+14155550100',
      to: '+14155550199',
      agentNo: '2000',
      startedAt: '2025-01-02T03:04:05.000Z',
      answeredAt: '2025-01-02T03:04:10.000Z',
      endedAt: '2025-01-02T03:06:10.000Z',
      durationSeconds: 120,
      disposition: 'answered' as const,
    };
    expect(await insertCallRecord(db, t, record)).toBe(true);
    expect(await insertCallRecord(db, t, record)).toBe(false);
    await expect(insertCallRecord(db, t, { ...record, callId: 'c2', disposition: 'lost' as never })).rejects.toThrow();

    const got = await asTenant(t, 'GET', '/call-records/c1');
    expect(got.status).toBe(200);
    expect(await got.json()).toEqual({ ...record, tenantId: t, queueNo: null });
    const list = (await (await asTenant(t, 'GET', '/call-records')).json()) as { items: unknown[] };
    expect(list.items).toHaveLength(1);
    await expectProblem(await asTenant('t-calls-other', 'GET', '/call-records/c1'), 404);

    for (const [method, path] of [
      ['POST', '/call-records'],
      ['PUT', '/call-records/c1'],
      ['PATCH', '/call-records/c1'],
      ['DELETE', '/call-records/c1'],
    ] as const) {
      const res = await asTenant(t, method, path, { callId: 'c1' });
      await expectProblem(res, 405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
    }
    expect((await asTenant(t, 'GET', '/call-records/c1')).status).toBe(200);
  });
});

describe('reports', () => {
  async function seed(tenant: string, agents: number, calls: ('answered' | 'missed')[]) {
    for (let i = 0; i < agents; i += 1) {
      expect((await asTenant(tenant, 'POST', '/agents', { agentNo: `a${i}`, name: `Agent ${i}` })).status).toBe(201);
    }
    for (const [i, disposition] of calls.entries()) {
      await insertCallRecord(db, tenant, {
        callId: `call-${i}`,
        direction: 'inbound',
        from: '+441234567',
        to: '+441234568',
        startedAt: '2025-03-01T10:00:00Z',
        durationSeconds: disposition === 'answered' ? 60 : 0,
        disposition,
      });
    }
  }

  beforeAll(async () => {
    await seed('t-rep-1', 2, ['answered', 'missed']);
    await seed('t-rep-2', 1, ['answered']);
    await seed('t-rep-3', 5, ['answered', 'answered', 'answered']);
    expect((await asTenant('t-rep-1', 'PUT', '/agents/a0/status', { status: 'busy' })).status).toBe(200);
  });

  it('summarises one tenant', async () => {
    const res = await asTenant('t-rep-1', 'GET', '/reports/summary');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      tenantId: 't-rep-1',
      resources: { agents: 2, queues: 0, 'call-records': 2 },
      agentsByStatus: { busy: 1, offline: 1, available: 0 },
      calls: { total: 2, answered: 1, missed: 1, inbound: 2, talkSeconds: 60 },
    });
  });

  it('aggregates a division over exactly the tenants in the assertion', async () => {
    const as: Grant = { scope: { type: 'division', id: 'div-1' }, tenants: ['t-rep-1', 't-rep-2', 't-rep-empty'] };
    const res = await call('GET', '/api/v1/divisions/div-1/reports/summary', { as });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      scope: unknown;
      tenantCount: number;
      totals: { resources: Record<string, number>; calls: Record<string, number> };
      tenants: { tenantId: string; resources: Record<string, number> }[];
    };
    expect(body.scope).toEqual({ type: 'division', id: 'div-1' });
    expect(body.tenantCount).toBe(3);
    expect(body.tenants.map((t) => [t.tenantId, t.resources.agents])).toEqual([
      ['t-rep-1', 2],
      ['t-rep-2', 1],
      ['t-rep-empty', 0],
    ]);
    expect(body.totals.resources.agents).toBe(3); // t-rep-3's five agents are not in the claim
    expect(body.totals.calls).toMatchObject({ total: 3, answered: 2, missed: 1, talkSeconds: 120 });
  });

  it('aggregates an organization, and refuses a scope that is not the path node', async () => {
    const org: Grant = { scope: { type: 'organization', id: 'org-1' }, tenants: ['t-rep-1', 't-rep-2', 't-rep-3'] };
    const res = await call('GET', '/api/v1/organizations/org-1/reports/summary', { as: org });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ tenantCount: 3, totals: { resources: { agents: 8 }, calls: { total: 6, answered: 5 } } });

    // Each bound to the path it is sent to, so what refuses them is the scope, not the binding.
    await expectProblem(await call('GET', '/api/v1/organizations/org-2/reports/summary', { as: org }), 403);
    await expectProblem(await call('GET', '/api/v1/divisions/org-1/reports/summary', { as: org }), 403);
    await expectProblem(await call('GET', '/api/v1/divisions/t-rep-1/reports/summary', { as: tenantGrant('t-rep-1') }), 403);
  });
});

describe('routing and storage', () => {
  it('answers unknown routes 404 with an assertion, 401 without', async () => {
    const as = tenantGrant('t-route');
    await expectProblem(await call('GET', '/api/v1/tenants/t-route/widgets', { as }), 404);
    await expectProblem(await call('GET', '/api/v2/anything', { as }), 404);
    await expectProblem(await call('GET', '/api/v2/anything'), 401);
  });

  it('applies migrations once: re-running is a no-op that keeps the data', async () => {
    expect((await asTenant('t-migrate', 'POST', '/queues', { queueNo: 'q', name: 'Kept' })).status).toBe(201);
    expect(await migrate(db, TENANT_SERVICE_COMPONENT, TENANT_SERVICE_MIGRATIONS)).toBe(0);
    const applied = await db.query<{ n: number }>('select count(*)::int as n from schema_migrations where component = $1', [
      TENANT_SERVICE_COMPONENT,
    ]);
    expect(applied.rows[0]?.n).toBe(TENANT_SERVICE_MIGRATIONS.length);
    expect(await (await asTenant('t-migrate', 'GET', '/queues/q')).json()).toMatchObject({ name: 'Kept' });
  });

  it('serves over real HTTP with startTenantService and stops cleanly', async () => {
    expect((await asTenant('t-http', 'POST', '/agents', { agentNo: '2000', name: 'Over HTTP' })).status).toBe(201);
    const svc = await startTenantService({ db, verifyKey, audience: AUDIENCE, port: 0 });
    try {
      expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);
      const item = `${svc.url}/api/v1/tenants/t-http/agents/2000`;
      const token = await tenantAssertion('t-http', 'GET', '/api/v1/tenants/t-http/agents/2000');
      const res = await fetch(item, { headers: { [ASSERTION_HEADER]: token } });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      expect(await res.json()).toMatchObject({ agentNo: '2000', name: 'Over HTTP' });
      expect((await fetch(item)).status).toBe(401);
      // Through the node server too, the binding sees the method and path as sent.
      expect((await fetch(item, { method: 'DELETE', headers: { [ASSERTION_HEADER]: token } })).status).toBe(401);
      expect((await fetch(item, { headers: { [ASSERTION_HEADER]: token } })).status).toBe(200);
    } finally {
      await svc.close();
    }
    await expect(fetch(`${svc.url}/healthz`)).rejects.toThrow();
    // The caller's database stays open.
    expect((await db.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
  });

  it('reports only: the report routes over the same database, every other route 404', async () => {
    expect((await asTenant('t-ro', 'POST', '/agents', { agentNo: '1', name: 'Counted' })).status).toBe(201);
    const svc = await startTenantService({ db, verifyKey, audience: AUDIENCE, port: 0, only: 'reports' });
    const get = async (path: string) => fetch(`${svc.url}${path}`, { headers: { [ASSERTION_HEADER]: await tenantAssertion('t-ro', 'GET', path) } });
    try {
      const summary = await get('/api/v1/tenants/t-ro/reports/summary');
      expect(summary.status).toBe(200);
      expect(await summary.json()).toMatchObject({ tenantId: 't-ro', resources: { agents: 1 } });
      await expectProblem(await get('/api/v1/tenants/t-ro/agents'), 404);
      await expectProblem(await get('/api/v1/tenants/t-ro/agents/1'), 404);
      // The whole service, on the same database, still has the agent.
      expect((await asTenant('t-ro', 'GET', '/agents/1')).status).toBe(200);
    } finally {
      await svc.close();
    }
  });
});

describe('settings from the assertion', () => {
  const settings = (tenant: string, values: Record<string, unknown>, source = 'division:d9') => ({
    node: `tenant:${tenant}`,
    values,
    sources: Object.fromEntries(Object.keys(values).map((k) => [k, source])),
  });
  const as = (tenant: string, values: Record<string, unknown>): Grant => ({ ...tenantGrant(tenant), settings: settings(tenant, values) });

  it('refuses an agent beyond quota.agents with 409, naming the quota and where it was set', async () => {
    const grant = as('t-quota', { 'quota.agents': 1 });
    expect((await call('POST', '/api/v1/tenants/t-quota/agents', { as: grant, body: { agentNo: '1', name: 'A' } })).status).toBe(201);
    const p = await expectProblem(await call('POST', '/api/v1/tenants/t-quota/agents', { as: grant, body: { agentNo: '2', name: 'B' } }), 409);
    expect(p).toMatchObject({ type: 'https://tiergate.dev/problems/quota-exceeded', quota: 'quota.agents', limit: 1, setBy: 'division:d9', current: 1 });
    expect(p.detail).toBe('quota.agents is 1 (set by division:d9) and this tenant has 1; nothing was created');
    // Queues are not capped by it; without the claim nothing is.
    expect((await call('POST', '/api/v1/tenants/t-quota/queues', { as: grant, body: { queueNo: '1', name: 'Q' } })).status).toBe(201);
    expect((await asTenant('t-quota', 'POST', '/agents', { agentNo: '2', name: 'B' })).status).toBe(201);
  });

  it('hides call records older than recording.retention_days', async () => {
    const day = 86_400_000;
    for (const [id, ago] of [['recent', 10], ['old', 100]] as const) {
      await insertCallRecord(db, 't-ret', {
        callId: id,
        direction: 'inbound',
        from: '+4930123',
        to: '+4930456',
        startedAt: new Date(Date.now() - ago * day).toISOString(),
        disposition: 'answered',
      });
    }
    const grant = as('t-ret', { 'recording.retention_days': 30 });
    const list = await call('GET', '/api/v1/tenants/t-ret/call-records', { as: grant });
    expect(((await list.json()) as { items: { callId: string }[] }).items.map((r) => r.callId)).toEqual(['recent']);
    await expectProblem(await call('GET', '/api/v1/tenants/t-ret/call-records/old', { as: grant }), 404);
    expect((await call('GET', '/api/v1/tenants/t-ret/call-records/recent', { as: grant })).status).toBe(200);
    const longer = await call('GET', '/api/v1/tenants/t-ret/call-records', { as: as('t-ret', { 'recording.retention_days': 365 }) });
    expect(((await longer.json()) as { items: unknown[] }).items).toHaveLength(2);
  });

  it('reports the local day in the tenant\'s timezone', async () => {
    await insertCallRecord(db, 't-tz', { callId: 'now', direction: 'inbound', from: '+1', to: '+2', startedAt: new Date().toISOString(), disposition: 'answered' });
    for (const tz of ['Pacific/Kiritimati', 'Pacific/Pago_Pago']) {
      const res = await call('GET', '/api/v1/tenants/t-tz/reports/summary', { as: as('t-tz', { timezone: tz }) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { timezone: string; today: { date: string; startsAt: string; calls: number } };
      expect(body.timezone).toBe(tz);
      expect(body.today.date).toBe(new Intl.DateTimeFormat('en-CA', { timeZone: tz }).format(new Date()));
      // Local midnight of that date, in that zone.
      expect(new Intl.DateTimeFormat('en-CA', { timeZone: tz, hourCycle: 'h23', hour: '2-digit', minute: '2-digit' }).format(new Date(body.today.startsAt))).toBe('00:00');
      expect(body.today.calls).toBe(1);
    }
  });
});
