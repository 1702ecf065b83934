// The forward-auth decision endpoints called directly, byte for byte, by a trusted
// peer (127.0.0.2, the only entry of TRUSTED_PROXIES) and by an untrusted one
// (127.0.0.1): the original request is read only from the mode's own place and only
// from the trusted peer, canonicalised and refused exactly as in proxy mode, and an
// allowed answer carries the same assertion proxy mode sends upstream.
import { compactVerify, createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { ASSERTION_HEADER, ASSERTION_ISSUER } from '../../src/shared/assertion.js';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import { useCleanup } from '../support/cleanup.js';
import { sendRaw, type RawResponse } from '../support/raw-http.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { adminOk, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

const PROXY = '127.0.0.2';
const AGENTS = '/api/v1/tenants/t1/agents';

let s: TestStack;
let upstream: RecordingUpstream;
let tom: string;
let ozzy: string;

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  s = await startTestStack({ platformAdmins: ['pat'], upstreamUrl: upstream.url, env: { TRUSTED_PROXIES: `${PROXY}/32` } });
  const ok = (sub: string, method: string, path: string, body?: unknown) => adminOk(s, sub, method, path, body);
  await ok('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await ok('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't2', name: 'T2' });
  await ok('olivia', 'PUT', '/tenants/t1/roles/admin/tom');
  tom = `Authorization: ${await s.authHeader('tom')}`;
  ozzy = `Authorization: ${await s.authHeader('ozzy')}`;
});

/** nginx mode: GET /forward-auth/nginx with the original request in X-Original-Method / X-Original-URI. */
function askNginx(method: string, uri: string, headers: string[] = [tom], from = PROXY): Promise<RawResponse> {
  return sendRaw(s.gatewayPort, 'GET /forward-auth/nginx', [`X-Original-Method: ${method}`, `X-Original-URI: ${uri}`, ...headers], { localAddress: from });
}

function problemOf(res: RawResponse): { status: number; type: string | undefined; contentType: string | undefined } {
  return { status: res.status, type: (res.json as { type?: string } | undefined)?.type, contentType: res.headers['content-type'] };
}

const typeOf = (slug: string) => `https://tiergate.dev/problems/${slug}`;

describe('who may ask', () => {
  it('a trusted peer gets a decision; the upstream is never called in decision mode', async () => {
    upstream.clear();
    const res = await askNginx('GET', AGENTS);
    expect(res.status, res.body).toBe(200);
    expect(res.body).toBe('');
    expect(res.headers['x-tiergate-subject']).toBe('tom');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(upstream.received).toEqual([]);
  });

  it.each([
    ['nginx', 'GET /forward-auth/nginx', [`X-Original-Method: GET`, `X-Original-URI: ${AGENTS}`]],
    ['traefik', 'GET /forward-auth/traefik', [`X-Forwarded-Method: GET`, `X-Forwarded-Uri: ${AGENTS}`, 'X-Forwarded-Proto: https', 'X-Forwarded-Host: example.com']],
    ['envoy', `GET /forward-auth/envoy${AGENTS}`, []],
  ])('%s: a peer not in TRUSTED_PROXIES is refused 403 untrusted-peer, whatever it sends', async (_mode, line, headers) => {
    const res = await sendRaw(s.gatewayPort, line, [...headers, tom]);
    expect(problemOf(res)).toEqual({ status: 403, type: typeOf('untrusted-peer'), contentType: PROBLEM_CONTENT_TYPE });
    expect(res.headers['x-tiergate-assertion']).toBeUndefined();
    // The same question from the trusted peer is allowed: the refusal was the peer.
    expect((await sendRaw(s.gatewayPort, line, [...headers, tom], { localAddress: PROXY })).status).toBe(200);
  });

  it('a spoofed X-Original-URI or X-Forwarded-Uri from an untrusted client changes nothing: still 403 untrusted-peer', async () => {
    for (const spoof of [`X-Original-URI: ${AGENTS}`, `X-Forwarded-Uri: ${AGENTS}`, `X-Original-URL: ${AGENTS}`]) {
      const res = await sendRaw(s.gatewayPort, 'GET /forward-auth/nginx', ['X-Original-Method: GET', spoof, tom]);
      expect(problemOf(res).type, spoof).toBe(typeOf('untrusted-peer'));
    }
  });
});

describe('where the original request is read from', () => {
  it('nginx mode reads X-Original-URI only: an X-Forwarded-Uri naming an allowed path does not matter', async () => {
    const res = await sendRaw(
      s.gatewayPort,
      'GET /forward-auth/nginx',
      ['X-Original-Method: GET', 'X-Original-URI: /api/v1/tenants/t2/agents', `X-Forwarded-Uri: ${AGENTS}`, 'X-Forwarded-Method: GET', tom],
      { localAddress: PROXY },
    );
    expect(problemOf(res).status).toBe(403);
    expect(res.json.permission).toBe('can_read_operational');
  });

  it('Traefik mode reads X-Forwarded-Method / X-Forwarded-Uri only: an X-Original-URI naming an allowed path does not matter', async () => {
    const res = await sendRaw(
      s.gatewayPort,
      'GET /forward-auth/traefik',
      ['X-Forwarded-Method: GET', 'X-Forwarded-Uri: /api/v1/tenants/t2/agents', `X-Original-URI: ${AGENTS}`, 'X-Original-Method: GET', tom],
      { localAddress: PROXY },
    );
    expect(problemOf(res).status).toBe(403);
    const allowed = await sendRaw(s.gatewayPort, 'GET /forward-auth/traefik', ['X-Forwarded-Method: GET', `X-Forwarded-Uri: ${AGENTS}`, tom], { localAddress: PROXY });
    expect(allowed.status).toBe(200);
  });

  it('Envoy mode uses the request method and the path behind the prefix, not any header', async () => {
    const post = await sendRaw(s.gatewayPort, `POST /forward-auth/envoy${AGENTS}`, [tom, 'X-Original-URI: /api/v1/tenants/t2/agents'], { localAddress: PROXY });
    expect(post.status, post.body).toBe(200);
    expect(decodeJwt(post.headers[ASSERTION_HEADER]!)).toMatchObject({ htm: 'POST', htu: AGENTS });
    const other = await sendRaw(s.gatewayPort, 'GET /forward-auth/envoy/api/v1/tenants/t2/agents', [tom, `X-Original-URI: ${AGENTS}`], { localAddress: PROXY });
    expect(problemOf(other).status).toBe(403);
  });

  it.each([
    ['missing', ['X-Original-Method: GET'], 'is missing'],
    ['sent twice', ['X-Original-Method: GET', `X-Original-URI: ${AGENTS}`, `X-Original-URI: ${AGENTS}`], 'was sent 2 times'],
    ['named by Connection', ['X-Original-Method: GET', `X-Original-URI: ${AGENTS}`, 'Connection: close, X-Original-URI'], 'Connection'],
  ])('an X-Original-URI that is %s is refused 400 invalid-original-request', async (_name, headers, why) => {
    const res = await sendRaw(s.gatewayPort, 'GET /forward-auth/nginx', [...headers, tom], { localAddress: PROXY });
    expect(problemOf(res)).toEqual({ status: 400, type: typeOf('invalid-original-request'), contentType: PROBLEM_CONTENT_TYPE });
    expect(res.json.detail).toContain(why);
  });

  it.each([
    ['a query', 'GET /forward-auth/nginx?uri=/api/v1/tenants/t1/agents'],
    ['a dot segment', 'GET /forward-auth/x/../nginx'],
    ['an encoded letter', 'GET /forward-auth/%6Eginx'],
    ['no path behind the Envoy prefix', 'GET /forward-auth/x/../envoy/api/v1/tenants/t1/agents'],
  ])('a decision endpoint reached with %s in its own target is refused 400', async (_name, line) => {
    const res = await sendRaw(s.gatewayPort, line, ['X-Original-Method: GET', `X-Original-URI: ${AGENTS}`, tom], { localAddress: PROXY });
    expect(res.status, res.body).toBe(400);
    expect(res.headers['x-tiergate-assertion']).toBeUndefined();
  });
});

describe('answers', () => {
  it('allowed: the same assertion proxy mode sends upstream for the same canonical request, verifiable with the JWKS', async () => {
    upstream.clear();
    const decision = await askNginx('GET', `${AGENTS}/a1?x=1`);
    expect(decision.status).toBe(200);
    const proxied = await sendRaw(s.gatewayPort, `GET ${AGENTS}/a1?x=1`, [tom]);
    expect(proxied.status).toBe(200);
    expect(upstream.received).toHaveLength(1);
    const fromProxy = upstream.received[0]!.headers[ASSERTION_HEADER] as string;
    const fromDecision = decision.headers[ASSERTION_HEADER]!;
    const { iat: _i1, exp: _e1, ...proxyClaims } = decodeJwt(fromProxy);
    const { iat: _i2, exp: _e2, ...decisionClaims } = decodeJwt(fromDecision);
    expect(decisionClaims).toEqual(proxyClaims);
    const { settings, ...identity } = decisionClaims;
    expect(identity).toEqual({ iss: ASSERTION_ISSUER, aud: 'tenant-service', sub: 'tom', scope: { type: 'tenant', id: 't1' }, tenants: ['t1'], htm: 'GET', htu: `${AGENTS}/a1` });
    // The tenant's effective settings travel with the decision as with a proxied request.
    expect(settings).toMatchObject({ node: 'tenant:t1', values: expect.any(Object) });
    const keys = createLocalJWKSet(s.gateway.assertionJwks);
    await expect(jwtVerify(fromDecision, keys, { issuer: ASSERTION_ISSUER, audience: 'tenant-service' })).resolves.toBeTruthy();
    await expect(compactVerify(fromDecision, keys)).resolves.toBeTruthy();
  });

  it('denied: 403 problem naming the missing permission and the deny-reason header, no assertion', async () => {
    const res = await askNginx('DELETE', `${AGENTS}/a1`, [ozzy]);
    expect(problemOf(res)).toEqual({ status: 403, type: typeOf('forbidden'), contentType: PROBLEM_CONTENT_TYPE });
    expect(res.json.permission).toBe('can_write');
    expect(res.headers['x-tiergate-deny-reason']).toBe('missing can_write');
    expect(res.headers[ASSERTION_HEADER]).toBeUndefined();
  });

  it('no token: 401 with the Bearer challenge; a bad token: 401 invalid_token', async () => {
    const none = await askNginx('GET', AGENTS, []);
    expect(problemOf(none)).toEqual({ status: 401, type: typeOf('unauthenticated'), contentType: PROBLEM_CONTENT_TYPE });
    expect(none.headers['www-authenticate']).toBe('Bearer');
    const bad = await askNginx('GET', AGENTS, ['Authorization: Bearer a.b.c']);
    expect(bad.status).toBe(401);
    expect(bad.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
  });

  it('404 for a path no rule matches, 405 with Allow for a method the route lacks, 400 for a bad id: as in proxy mode', async () => {
    const cases: Array<[string, string]> = [
      ['GET', '/api/v1/nothing/here'],
      ['DELETE', AGENTS],
      ['GET', '/api/v1/tenants/t1/agents/-bad'],
    ];
    for (const [method, path] of cases) {
      const decision = await askNginx(method, path);
      const proxied = await sendRaw(s.gatewayPort, `${method} ${path}`, [tom]);
      expect(problemOf(decision), `${method} ${path}`).toEqual(problemOf(proxied));
      expect(decision.headers.allow).toBe(proxied.headers.allow);
    }
    expect((await askNginx('DELETE', AGENTS)).headers.allow).toBe('GET, POST');
  });

  it.each([
    ['lower case', 'get'],
    ['unknown', 'FROB'],
    ['empty', ''],
  ])('an original method that is %s is refused 400 invalid-method', async (_name, method) => {
    const res = await askNginx(method, AGENTS);
    expect(problemOf(res)).toEqual({ status: 400, type: typeOf('invalid-method'), contentType: PROBLEM_CONTENT_TYPE });
  });
});

describe('the original target is refused exactly as a proxied one', () => {
  const targets = [
    `/api/v1/tenants/t2/../t1/agents`,
    `/api/v1/tenants/t1/./agents`,
    `/api/v1/tenants/t2/%2e%2E/t1/agents`,
    `/api/v1/tenants/t1%2Fagents`,
    `/api/v1/tenants/t1/agents%5Ca1`,
    `/api/v1/tenants/t1/agents/%252e%252e`,
    `/api/v1/tenants/t1/agents;jsessionid=1`,
    `/api/v1/tenants/t1/agents/a1%3Bx`,
    `/api/v1/tenants/t1//agents`,
    `/api/v1/tenants/t1/agents/`,
    `/api/v1/tenants/t1/agents/%00`,
    `/api/v1/tenants/t1/agents/%C3%A9`,
    `/api/v1/tenants/t1/agents/%zz`,
    `/api/v1/tenants/t1/agents?access_token=abc`,
    `/api/v1/tenants/t1/agents#top`,
    `/api/v1/tenants/t1/agents/a"b`,
    `/api/v1/tenants/t1/agents/${'a'.repeat(2100)}`,
  ];
  it.each(targets.map((t) => [t.length > 80 ? `${t.slice(0, 60)}… (${t.length} characters)` : t, t]))('%s', async (_name, target) => {
    const proxied = await sendRaw(s.gatewayPort, `GET ${target}`, [tom]);
    const decision = await askNginx('GET', target);
    const envoy = await sendRaw(s.gatewayPort, `GET /forward-auth/envoy${target.startsWith('/') ? '' : '/'}${target}`, [tom], { localAddress: PROXY });
    expect(proxied.status).toBe(400);
    expect(problemOf(decision)).toEqual(problemOf(proxied));
    expect(decision.headers['www-authenticate']).toBe(proxied.headers['www-authenticate']);
    if (target.startsWith('/')) expect(problemOf(envoy)).toEqual(problemOf(proxied));
  });

  it('an override header the client sent is refused in decision mode too', async () => {
    const res = await askNginx('GET', AGENTS, [tom, 'X-HTTP-Method-Override: DELETE']);
    expect(problemOf(res)).toEqual({ status: 400, type: typeOf('override-header'), contentType: PROBLEM_CONTENT_TYPE });
  });
});

describe('rate limits', () => {
  it('an allowed decision carries the RateLimit fields for the ingress; over the limit the answer is 429 rate-limited', async () => {
    const ok = (sub: string, method: string, path: string, body?: unknown) => adminOk(s, sub, method, path, body);
    await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't3', name: 'T3' });
    await ok('olivia', 'PUT', '/tenants/t3/roles/admin/tom');
    await ok('olivia', 'PUT', '/tenants/t3/settings/document/api.rate_limit_per_minute', { set: 2 });
    const uri = '/api/v1/tenants/t3/agents';
    for (const left of [1, 0]) {
      const res = await askNginx('GET', uri);
      expect(res.status, res.body).toBe(200);
      expect(res.headers[ASSERTION_HEADER]).toBeDefined();
      expect(res.headers['ratelimit-policy']).toBe('"node";q=2;w=60');
      expect(res.headers['ratelimit']).toMatch(new RegExp(`^"node";r=${left};t=\\d+$`));
    }
    const refused = await sendRaw(s.gatewayPort, `GET /forward-auth/envoy${uri}`, [tom], { localAddress: PROXY });
    expect(problemOf(refused)).toEqual({ status: 429, type: typeOf('rate-limited'), contentType: PROBLEM_CONTENT_TYPE });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(refused.headers['ratelimit-policy']).toBe('"node";q=2;w=60');
    expect(refused.headers['ratelimit']).toMatch(/^"node";r=0;t=\d+$/);
    expect(refused.headers[ASSERTION_HEADER]).toBeUndefined();
  });
});
