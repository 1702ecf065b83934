import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicaliseRequest, canonicaliseTarget, checkHeaders, normalise, requestErrorResponse } from '../../../src/gateway/normalise.js';
import type { GatewayEnv } from '../../../src/gateway/types.js';
import { renderGatewayError } from '../../../src/gateway/app.js';
import { serveRaw, type RawServer } from '../../support/raw-http.js';

const MAX_PATH = 256;
const MAX_HEADERS = 2048;

function app(): Hono<GatewayEnv> {
  const a = new Hono<GatewayEnv>();
  a.onError(renderGatewayError);
  a.use('*', async (c, next) => {
    c.set('requestId', 'req-1');
    await next();
  });
  a.use('*', normalise({ maxPathLength: MAX_PATH, maxHeaderBytes: MAX_HEADERS }));
  a.all('*', (c) => c.json(c.var.canonical));
  return a;
}

function refusedSlug(target: string): string | undefined {
  const r = canonicaliseTarget(target, MAX_PATH);
  return r.ok ? undefined : r.refusal.slug;
}

describe('canonicaliseTarget: accepted targets', () => {
  it('splits path, segments and query, keeping the query as sent', () => {
    const r = canonicaliseTarget('/api/v1/tenants/t1/agents/2000?limit=5&q=a%20b', MAX_PATH);
    expect(r).toEqual({
      ok: true,
      value: { path: '/api/v1/tenants/t1/agents/2000', segments: ['api', 'v1', 'tenants', 't1', 'agents', '2000'], query: 'limit=5&q=a%20b' },
    });
  });

  it('decodes escapes of safe characters once (RFC 3986 equivalence)', () => {
    const r = canonicaliseTarget('/api/v1/tenants/t%31/agents/a%2Db', MAX_PATH);
    expect(r.ok && r.value.path).toBe('/api/v1/tenants/t1/agents/a-b');
  });

  it('keeps subject-id characters (SUBJECT_ID) in a segment, raw or encoded', () => {
    expect(canonicaliseTarget('/admin/v1/users/auth0%7C123/x@y.z', MAX_PATH)).toMatchObject({ ok: true, value: { segments: ['admin', 'v1', 'users', 'auth0|123', 'x@y.z'] } });
  });

  it('keeps dots inside a segment and the root path', () => {
    expect(canonicaliseTarget('/.well-known/jwks.json', MAX_PATH)).toMatchObject({ ok: true, value: { segments: ['.well-known', 'jwks.json'] } });
    expect(canonicaliseTarget('/', MAX_PATH)).toMatchObject({ ok: true, value: { path: '/', segments: [] } });
  });

  it('takes the path of an absolute-form target', () => {
    expect(canonicaliseTarget('http://gw.example/api/v1/x?y=1', MAX_PATH)).toMatchObject({ ok: true, value: { path: '/api/v1/x', query: 'y=1' } });
    expect(refusedSlug('http://gw.example/a/../b')).toBe('dot-segment');
  });
});

describe('canonicaliseTarget: refused targets', () => {
  it.each([
    ['/api/v1/tenants/t1/../t2/agents', 'dot-segment'],
    ['/api/v1/./tenants', 'dot-segment'],
    ['/api/v1/tenants/t1/%2e%2E/t2', 'dot-segment'],
    ['/api/v1/tenants/t1/.%2e/t2', 'dot-segment'],
    ['/api/v1/tenants/t1/%2E', 'dot-segment'],
    ['/api/v1/tenants/t1%2Ft2', 'encoded-slash'],
    ['/api/v1/tenants/t1%2ft2', 'encoded-slash'],
    ['/api/v1/tenants/t1%5ct2', 'encoded-backslash'],
    ['/api/v1/tenants/t1\\t2', 'backslash'],
    ['/api/v1/tenants/%252e%252e', 'double-encoding'],
    ['/api/v1/tenants/t1%25', 'double-encoding'],
    ['/api/v1/tenants/t1;jsessionid=x', 'path-parameter'],
    ['/api/v1/tenants/t1%3Bx', 'path-parameter'],
    ['/api/v1/tenants/t1%00', 'control-character'],
    ['/api/v1/tenants/t1%0d%0aX-Injected:1', 'control-character'],
    ['/api/v1/tenants/t1\u0001', 'control-character'],
    ['/api/v1/tenants/t1%7F', 'control-character'],
    ['/api/v1/tenants/caf\u00e9', 'non-ascii'],
    ['/api/v1/tenants/caf%C3%A9', 'non-ascii'],
    ['/api/v1//tenants', 'empty-segment'],
    ['/api/v1/tenants/', 'empty-segment'],
    ['/api/v1/tenants/t1%2', 'malformed-encoding'],
    ['/api/v1/tenants/t1%zz', 'malformed-encoding'],
    ['/api/v1/tenants/t1%3Fx', 'disallowed-character'],
    ['/api/v1/tenants/t1%20x', 'disallowed-character'],
    ['/api/v1/tenants/{t1}', 'disallowed-character'],
    ['/api/v1/tenants/t1#frag', 'invalid-request-target'],
    ['*', 'invalid-request-target'],
    ['api/v1', 'invalid-request-target'],
  ])('%s → %s', (target, slug) => {
    expect(refusedSlug(target)).toBe(slug);
  });

  it('refuses a path over the limit without echoing it', () => {
    const long = `/${'a'.repeat(MAX_PATH)}`;
    const r = canonicaliseTarget(long, MAX_PATH);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.refusal.slug).toBe('path-too-long');
      expect(r.refusal.detail).toContain(`${MAX_PATH + 1} characters`);
      expect(r.refusal.detail.length).toBeLessThan(100);
    }
    expect(canonicaliseTarget(`/${'a'.repeat(MAX_PATH - 1)}`, MAX_PATH).ok).toBe(true);
  });

  it('names the offending segment with a bounded, printable excerpt', () => {
    const r = canonicaliseTarget(`/api/${'x'.repeat(500)}%00`, 1000);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.refusal.detail).toMatch(/^path segment 2 \("x{48}…"\) contains an encoded NUL$/);
    }
    const ctl = canonicaliseTarget('/api/a\u0001b', MAX_PATH);
    expect(!ctl.ok && ctl.refusal.detail).toContain('a\\x01b');
  });

  it.each(['access_token=abc', 'a=1&access_token=abc', 'ACCESS_TOKEN=x', 'access%5Ftoken=x', '%61ccess_token', 'access_token'])(
    'refuses an access token in the query: %s',
    (query) => {
      expect(refusedSlug(`/api/v1/x?${query}`)).toBe('token-in-query');
    },
  );

  it('accepts access_token as a value or a longer name, refuses a malformed name', () => {
    expect(refusedSlug('/api/v1/x?q=access_token&my_access_token=1')).toBeUndefined();
    expect(refusedSlug('/api/v1/x?%zz=1')).toBe('invalid-query');
  });
});

describe('canonicaliseRequest: the one parser of proxy and decision mode', () => {
  it('adds the method to the canonical target', () => {
    expect(canonicaliseRequest('PATCH', '/api/v1/tenants/t%31/agents/a1?x=1', MAX_PATH)).toEqual({
      ok: true,
      value: { method: 'PATCH', path: '/api/v1/tenants/t1/agents/a1', segments: ['api', 'v1', 'tenants', 't1', 'agents', 'a1'], query: 'x=1' },
    });
  });

  it.each([['get'], ['FROB'], [''], ['GET '], ['G\u0000T']])('refuses the method %j (not one Node parses)', (method) => {
    const r = canonicaliseRequest(method, '/api/v1/x', MAX_PATH);
    expect(r.ok ? undefined : [r.refusal.slug, r.refusal.part]).toEqual(['invalid-method', 'method']);
  });

  it('refuses a target exactly as canonicaliseTarget does', () => {
    for (const target of ['/a/../b', '/a%2Fb', '/a;b', '/a//b', '/a?access_token=x']) {
      const r = canonicaliseRequest('GET', target, MAX_PATH);
      expect(r.ok ? undefined : r.refusal, target).toEqual(refusedOf(target));
    }
  });
});

function refusedOf(target: string) {
  const r = canonicaliseTarget(target, MAX_PATH);
  return r.ok ? undefined : r.refusal;
}

describe('checkHeaders', () => {
  it('counts raw header lines against the limit', () => {
    expect(checkHeaders(['Host', 'x', 'X-Big', 'v'.repeat(100)], 200)).toBeUndefined();
    expect(checkHeaders(['Host', 'x', 'X-Big', 'v'.repeat(200)], 200)?.slug).toBe('headers-too-large');
  });

  it.each(['X-HTTP-Method-Override', 'x-http-method', 'X-Method-Override', 'X-Original-URL', 'X-Rewrite-URL'])('refuses %s', (name) => {
    const r = checkHeaders(['Host', 'x', name, 'DELETE'], MAX_HEADERS);
    expect(r?.slug).toBe('override-header');
    expect(r?.part).toBe(`header.${name.toLowerCase()}`);
  });

  it.each([
    [['Host', 'a', 'Host', 'b'], 'header.host', 'the host header was sent 2 times; send it exactly once'],
    [['host', 'a', 'X-A', '1', 'HOST', 'a'], 'header.host', 'the host header was sent 2 times; send it exactly once'],
    [['Host', 'a', 'Host', 'a', 'hOsT', 'a'], 'header.host', 'the host header was sent 3 times; send it exactly once'],
    [['Host', 'a', 'Content-Type', 'application/json', 'content-type', 'text/plain'], 'header.content-type', 'the content-type header was sent 2 times; send it exactly once'],
  ])('refuses a singleton header sent more than once: %j', (lines, part, detail) => {
    expect(checkHeaders(lines, MAX_HEADERS)).toEqual({ slug: 'duplicate-header', title: 'Header sent more than once', part, detail });
  });

  it('does not take a name of the same length for a singleton header', () => {
    expect(checkHeaders(['Host', 'a', 'Hosu', 'b', 'Content-Typf', 'x', 'Content-Type', 'y', 'Content_Type', 'z'], MAX_HEADERS)).toBeUndefined();
  });

  it('lets ordinary headers through', () => {
    expect(checkHeaders(['Host', 'x', 'X-Http-Method-Overrides', 'x', 'X-Method', 'GET'], MAX_HEADERS)).toBeUndefined();
  });

  it('checks a Headers object (no Node request behind it) the same way', () => {
    expect(checkHeaders(new Headers({ host: 'x', 'x-big': 'v'.repeat(100) }), 200)).toBeUndefined();
    expect(checkHeaders(new Headers({ host: 'x', 'x-big': 'v'.repeat(200) }), 200)?.slug).toBe('headers-too-large');
    expect(checkHeaders(new Headers({ host: 'x', 'x-original-url': '/admin' }), MAX_HEADERS)?.part).toBe('header.x-original-url');
    expect(checkHeaders(new Headers({ host: 'x', 'x-method': 'GET' }), MAX_HEADERS)).toBeUndefined();
  });
});

describe('normalise middleware (app.request)', () => {
  it('sets c.var.canonical for a clean request', async () => {
    const res = await app().request('/api/v1/tenants/t1/agents?x=1', { method: 'PUT' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ method: 'PUT', path: '/api/v1/tenants/t1/agents', segments: ['api', 'v1', 'tenants', 't1', 'agents'], query: 'x=1' });
  });

  it('answers problem+json 400 with the request id and the offending part', async () => {
    const res = await app().request('/api/v1/tenants/t1%2Ft2/agents');
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toEqual({
      type: 'https://tiergate.dev/problems/encoded-slash',
      title: 'Encoded slash in path',
      status: 400,
      detail: 'path segment 4 ("t1%2Ft2") contains an encoded slash (%2F)',
      requestId: 'req-1',
      'invalid-params': [{ name: 'path', reason: 'Encoded slash in path' }],
    });
  });

  it('refuses an override header', async () => {
    const res = await app().request('/api/v1/x', { method: 'POST', headers: { 'X-HTTP-Method-Override': 'DELETE' } });
    expect(res.status).toBe(400);
    expect((await res.json()).title).toBe('Method or URL override header refused');
  });

  it('refuses a token in the query with a Bearer invalid_request challenge', async () => {
    const res = await app().request('/api/v1/x?access_token=eyJ.x.y');
    expect(res.status).toBe(400);
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_request", error_description="token in query string"');
    expect(JSON.stringify(await res.json())).not.toContain('eyJ');
  });

  it('refuses oversized headers', async () => {
    const res = await app().request('/api/v1/x', { headers: { 'x-pad': 'p'.repeat(MAX_HEADERS) } });
    expect(res.status).toBe(400);
    expect((await res.json()).type).toBe('https://tiergate.dev/problems/headers-too-large');
  });
});

describe('normalise on a real Node server (raw request target)', () => {
  let server: RawServer;
  beforeAll(async () => {
    server = await serveRaw(app().fetch as never, requestErrorResponse);
  });
  afterAll(() => server.close());

  it('a raw /t1/../t2 reaches the check (not resolved by the URL parser) and gets 400', async () => {
    const res = await server.send('GET /api/v1/tenants/t1/../t2/agents');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ type: 'https://tiergate.dev/problems/dot-segment', detail: 'path segment 5 ("..") is a dot segment: "." and ".." are refused, not resolved' });
  });

  it.each([
    ['GET /api/v1/tenants/t1/%2e%2E/t2/agents', 'dot-segment'],
    ['GET /api/v1/./tenants/t1/agents', 'dot-segment'],
    ['GET /api/v1/tenants/t1/.%2E/t2', 'dot-segment'],
    ['GET /api/v1//tenants', 'empty-segment'],
    ['GET /api/v1/tenants/t1%5Ct2', 'encoded-backslash'],
  ])('%s → %s', async (line, slug) => {
    const res = await server.send(line);
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(res.body).type).toBe(`https://tiergate.dev/problems/${slug}`);
  });

  it('a raw backslash, refused by @hono/node-server before the app, still answers problem+json', async () => {
    const res = await server.send('GET /api/v1/tenants/t1\\..\\t2');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ title: 'Backslash in path', status: 400 });
  });

  it('absolute-form targets are checked on their raw path', async () => {
    const res = await server.send(`GET http://127.0.0.1:${server.port}/api/v1/a/../b`);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).type).toBe('https://tiergate.dev/problems/dot-segment');
  });

  it('refuses an override header sent on the wire', async () => {
    const res = await server.send('GET /api/v1/x', ['X-Original-URL: /admin']);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).detail).toContain('x-original-url');
  });

  it('passes a clean request with its canonical form', async () => {
    const res = await server.send('GET /api/v1/tenants/t1/agents/2000?a=1');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ method: 'GET', path: '/api/v1/tenants/t1/agents/2000', segments: ['api', 'v1', 'tenants', 't1', 'agents', '2000'], query: 'a=1' });
  });
});
