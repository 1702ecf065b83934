// Every bad-input class of the request-path issue (item 5, plus the token and
// routing rules), sent byte for byte over a socket to a real gateway whose upstream
// is a recording server. Each case carries a valid token that WOULD be allowed for
// the good version of the request, so a refusal can only come from the bad part;
// the good version is sent first and seen to arrive, and after every bad one the
// recording upstream is checked to have received nothing.
import { beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import { useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { sendRaw, type RawResponse } from '../support/raw-http.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { adminOk, seedTenantT1, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

let s: TestStack;
let upstream: RecordingUpstream;
/** tom's Authorization header: tom is the tenant admin of t1 (and nothing else). */
let auth: string;

const GOOD = '/api/v1/tenants/t1/agents/a1';

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  s = await startTestStack({ platformAdmins: ['pat'], upstreamUrl: upstream.url });
  const ok = (sub: string, method: string, path: string, body?: unknown) => adminOk(s, sub, method, path, body);
  await ok('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await ok('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't2', name: 'T2' });
  await ok('olivia', 'PUT', '/tenants/t1/roles/admin/tom');
  auth = `Authorization: ${await s.authHeader('tom')}`;
});

interface Case {
  name: string;
  /** Request line without the HTTP version; a Buffer for bytes that are not latin1 text. */
  line: string | Buffer;
  headers?: string[];
  /** Leave out tom's Authorization header (the case brings its own, or none). */
  noAuth?: boolean;
  status: number;
  /** Problem slug (https://tiergate.dev/problems/<slug>). */
  slug: string;
  check?: (res: RawResponse) => void;
}

const long = (n: number, ch = 'a') => ch.repeat(n);
const utf8Line = (method: string, path: string) => Buffer.concat([Buffer.from(`${method} `), Buffer.from(path, 'utf8')]);

const CASES: Case[] = [
  // ---- dot segments, plain, encoded, mixed case
  { name: '".." segment', line: 'GET /api/v1/tenants/t2/../t1/agents/a1', status: 400, slug: 'dot-segment' },
  { name: '".." back into the same tenant', line: 'GET /api/v1/tenants/t1/agents/../agents/a1', status: 400, slug: 'dot-segment' },
  { name: '"." segment', line: 'GET /api/v1/tenants/t1/./agents/a1', status: 400, slug: 'dot-segment' },
  { name: 'encoded "%2e%2e"', line: 'GET /api/v1/tenants/t2/%2e%2e/t1/agents/a1', status: 400, slug: 'dot-segment' },
  { name: 'encoded "%2E%2E"', line: 'GET /api/v1/tenants/t2/%2E%2E/t1/agents/a1', status: 400, slug: 'dot-segment' },
  { name: 'encoded mixed case "%2e%2E"', line: 'GET /api/v1/tenants/t2/%2e%2E/t1/agents/a1', status: 400, slug: 'dot-segment' },
  { name: 'half encoded ".%2e"', line: 'GET /api/v1/tenants/t2/.%2e/t1/agents/a1', status: 400, slug: 'dot-segment' },
  { name: 'half encoded "%2E."', line: 'GET /api/v1/tenants/t2/%2E./t1/agents/a1', status: 400, slug: 'dot-segment' },
  { name: 'encoded "." segment "%2e"', line: 'GET /api/v1/tenants/t1/%2e/agents/a1', status: 400, slug: 'dot-segment' },
  { name: 'dot segment in an absolute-form target', line: 'GET http://127.0.0.1/api/v1/tenants/t2/../t1/agents/a1', status: 400, slug: 'dot-segment' },

  // ---- encoded slash and backslash, raw backslash
  { name: 'encoded slash "%2f"', line: 'GET /api/v1/tenants/t1%2fagents/a1', status: 400, slug: 'encoded-slash' },
  { name: 'encoded slash "%2F"', line: 'GET /api/v1/tenants/t1/agents%2Fa1', status: 400, slug: 'encoded-slash' },
  { name: 'encoded "..%2f" traversal', line: 'GET /api/v1/tenants/t2/..%2ft1/agents/a1', status: 400, slug: 'encoded-slash' },
  { name: 'encoded backslash "%5c"', line: 'GET /api/v1/tenants/t1%5cagents/a1', status: 400, slug: 'encoded-backslash' },
  { name: 'encoded backslash "%5C"', line: 'GET /api/v1/tenants/t2/..%5Ct1/agents/a1', status: 400, slug: 'encoded-backslash' },
  { name: 'raw backslash', line: 'GET /api/v1/tenants/t1\\agents/a1', status: 400, slug: 'backslash' },
  { name: 'raw backslash traversal', line: 'GET /api/v1/tenants/t2/..\\t1/agents/a1', status: 400, slug: 'backslash' },

  // ---- double encoding
  { name: 'double-encoded dots "%252e%252e"', line: 'GET /api/v1/tenants/t2/%252e%252e/t1/agents/a1', status: 400, slug: 'double-encoding' },
  { name: 'double-encoded slash "%252f"', line: 'GET /api/v1/tenants/t1%252fagents/a1', status: 400, slug: 'double-encoding' },
  { name: 'double-encoded backslash "%255c"', line: 'GET /api/v1/tenants/t1%255cagents/a1', status: 400, slug: 'double-encoding' },

  // ---- ";" path parameters
  { name: '";" parameter on an id', line: 'GET /api/v1/tenants/t1;jsessionid=x/agents/a1', status: 400, slug: 'path-parameter' },
  { name: '";" parameter on the last segment', line: 'GET /api/v1/tenants/t1/agents/a1;x', status: 400, slug: 'path-parameter' },
  { name: 'encoded ";" "%3b"', line: 'GET /api/v1/tenants/t1%3bx/agents/a1', status: 400, slug: 'path-parameter' },
  { name: '";" hiding a dot segment "..;"', line: 'GET /api/v1/tenants/t2/..;/t1/agents/a1', status: 400, slug: 'path-parameter' },

  // ---- NUL and control characters, raw and encoded
  { name: 'encoded NUL "%00"', line: 'GET /api/v1/tenants/t1%00/agents/a1', status: 400, slug: 'control-character' },
  { name: 'encoded newline "%0a"', line: 'GET /api/v1/tenants/t1/agents/a1%0a', status: 400, slug: 'control-character' },
  { name: 'encoded CR "%0D"', line: 'GET /api/v1/tenants/t1/agents/a1%0D', status: 400, slug: 'control-character' },
  { name: 'encoded DEL "%7f"', line: 'GET /api/v1/tenants/t1/agents/a1%7f', status: 400, slug: 'control-character' },
  { name: 'encoded tab "%09"', line: 'GET /api/v1/tenants/t1/agents/a%091', status: 400, slug: 'control-character' },
  // Raw control bytes never reach the app: Node's HTTP parser refuses the request line,
  // and the gateway's clientError handler answers problem+json.
  { name: 'raw NUL', line: 'GET /api/v1/tenants/t1\u0000/agents/a1', status: 400, slug: 'bad-request' },
  { name: 'raw control character 0x01', line: 'GET /api/v1/tenants/t1\u0001/agents/a1', status: 400, slug: 'bad-request' },
  { name: 'raw DEL', line: 'GET /api/v1/tenants/t1/agents/a1\u007f', status: 400, slug: 'bad-request' },

  // ---- non-ASCII
  { name: 'encoded non-ASCII "%C3%A9"', line: 'GET /api/v1/tenants/t%C3%A9/agents/a1', status: 400, slug: 'non-ascii' },
  { name: 'encoded non-ASCII "%e9" (latin-1)', line: 'GET /api/v1/tenants/t1/agents/a%e9', status: 400, slug: 'non-ascii' },
  // Raw non-ASCII bytes are refused by Node's HTTP parser, like raw control bytes.
  { name: 'raw UTF-8 bytes', line: utf8Line('GET', '/api/v1/tenants/t\u00e9/agents/a1'), status: 400, slug: 'bad-request' },
  { name: 'raw latin-1 byte', line: 'GET /api/v1/tenants/t1/agents/a\u00e91', status: 400, slug: 'bad-request' },
  { name: 'encoded fullwidth dot "%EF%BC%8E"', line: 'GET /api/v1/tenants/t2/%EF%BC%8E%EF%BC%8E/t1/agents/a1', status: 400, slug: 'non-ascii' },

  // ---- other malformed paths
  { name: 'malformed escape "%zz"', line: 'GET /api/v1/tenants/t1/agents/a%zz', status: 400, slug: 'malformed-encoding' },
  { name: 'truncated escape "%4"', line: 'GET /api/v1/tenants/t1/agents/a%4', status: 400, slug: 'malformed-encoding' },
  { name: 'empty segment "//"', line: 'GET /api/v1/tenants//t1/agents/a1', status: 400, slug: 'empty-segment' },
  { name: 'trailing slash', line: 'GET /api/v1/tenants/t1/agents/a1/', status: 400, slug: 'empty-segment' },
  { name: 'encoded space', line: 'GET /api/v1/tenants/t1/agents/a%201', status: 400, slug: 'disallowed-character' },
  { name: 'raw fragment "#"', line: 'GET /api/v1/tenants/t1/agents/a1#x', status: 400, slug: 'invalid-request-target' },
  { name: 'asterisk-form target', line: 'OPTIONS *', status: 400, slug: 'invalid-request-target' },

  // ---- overlong path and headers
  { name: 'path longer than MAX_PATH_LENGTH (2048)', line: `GET /api/v1/tenants/t1/agents/${long(2100)}`, status: 400, slug: 'path-too-long' },
  { name: 'headers larger than MAX_HEADER_BYTES (16 KiB)', line: `GET ${GOOD}`, headers: [`X-Pad: ${long(17_000)}`], status: 400, slug: 'headers-too-large' },
  { name: 'many headers adding up past MAX_HEADER_BYTES', line: `GET ${GOOD}`, headers: Array.from({ length: 40 }, (_, i) => `X-Pad-${i}: ${long(500)}`), status: 400, slug: 'headers-too-large' },
  {
    name: "headers larger than Node's parser limit (refused before the app)",
    line: `GET ${GOOD}`,
    headers: [`X-Pad: ${long(40_000)}`],
    status: 400,
    slug: 'bad-request',
  },

  // ---- ids outside ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$
  { name: 'tenant id of 65 characters', line: `GET /api/v1/tenants/${long(65, 't')}/agents/a1`, status: 400, slug: 'invalid-id' },
  { name: 'business id of 65 characters', line: `GET /api/v1/tenants/t1/agents/${long(65)}`, status: 400, slug: 'invalid-id' },
  { name: 'tenant id with a leading "-"', line: 'GET /api/v1/tenants/-t1/agents/a1', status: 400, slug: 'invalid-id' },
  { name: 'business id with a leading "-"', line: 'GET /api/v1/tenants/t1/agents/-a1', status: 400, slug: 'invalid-id' },
  { name: 'tenant id with a leading "_"', line: 'GET /api/v1/tenants/_t1/agents/a1', status: 400, slug: 'invalid-id' },
  { name: 'tenant id holding "."', line: 'GET /api/v1/tenants/t1.x/agents/a1', status: 400, slug: 'invalid-id' },
  { name: 'business id starting with "."', line: 'GET /api/v1/tenants/t1/agents/.a1', status: 400, slug: 'invalid-id' },
  { name: 'tenant id "..." (three dots)', line: 'GET /api/v1/tenants/.../agents/a1', status: 400, slug: 'invalid-id' },
  { name: 'tenant id holding "~"', line: 'GET /api/v1/tenants/t1~/agents/a1', status: 400, slug: 'invalid-id' },
  { name: 'tenant id holding an encoded "@"', line: 'GET /api/v1/tenants/t1%40t2/agents/a1', status: 400, slug: 'invalid-id' },
  { name: 'tenant id holding "|"', line: 'GET /api/v1/tenants/t1|t2/agents/a1', status: 400, slug: 'invalid-id' },

  // ---- method and URL override headers: refused, never obeyed
  ...['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override', 'x-http-method-override'].map((h) => ({
    name: `${h}: DELETE`,
    line: `GET ${GOOD}`,
    headers: [`${h}: DELETE`],
    status: 400,
    slug: 'override-header',
  })),
  ...['X-Original-URL', 'X-Rewrite-URL', 'x-original-url'].map((h) => ({
    name: `${h} naming another tenant`,
    line: `GET ${GOOD}`,
    headers: [`${h}: /api/v1/tenants/t2/agents/a1`],
    status: 400,
    slug: 'override-header',
  })),
  // Spelled with "_" or ".": CGI/WSGI-style upstreams read X_HTTP_Method_Override as
  // X-HTTP-Method-Override (both become HTTP_X_HTTP_METHOD_OVERRIDE).
  ...['X_HTTP_Method_Override', 'X.HTTP.Method.Override', 'X_Original_URL'].map((h) => ({
    name: `${h} (underscore/dot spelling)`,
    line: `GET ${GOOD}`,
    headers: [`${h}: ${h.toLowerCase().includes('url') ? '/api/v1/tenants/t2/agents/a1' : 'DELETE'}`],
    status: 400,
    slug: 'override-header',
  })),

  // ---- singleton headers sent twice (sendRaw writes a Host line of its own first)
  {
    name: 'two Host headers',
    line: `GET ${GOOD}`,
    headers: ['Host: evil.example'],
    status: 400,
    slug: 'duplicate-header',
    check: (res) => expect(res.json['invalid-params']).toEqual([{ name: 'header.host', reason: 'Header sent more than once' }]),
  },
  { name: 'two Host headers, the same value', line: `GET ${GOOD}`, headers: ['host: 127.0.0.1'], status: 400, slug: 'duplicate-header' },
  { name: 'two Host headers on the admin API', line: 'GET /admin/v1/me/tenants', headers: ['Host: evil.example'], status: 400, slug: 'duplicate-header' },
  {
    name: 'two Content-Type headers',
    line: `PUT ${GOOD}`,
    headers: ['Content-Type: application/json', 'Content-Type: text/plain'],
    status: 400,
    slug: 'duplicate-header',
    check: (res) => expect(res.json.detail).toBe('the content-type header was sent 2 times; send it exactly once'),
  },

  // ---- tokens: Authorization header only, exactly one
  {
    name: 'token in the query string (no Authorization header)',
    line: 'TOKEN_IN_QUERY',
    noAuth: true,
    status: 400,
    slug: 'token-in-query',
    check: (res) => expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_request"/),
  },
  { name: 'token in the query string as well as the header', line: 'TOKEN_IN_QUERY', status: 400, slug: 'token-in-query' },
  { name: 'token in the query string, name encoded "access%5Ftoken"', line: 'TOKEN_IN_QUERY_ENCODED', noAuth: true, status: 400, slug: 'token-in-query' },
  { name: 'token in the query string, name upper case', line: 'TOKEN_IN_QUERY_UPPER', noAuth: true, status: 400, slug: 'token-in-query' },
  {
    name: 'two Authorization headers (both valid)',
    line: `GET ${GOOD}`,
    headers: ['TWO_AUTH'],
    noAuth: true,
    status: 400,
    slug: 'invalid-request',
    check: (res) => expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_request"/),
  },
  {
    name: 'no token at all',
    line: `GET ${GOOD}`,
    noAuth: true,
    status: 401,
    slug: 'unauthenticated',
    check: (res) => expect(res.headers['www-authenticate']).toBe('Bearer'),
  },
  {
    name: 'a token that is not a JWT',
    line: `GET ${GOOD}`,
    headers: ['Authorization: Bearer not-a-token'],
    noAuth: true,
    status: 401,
    slug: 'invalid-token',
    check: (res) => expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token", error_description="/),
  },

  // ---- matching is exact and case-sensitive
  { name: 'upper-case prefix /API/v1', line: 'GET /API/v1/tenants/t1/agents/a1', status: 404, slug: 'not-found' },
  { name: 'upper-case version /api/V1', line: 'GET /api/V1/tenants/t1/agents/a1', status: 404, slug: 'not-found' },
  { name: 'upper-case literal /Tenants', line: 'GET /api/v1/Tenants/t1/agents/a1', status: 404, slug: 'no-route' },
  { name: 'upper-case kind /AGENTS', line: 'GET /api/v1/tenants/t1/AGENTS/a1', status: 404, slug: 'no-route' },
  { name: 'encoded letters decode to the same path, case kept: /%41gents is /Agents', line: 'GET /api/v1/tenants/t1/%41gents/a1', status: 404, slug: 'no-route' },
  // An id is case-sensitive too: T1 is another tenant, where tom has no role.
  { name: 'upper-case tenant id T1 is another tenant', line: 'GET /api/v1/tenants/T1/agents/a1', status: 403, slug: 'forbidden' },

  // ---- unknown paths and wrong methods
  { name: 'unknown kind', line: 'GET /api/v1/tenants/t1/widgets/a1', status: 404, slug: 'no-route' },
  { name: 'extra segment', line: 'GET /api/v1/tenants/t1/agents/a1/extra', status: 404, slug: 'no-route' },
  { name: 'unknown API version', line: 'GET /api/v2/tenants/t1/agents/a1', status: 404, slug: 'not-found' },
  {
    name: 'DELETE on a collection',
    line: 'DELETE /api/v1/tenants/t1/agents',
    status: 405,
    slug: 'method-not-allowed',
    check: (res) => expect(res.headers.allow).toBe('GET, POST'),
  },
  {
    name: 'POST on read-only call records',
    line: 'POST /api/v1/tenants/t1/call-records',
    status: 405,
    slug: 'method-not-allowed',
    check: (res) => expect(res.headers.allow).toBe('GET'),
  },
  {
    name: 'DELETE on a call record',
    line: 'DELETE /api/v1/tenants/t1/call-records/c1',
    status: 405,
    slug: 'method-not-allowed',
    check: (res) => expect(res.headers.allow).toBe('GET'),
  },
  {
    name: 'GET on agent status',
    line: 'GET /api/v1/tenants/t1/agents/a1/status',
    status: 405,
    slug: 'method-not-allowed',
    check: (res) => expect(res.headers.allow).toBe('PUT'),
  },
  {
    name: 'POST on an item',
    line: 'POST /api/v1/tenants/t1/agents/a1',
    status: 405,
    slug: 'method-not-allowed',
    check: (res) => expect(res.headers.allow).toBe('GET, PUT, PATCH, DELETE'),
  },
  {
    name: 'PATCH on the tenant report',
    line: 'PATCH /api/v1/tenants/t1/reports/summary',
    status: 405,
    slug: 'method-not-allowed',
    check: (res) => expect(res.headers.allow).toBe('GET'),
  },
  {
    name: 'an unknown method',
    line: 'PROPFIND /api/v1/tenants/t1/agents/a1',
    status: 405,
    slug: 'method-not-allowed',
    check: (res) => expect(res.headers.allow).toBe('GET, PUT, PATCH, DELETE'),
  },
];

/** The token-in-query lines need tom's token, known only after beforeAll. */
function requestLine(c: Case): string | Buffer {
  const token = auth.slice('Authorization: Bearer '.length);
  if (c.line === 'TOKEN_IN_QUERY') return `GET ${GOOD}?access_token=${token}`;
  if (c.line === 'TOKEN_IN_QUERY_ENCODED') return `GET ${GOOD}?limit=5&access%5Ftoken=${token}`;
  if (c.line === 'TOKEN_IN_QUERY_UPPER') return `GET ${GOOD}?ACCESS_TOKEN=${token}`;
  return c.line;
}

function headersOf(c: Case): string[] {
  const extra = (c.headers ?? []).flatMap((h) => (h === 'TWO_AUTH' ? [auth, auth] : [h]));
  return c.noAuth ? extra : [auth, ...extra];
}

describe('bad input is refused before policy, and never reaches the upstream', () => {
  it('the good version of the request is allowed and arrives upstream (the token would work)', async () => {
    upstream.clear();
    const res = await sendRaw(s.gatewayPort, `GET ${GOOD}`, [auth]);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ recorded: true, method: 'GET', url: GOOD });
    // The client asked to close (sendRaw sends Connection: close), and the proxied answer says so.
    expect(res.headers.connection).toBe('close');
    expect(upstream.received.map((r) => `${r.method} ${r.url}`)).toEqual([`GET ${GOOD}`]);
  });

  it.each(CASES)('$name → $status $slug', async (c) => {
    upstream.clear();
    const res = await sendRaw(s.gatewayPort, requestLine(c), headersOf(c));
    const summary = { status: res.status, type: res.json?.type, contentType: res.headers['content-type'] };
    expect(summary, res.body.slice(0, 300)).toEqual({
      status: c.status,
      type: `https://tiergate.dev/problems/${c.slug}`,
      contentType: PROBLEM_CONTENT_TYPE,
    });
    expect(res.json.status).toBe(c.status);
    expect(typeof res.json.title).toBe('string');
    c.check?.(res);
    // Whatever was refused, the upstream got nothing (it would have answered 200).
    expect(upstream.received.map((r) => `${r.method} ${r.url}`)).toEqual([]);
  });

  it('HEAD is not implied by GET: 405 without a body, nothing forwarded', async () => {
    upstream.clear();
    const res = await sendRaw(s.gatewayPort, `HEAD ${GOOD}`, [auth]);
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, PUT, PATCH, DELETE');
    expect(res.body).toBe('');
    expect(upstream.received).toEqual([]);
  });

  it('a refused request does not poison the connection: the good version still arrives afterwards', async () => {
    upstream.clear();
    const res = await sendRaw(s.gatewayPort, `GET ${GOOD}?limit=5`, [auth]);
    expect(res.status).toBe(200);
    // The query is forwarded as sent; the path is the canonical one.
    expect(upstream.received.map((r) => `${r.method} ${r.url}`)).toEqual([`GET ${GOOD}?limit=5`]);
  });

  it('safe escapes are decoded once and the canonical path is what is forwarded and authorized', async () => {
    upstream.clear();
    // %61 is "a", %2D is "-": the canonical path is /api/v1/tenants/t1/agents/a-1.
    const res = await sendRaw(s.gatewayPort, 'GET /api/v1/tenants/t%31/agents/%61%2D1', [auth]);
    expect(res.status).toBe(200);
    expect(upstream.received.map((r) => r.url)).toEqual(['/api/v1/tenants/t1/agents/a-1']);
    // …and an escape cannot smuggle another tenant past the decision: t%32 is t2.
    upstream.clear();
    const other = await sendRaw(s.gatewayPort, 'GET /api/v1/tenants/t%32/agents/a1', [auth]);
    expect(other.status).toBe(403);
    expect(upstream.received).toEqual([]);
  });
});

// ---- JSON bodies: the tenant service (through the gateway) and the admin API read a
// body the same strict way: UTF-8, JSON, and no lone surrogate in any string or field
// name. Each bad body is a 400 problem+json and nothing is written.
describe('JSON bodies that are not valid are refused with 400, and nothing is written', () => {
  let real: TestStack;
  let tomAuth: string;
  const agents = '/api/v1/tenants/t1/agents';

  beforeAll(async () => {
    real = await startTestStack({ platformAdmins: ['pat'] });
    tomAuth = await seedTenantT1(real);
  });

  /** Sends `body` (text, or bytes as they are) as application/json. */
  async function send(method: string, path: string, body: string | Buffer, auth: string) {
    const res = await fetch(`${real.gatewayUrl}${path}`, {
      method,
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : Uint8Array.from(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    return { status: res.status, contentType: res.headers.get('content-type'), text, json: text ? JSON.parse(text) : undefined };
  }

  // The JSON text is ASCII: `\ud800` is the six characters of a JSON escape.
  const latin1 = (text: string) => Buffer.from(text, 'latin1');
  const BODIES: Array<{ name: string; body: string | Buffer; detail: RegExp; param?: string }> = [
    { name: 'a lone high surrogate in a value', body: '{"agentNo":"2000","name":"\\ud800"}', detail: /not well-formed Unicode/, param: 'name' },
    { name: 'a lone low surrogate in a value', body: '{"agentNo":"2000","name":"Ada\\udfff"}', detail: /not well-formed Unicode/, param: 'name' },
    { name: 'a reversed surrogate pair', body: '{"agentNo":"2000","name":"\\ude00\\ud83d"}', detail: /not well-formed Unicode/, param: 'name' },
    { name: 'a lone surrogate in an array item', body: '{"agentNo":"2000","name":"Ada","skills":["ok","\\udbff"]}', detail: /not well-formed Unicode/, param: 'skills.1' },
    { name: 'a lone surrogate in a field name', body: '{"agentNo":"2000","name":"Ada","\\ud800":1}', detail: /not well-formed Unicode/, param: '' },
    { name: 'an invalid UTF-8 byte', body: latin1('{"agentNo":"2000","name":"Ad\u00ff"}'), detail: /^the body is not valid UTF-8/ },
    { name: 'a surrogate encoded in UTF-8 (ED A0 80)', body: Buffer.concat([latin1('{"agentNo":"2000","name":"'), Buffer.from([0xed, 0xa0, 0x80]), latin1('"}')]), detail: /^the body is not valid UTF-8/ },
    { name: 'a truncated UTF-8 sequence', body: Buffer.concat([latin1('{"agentNo":"2000","name":"A'), Buffer.from([0xc3]), latin1('"}')]), detail: /^the body is not valid UTF-8/ },
    { name: 'malformed JSON', body: '{"agentNo":"2000",', detail: /^the body is not valid JSON/ },
  ];

  it.each(BODIES)('data path: $name → 400 invalid-json', async (c) => {
    const res = await send('POST', agents, c.body, tomAuth);
    expect(res.status, res.text).toBe(400);
    expect(res.contentType).toBe(PROBLEM_CONTENT_TYPE);
    expect(res.json).toMatchObject({ type: 'https://tiergate.dev/problems/invalid-json', status: 400 });
    expect(res.json.detail).toMatch(c.detail);
    if (c.param !== undefined) expect(res.json['invalid-params']).toEqual([{ name: c.param ? `body.${c.param}` : 'body', reason: expect.stringMatching(/lone UTF-16 surrogate/) }]);
  });

  it('data path: PUT, PATCH and the agent status route read bodies the same way', async () => {
    expect((await send('POST', agents, '{"agentNo":"2001","name":"Bo"}', tomAuth)).status).toBe(201);
    for (const [method, path, body] of [
      ['PUT', `${agents}/2001`, '{"name":"\\ud800"}'],
      ['PATCH', `${agents}/2001`, '{"name":"B\\udc00"}'],
      ['PUT', `${agents}/2001/status`, '{"status":"\\ud800"}'],
    ] as const) {
      const res = await send(method, path, body, tomAuth);
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(400);
      expect(res.json.type).toBe('https://tiergate.dev/problems/invalid-json');
    }
    const after = await call(real.gatewayUrl, 'GET', `${agents}/2001`, { auth: tomAuth });
    expect(after.body).toMatchObject({ agentNo: '2001', name: 'Bo', status: 'offline' });
  });

  it('data path: a well-formed surrogate pair (an emoji) is accepted, and none of the refused bodies was written', async () => {
    const ok = await send('POST', agents, '{"agentNo":"2002","name":"Ada \\ud83d\\ude00"}', tomAuth);
    expect(ok.status, ok.text).toBe(201);
    expect(ok.json.name).toBe('Ada \u{1F600}');
    const list = await call(real.gatewayUrl, 'GET', agents, { auth: tomAuth });
    expect(list.body.items.map((a: { agentNo: string }) => a.agentNo)).toEqual(['2001', '2002']);
  });

  it.each(BODIES)('admin API: $name → 400 invalid-json, nothing created', async (c) => {
    // The same bodies with the admin API's field names (tenant id and name).
    const body = typeof c.body === 'string' ? c.body.replace('"agentNo":"2000"', '"id":"t9"').replace('"skills"', '"tags"') : Buffer.from(c.body.toString('latin1').replace('"agentNo":"2000"', '"id":"t9"'), 'latin1');
    const olivia = await real.authHeader('olivia');
    const res = await send('POST', '/admin/v1/divisions/d1/tenants', body, olivia);
    expect(res.status, res.text).toBe(400);
    expect(res.contentType).toBe(PROBLEM_CONTENT_TYPE);
    expect(res.json).toMatchObject({ type: 'https://tiergate.dev/problems/invalid-json', status: 400 });
    expect(res.json.detail).toMatch(c.detail);
    if (c.param !== undefined) {
      const name = c.param === '' ? 'body' : `body.${c.param === 'skills.1' ? 'tags[1]' : c.param}`;
      expect(res.json['invalid-params']).toEqual([{ name, reason: expect.stringMatching(/lone UTF-16 surrogate/) }]);
    }
    expect((await real.db.query("select id from admin_tenants where id = 't9'")).rows).toEqual([]);
  });

  it('admin API: a body over the size limit is still 413, read no further than the limit', async () => {
    // On its own connection: the answer comes before the body is read, and the connection is then closed.
    const res = await sendRaw(real.gatewayPort, 'POST /admin/v1/divisions/d1/tenants', [`Authorization: ${await real.authHeader('olivia')}`, 'Content-Type: application/json'], {
      body: JSON.stringify({ id: 't9', name: 'x'.repeat(300_000) }),
    });
    expect(res.status, res.body.slice(0, 300)).toBe(413);
    expect(res.json.type).toBe('https://tiergate.dev/problems/payload-too-large');
  });

  it('admin API: a rename or a tuple batch with a lone surrogate changes nothing', async () => {
    const olivia = await real.authHeader('olivia');
    const rename = await send('PATCH', '/admin/v1/tenants/t1', '{"name":"T\\ud800"}', olivia);
    expect(rename.status, rename.text).toBe(400);
    expect(rename.json['invalid-params']).toEqual([{ name: 'body.name', reason: expect.any(String) }]);
    const tuples = await send('POST', '/admin/v1/tuples', '{"writes":[{"user":"user:\\udc00","relation":"member","object":"tenant:t1"}]}', await real.authHeader('pat'));
    expect(tuples.status, tuples.text).toBe(400);
    expect(tuples.json['invalid-params']).toEqual([{ name: 'body.writes[0].user', reason: expect.any(String) }]);
    expect((await call(real.gatewayUrl, 'GET', '/admin/v1/tenants/t1', { auth: olivia })).body.name).toBe('T1');
    const audit = await real.db.query<{ n: number }>("select count(*)::int as n from admin_audit where action in ('tenant.rename', 'tuples.write', 'tenant.create') and target <> 'tenant:t1' and target <> 'tenant:t2'");
    expect(audit.rows[0]!.n).toBe(0);
  });
});
