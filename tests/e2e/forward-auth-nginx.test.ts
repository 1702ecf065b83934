// Forward-auth behind a real nginx (auth_request): nginx asks tiergate's decision
// endpoint about every request under /api/ and forwards allowed ones itself to a
// recording upstream, with the assertion tiergate answered. nginx asks from 127.0.0.2
// (proxy_bind), the only entry of TRUSTED_PROXIES, so a client calling tiergate
// directly from 127.0.0.1 is an untrusted peer. OpenFGA is reached through a TCP
// relay, so the last part can take it away.
//
// The matrix part is the done-when of decision mode: for every role × route × tenant
// of the access matrix (tests/support/access-matrix.ts), the decision nginx got
// (X-Tiergate-Status) is what proxy mode answers for the same request, nginx's own
// answer follows from it (2xx: the upstream's; 401/403: the same; else 500), and an
// allowed request reaches the upstream with the assertion proxy mode would send.
import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import { beforeAll, describe, expect, it, inject } from 'vitest';
import { ASSERTION_HEADER } from '../../src/shared/assertion.js';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import { inBatches } from '../../load/lib/concurrency.js';
import { buildMatrixHierarchy, CHAINS, DIVISIONS, expectedStatus, ORGANIZATIONS, ROLES, TENANTS, type AdminCall } from '../support/access-matrix.js';
import { useCleanup } from '../support/cleanup.js';
import { createTestStore } from '../support/fga.js';
import { call, type JsonResponse } from '../support/json-call.js';
import { forwardAuthConfig, startNginx, type RunningNginx } from '../support/nginx.js';
import { sendRaw, type RawResponse } from '../support/raw-http.js';
import { startRecordingUpstream, type RecordedRequest, type RecordingUpstream } from '../support/recording-upstream.js';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.js';
import { startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

const PROXY = '127.0.0.2';

let relay: TcpRelay;
let upstream: RecordingUpstream;
let s: TestStack;
let nginx: RunningNginx;

const admin: AdminCall = async (sub, method, path, body, status = 201) => {
  const res = await call(s.gatewayUrl, method, `/admin/v1${path}`, { auth: await s.authHeader(sub), ...(body !== undefined ? { body } : {}) });
  expect(res.status, `${sub} ${method} ${path}: ${res.text}`).toBe(status);
};

beforeAll(async () => {
  relay = await startTcpRelay(Number(new URL(inject('openfgaUrl')).port));
  upstream = await startRecordingUpstream();
  const store = await createTestStore({ apiUrl: relay.url, platformAdmins: ['pat'] });
  s = await startTestStack({ store, upstreamUrl: upstream.url, env: { TRUSTED_PROXIES: PROXY, OPENFGA_TIMEOUT_MS: '5000' } });
  nginx = await startNginx(forwardAuthConfig({ gatewayPort: s.gatewayPort, upstreamPort: upstream.port, bind: PROXY }));
  await buildMatrixHierarchy(admin);
});

/** What the upstream received for the request tagged `tag` (in its query), if anything. */
function receivedFor(tag: string): RecordedRequest | undefined {
  return upstream.received.find((r) => r.url.endsWith(`tag=${tag}`));
}

/** Claims of an assertion without its times (two assertions for the same request differ only there). */
function claimsOf(token: unknown): Record<string, unknown> {
  const { iat: _iat, exp: _exp, ...claims } = decodeJwt(String(token));
  return claims;
}

describe('allowed and denied through nginx', () => {
  it('allowed: the upstream gets the request as sent and the assertion tiergate answered (a client-sent one is replaced)', async () => {
    const tag = randomUUID();
    const res = await call(nginx.url, 'GET', `/api/v1/tenants/emea-sales/agents?tag=${tag}`, {
      auth: await s.authHeader('tom'),
      headers: { 'x-tiergate-assertion': 'forged', 'x-tiergate-subject': 'pat' },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('x-tiergate-status')).toBe('200');
    const got = receivedFor(tag);
    expect(got?.url).toBe(`/api/v1/tenants/emea-sales/agents?tag=${tag}`);
    expect(got?.headers['x-tiergate-subject']).toBe('tom');
    expect(claimsOf(got?.headers[ASSERTION_HEADER])).toMatchObject({ sub: 'tom', scope: { type: 'tenant', id: 'emea-sales' }, tenants: ['emea-sales'], htm: 'GET', htu: '/api/v1/tenants/emea-sales/agents' });
  });

  it('a division report: the assertion lists every tenant under the division', async () => {
    const tag = randomUUID();
    const res = await call(nginx.url, 'GET', `/api/v1/divisions/emea-north/reports/summary?tag=${tag}`, { auth: await s.authHeader('sam') });
    expect(res.status, res.text).toBe(200);
    expect(claimsOf(receivedFor(tag)?.headers[ASSERTION_HEADER])).toMatchObject({ sub: 'sam', scope: { type: 'division', id: 'emea-north' }, tenants: ['metro-ops', 'north-sales'] });
  });

  it('denied: 403 with the deny reason, and the upstream receives nothing', async () => {
    const tag = randomUUID();
    const res = await call(nginx.url, 'DELETE', `/api/v1/tenants/emea-sales/agents/a1?tag=${tag}`, { auth: await s.authHeader('uma') });
    expect([res.status, res.headers.get('x-tiergate-status'), res.headers.get('x-tiergate-deny-reason')]).toEqual([403, '403', 'missing can_write']);
    expect(receivedFor(tag)).toBeUndefined();
  });

  it('no token: 401 with the Bearer challenge nginx passes on; the upstream receives nothing', async () => {
    const tag = randomUUID();
    const res = await call(nginx.url, 'GET', `/api/v1/tenants/emea-sales/agents?tag=${tag}`);
    expect([res.status, res.headers.get('www-authenticate')]).toEqual([401, 'Bearer']);
    expect(receivedFor(tag)).toBeUndefined();
  });
});

describe('spoofed original-request headers', () => {
  const denied = '/api/v1/tenants/gx-sales/agents';
  const allowedPath = '/api/v1/tenants/emea-sales/agents';

  // nginx replaces X-Original-URI with $request_uri and X-Forwarded-Uri is never read in
  // nginx mode (403: the denied path was decided); the override headers are refused
  // outright, as in proxy mode (400, which nginx turns into 500).
  it.each([
    ['X-Original-URI', '403', 403],
    ['X-Forwarded-Uri', '403', 403],
    ['X-Original-URL', '400', 500],
    ['X-Rewrite-URL', '400', 500],
  ])('through nginx, a client-sent %s naming an allowed path does not turn a denial into an allow', async (header, decision, status) => {
    const tag = randomUUID();
    const res = await call(nginx.url, 'GET', `${denied}?tag=${tag}`, { auth: await s.authHeader('tom'), headers: { [header]: allowedPath, 'x-original-method': 'GET' } });
    expect([res.status, res.headers.get('x-tiergate-status')]).toEqual([status, decision]);
    expect(receivedFor(tag)).toBeUndefined();
  });

  it('through nginx, a client-sent X-Original-URI naming a denied path does not deny an allowed request', async () => {
    const tag = randomUUID();
    const res = await call(nginx.url, 'GET', `${allowedPath}?tag=${tag}`, { auth: await s.authHeader('tom'), headers: { 'X-Original-URI': denied, 'X-Original-Method': 'DELETE' } });
    expect(res.status).toBe(200);
    expect(claimsOf(receivedFor(tag)?.headers[ASSERTION_HEADER])).toMatchObject({ htm: 'GET', htu: allowedPath });
  });

  it('directly to tiergate from an untrusted client, spoofed headers get 403 untrusted-peer in every mode', async () => {
    const tom = `Authorization: ${await s.authHeader('tom')}`;
    for (const [line, headers] of [
      ['GET /forward-auth/nginx', ['X-Original-Method: GET', `X-Original-URI: ${allowedPath}`]],
      ['GET /forward-auth/traefik', ['X-Forwarded-Method: GET', `X-Forwarded-Uri: ${allowedPath}`]],
      [`GET /forward-auth/envoy${allowedPath}`, []],
    ] as const) {
      const res = await sendRaw(s.gatewayPort, line, [...headers, tom]);
      expect([res.status, res.json?.type], line).toEqual([403, 'https://tiergate.dev/problems/untrusted-peer']);
      expect(res.headers[ASSERTION_HEADER]).toBeUndefined();
    }
  });
});

describe('path tricks through nginx are refused as in proxy mode', () => {
  // nginx passes $request_uri raw; tiergate refuses what proxy mode refuses (400), which
  // nginx turns into 500. Requests nginx refuses itself never reach tiergate (`nginx`).
  const CASES: Array<{ target: string; slug: string; nginxRefuses?: true }> = [
    { target: '/api/v1/tenants/gx-sales/../emea-sales/agents', slug: 'dot-segment' },
    { target: '/api/v1/tenants/emea-sales/./agents', slug: 'dot-segment' },
    { target: '/api/v1/tenants/gx-sales/%2e%2e/emea-sales/agents', slug: 'dot-segment' },
    { target: '/api/v1/tenants/gx-sales/.%2E/emea-sales/agents', slug: 'dot-segment' },
    { target: '/api/v1/tenants/emea-sales%2Fagents', slug: 'encoded-slash' },
    { target: '/api/v1/tenants/emea-sales/agents%5Ca1', slug: 'encoded-backslash' },
    { target: '/api/v1/tenants/emea-sales/agents\\a1', slug: 'backslash' },
    { target: '/api/v1/tenants/emea-sales/agents/%252e%252e', slug: 'double-encoding' },
    { target: '/api/v1/tenants/emea-sales/agents;jsessionid=1', slug: 'path-parameter' },
    { target: '/api/v1/tenants/emea-sales/agents%3Bx', slug: 'path-parameter' },
    { target: '/api/v1/tenants/emea-sales//agents', slug: 'empty-segment' },
    { target: '/api/v1/tenants/emea-sales/agents/', slug: 'empty-segment' },
    { target: '/api/v1/tenants/emea-sales/agents/%00', slug: 'control-character', nginxRefuses: true },
    { target: '/api/v1/tenants/emea-sales/agents/%C3%A9', slug: 'non-ascii' },
    { target: '/api/v1/tenants/emea-sales/agents/%zz', slug: 'malformed-encoding', nginxRefuses: true },
    { target: '/api/v1/tenants/emea-sales/agents?access_token=abc', slug: 'token-in-query' },
    { target: '/api/v1/tenants/emea-sales/agents/-x', slug: 'invalid-id' },
  ];

  it.each(CASES)('$target → $slug', async ({ target, slug, nginxRefuses }) => {
    const tom = `Authorization: ${await s.authHeader('tom')}`;
    const before = upstream.received.length;
    const proxied = await sendRaw(s.gatewayPort, `GET ${target}`, [tom]);
    expect([proxied.status, proxied.json?.type]).toEqual([400, `https://tiergate.dev/problems/${slug}`]);
    const viaNginx: RawResponse = await sendRaw(nginx.port, `GET ${target}`, [tom]);
    // nginx decodes the path to pick a location and refuses a NUL or a bad escape itself.
    expect([viaNginx.status, viaNginx.headers['x-tiergate-status']]).toEqual(nginxRefuses ? [400, undefined] : [500, '400']);
    expect(upstream.received.length).toBe(before);
  });
});

describe('the access matrix: decision mode through nginx answers as proxy mode does', () => {
  interface Cell {
    line: string;
    sub: string;
    method: string;
    path: string;
    expected: number;
  }
  const cells: Cell[] = [];
  for (const role of ROLES) {
    for (const tenant of TENANTS) {
      const access = role.tenants[tenant] ?? 'none';
      for (const rc of CHAINS.flat()) {
        const path = rc.path(tenant, 'own1');
        // Against a recording upstream an allowed request is its 200, whatever the route.
        const status = expectedStatus(access, rc);
        cells.push({ line: `${role.sub} (${role.role}) ${rc.name}: ${rc.method} ${path}`, sub: role.sub, method: rc.method, path, expected: status === 405 || status === 403 ? status : 200 });
      }
    }
    for (const [kind, id] of [...DIVISIONS.map((d) => ['divisions', d] as const), ...ORGANIZATIONS.map((o) => ['organizations', o] as const)]) {
      const path = `/api/v1/${kind}/${id}/reports/summary`;
      cells.push({ line: `${role.sub} (${role.role}) GET ${path}`, sub: role.sub, method: 'GET', path, expected: role.reports.includes(id) ? 200 : 403 });
    }
  }

  /** What is wrong with one cell, or undefined. */
  async function check(cell: Cell): Promise<string | undefined> {
    const auth = await s.authHeader(cell.sub);
    const tag = randomUUID();
    const proxied: JsonResponse = await call(s.gatewayUrl, cell.method, `${cell.path}?tag=${tag}-p`, { auth });
    const viaNginx: JsonResponse = await call(nginx.url, cell.method, `${cell.path}?tag=${tag}-n`, { auth });
    const decision = Number(viaNginx.headers.get('x-tiergate-status'));
    const nginxShould = decision >= 200 && decision < 300 ? 200 : decision === 401 || decision === 403 ? decision : 500;
    const seen = `proxy ${proxied.status}, decision ${decision}, nginx ${viaNginx.status}`;
    if (proxied.status !== cell.expected) return `${cell.line}: proxy mode answered ${proxied.status}, the matrix says ${cell.expected}`;
    if (decision !== proxied.status) return `${cell.line}: ${seen}: the decision differs from proxy mode`;
    if (viaNginx.status !== nginxShould) return `${cell.line}: ${seen}: nginx should have answered ${nginxShould}`;
    if (decision === 403) {
      if (!proxied.contentType.startsWith(PROBLEM_CONTENT_TYPE)) return `${cell.line}: proxy 403 is not problem+json`;
      const reason = proxied.headers.get('x-tiergate-deny-reason');
      if (viaNginx.headers.get('x-tiergate-deny-reason') !== reason) return `${cell.line}: deny reason ${viaNginx.headers.get('x-tiergate-deny-reason')} != ${reason}`;
    }
    const upstreamP = receivedFor(`${tag}-p`);
    const upstreamN = receivedFor(`${tag}-n`);
    if (decision !== 200) return upstreamN || upstreamP ? `${cell.line}: a refused request reached the upstream` : undefined;
    if (!upstreamP || !upstreamN) return `${cell.line}: an allowed request did not reach the upstream`;
    if (JSON.stringify(claimsOf(upstreamN.headers[ASSERTION_HEADER])) !== JSON.stringify(claimsOf(upstreamP.headers[ASSERTION_HEADER]))) {
      return `${cell.line}: the assertion through nginx differs from proxy mode's`;
    }
    return undefined;
  }

  it(`every cell (${cells.length}) answers alike`, { timeout: 600_000 }, async () => {
    const problems = (await inBatches(cells, 6, check)).filter((p): p is string => p !== undefined);
    expect(problems).toEqual([]);
    // The matrix has every kind of answer in it, so "alike" is not vacuous.
    expect(new Set(cells.map((c) => c.expected))).toEqual(new Set([200, 403, 405]));
  });
});

describe('OpenFGA down', () => {
  it('no decision can be made: tiergate answers 503, nginx refuses with 500, the upstream receives nothing; back when OpenFGA is', async () => {
    // A subject never asked about: no cached decision can answer for it.
    const newcomer = await s.authHeader(`new-${randomUUID().slice(0, 8)}`);
    await relay.cut();
    try {
      const tag = randomUUID();
      const res = await call(nginx.url, 'GET', `/api/v1/tenants/emea-sales/agents?tag=${tag}`, { auth: newcomer, timeoutMs: 20_000 });
      expect([res.status, res.headers.get('x-tiergate-status')]).toEqual([500, '503']);
      expect(receivedFor(tag)).toBeUndefined();
      expect(nginx.errorLog()).toMatch(/auth request unexpected status: 503/);
    } finally {
      await relay.restore();
    }
    const after = await call(nginx.url, 'GET', '/api/v1/tenants/emea-sales/agents', { auth: newcomer, timeoutMs: 20_000 });
    expect([after.status, after.headers.get('x-tiergate-status')]).toEqual([403, '403']);
  });
});
