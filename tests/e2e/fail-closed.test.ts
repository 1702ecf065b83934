// Fail closed: when OpenFGA is unreachable, hung, or answering errors, the gateway
// answers 503 problem+json (never 200) and the upstream receives nothing; when
// OpenFGA is back, service resumes without restarting the gateway. And when the
// upstream is down or hangs: 502 / 504.
//
// A dedicated OpenFGA (the shared one must keep running for the other files) sits
// behind a TCP relay that can be cut (connection refused) and restored, so the
// outage is real without losing the in-memory store. Every request that must reach
// OpenFGA asks about an object never asked about before (a fresh agentNo): a cached
// decision may legitimately be served during an outage, a fresh one may not.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import type { OpenFgaServer } from '../../src/stack/openfga-server.js';
import { createTestStore } from '../support/fga.js';
import { useCleanup } from '../support/cleanup.js';
import { call, type JsonResponse } from '../support/json-call.js';
import { startTestOpenFga, suspend } from '../support/openfga-test-server.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.js';
import { seedTenantT1, startTestStack, type TestStack } from '../support/test-stack.js';
import { waitFor } from '../support/wait.js';

useCleanup();

const OPENFGA_TIMEOUT_MS = 300;
const UPSTREAM_TIMEOUT_MS = 500;
/** A generous deadline for "answers promptly" on a busy shared machine. */
const PROMPTLY_MS = 5000;

let fga: OpenFgaServer;
let relay: TcpRelay;
let upstream: RecordingUpstream;
let s: TestStack;
let tom: string;

beforeAll(async () => {
  fga = await startTestOpenFga(); // stopped (and continued first) at the end of the file
  relay = await startTcpRelay(fga.httpPort);
  upstream = await startRecordingUpstream();
  const store = await createTestStore({ apiUrl: relay.url, platformAdmins: ['pat'] });
  s = await startTestStack({
    store,
    upstreamUrl: upstream.url,
    env: { OPENFGA_TIMEOUT_MS: String(OPENFGA_TIMEOUT_MS), UPSTREAM_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS) },
  });
  tom = await seedTenantT1(s);
});

/** An agent never asked about (a path the upstream has not seen). */
function freshPath(): string {
  return `/api/v1/tenants/t1/agents/a-${randomUUID().slice(0, 8)}`;
}

/**
 * Makes tom's cached decisions in t1 outdated, so his next request must ask OpenFGA: a
 * new agent alone would not (its permission is asked of the tenant, whose answer is
 * cached). A role change of his on t1, made and undone through the admin API, bumps
 * his role-version. A decision the outage refuses is not cached, so it stays a miss.
 */
async function forgetTomsDecisions(): Promise<void> {
  for (const method of ['PUT', 'DELETE'] as const) {
    const res = await call(s.gatewayUrl, method, '/admin/v1/tenants/t1/roles/member/tom', { auth: tom });
    expect(res.status, res.text).toBe(200);
  }
}

async function timed(path: string, auth = tom): Promise<{ res: JsonResponse; ms: number }> {
  const started = Date.now();
  const res = await call(s.gatewayUrl, 'GET', path, { auth, timeoutMs: 20_000 });
  return { res, ms: Date.now() - started };
}

function expectUnavailable({ res, ms }: { res: JsonResponse; ms: number }): void {
  expect({ status: res.status, contentType: res.contentType, type: res.body?.type }, res.text).toEqual({
    status: 503,
    contentType: PROBLEM_CONTENT_TYPE,
    type: 'https://tiergate.dev/problems/authorization-unavailable',
  });
  expect(res.headers.get('retry-after')).toBe('1');
  expect(ms, `answered after ${ms} ms`).toBeLessThan(PROMPTLY_MS);
}

/** Fresh requests until one is allowed; true when that happened within the deadline. */
async function resumes(): Promise<boolean> {
  return waitFor(async () => (await timed(freshPath())).res.status === 200, PROMPTLY_MS, 100);
}

describe('OpenFGA unavailable: 503, never 200, nothing forwarded; then service resumes', () => {
  it('allows a fresh request while OpenFGA is up (the control)', async () => {
    upstream.clear();
    const path = freshPath();
    const { res } = await timed(path);
    expect(res.status, res.text).toBe(200);
    expect(upstream.received.map((r) => r.url)).toEqual([path]);
  });

  it('OpenFGA unreachable (connection refused) → 503; reachable again → allowed, without a gateway restart', async () => {
    await forgetTomsDecisions();
    await relay.cut();
    try {
      upstream.clear();
      const outcomes = [];
      for (let i = 0; i < 3; i++) outcomes.push(await timed(freshPath()));
      // The same fresh requests in parallel: coalesced or not, none is let through.
      outcomes.push(...(await Promise.all([freshPath(), freshPath(), freshPath()].map((p) => timed(p)))));
      for (const o of outcomes) expectUnavailable(o);
      expect(upstream.received).toEqual([]);

      const ready = await call(s.gatewayUrl, 'GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.find((c: { name: string }) => c.name === 'openfga').ok).toBe(false);
    } finally {
      await relay.restore();
    }
    expect(await resumes(), 'a fresh request is allowed again within 5 s of OpenFGA coming back').toBe(true);
    expect((await call(s.gatewayUrl, 'GET', '/readyz')).status).toBe(200);
  });

  it('OpenFGA hung (SIGSTOP) → 503 within about OPENFGA_TIMEOUT_MS; continued (SIGCONT) → allowed', async () => {
    await forgetTomsDecisions();
    await suspend(fga.child.process);
    try {
      upstream.clear();
      const outcomes = [await timed(freshPath()), await timed(freshPath())];
      for (const o of outcomes) expectUnavailable(o);
      expect(upstream.received).toEqual([]);
    } finally {
      fga.child.process.kill('SIGCONT');
    }
    expect(await resumes(), 'a fresh request is allowed again within 5 s of OpenFGA continuing').toBe(true);
  });

  it('OpenFGA answering errors (HTTP 500) → 503; healthy again → allowed', async () => {
    await forgetTomsDecisions();
    await relay.cut(); // drop the pooled connections, so the next ones reach the failing relay
    relay.mode = 'http-500';
    await relay.restore();
    try {
      upstream.clear();
      const before = relay.connections;
      const outcome = await timed(freshPath());
      expectUnavailable(outcome);
      expect(relay.connections, 'the decision was asked of the failing engine').toBeGreaterThan(before);
      expect(upstream.received).toEqual([]);
    } finally {
      await relay.cut();
      relay.mode = 'pass';
      await relay.restore();
    }
    expect(await resumes()).toBe(true);
  });

  it('an error is never cached as an answer: the request refused during the outage is allowed afterwards', async () => {
    await forgetTomsDecisions();
    const path = freshPath();
    await relay.cut();
    try {
      expectUnavailable(await timed(path));
    } finally {
      await relay.restore();
    }
    const ok = await waitFor(async () => (await timed(path)).res.status === 200, PROMPTLY_MS, 100);
    expect(ok).toBe(true);
  });

  it('a denial is not turned into an allow by the outage: a fresh denied request is 503, then 403', async () => {
    const other = '/api/v1/tenants/t2/agents/a1';
    await relay.cut();
    try {
      upstream.clear();
      expectUnavailable(await timed(other));
      expect(upstream.received).toEqual([]);
    } finally {
      await relay.restore();
    }
    const after = await waitFor(async () => (await timed(other)).res.status === 403, PROMPTLY_MS, 100);
    expect(after).toBe(true);
  });

  it('a division report whose tenants must be read from OpenFGA during the outage → 503 (not 500), nothing forwarded', async () => {
    const olivia = await s.authHeader('olivia');
    const report = '/api/v1/divisions/d1/reports/summary';
    expect((await timed(report, olivia)).res.status).toBe(200); // decision and tenant list now cached
    // A new tenant under d1: the cached tenant list is stale and must be read again.
    const created = await call(s.gatewayUrl, 'POST', '/admin/v1/divisions/d1/tenants', { auth: olivia, body: { id: 't3', name: 'T3' } });
    expect(created.status, created.text).toBe(201);
    await relay.cut();
    try {
      upstream.clear();
      expectUnavailable(await timed(report, olivia));
      expect(upstream.received).toEqual([]);
    } finally {
      await relay.restore();
    }
    // Back: the report is forwarded with the new tenant in the assertion.
    upstream.clear();
    expect(await waitFor(async () => (await timed(report, olivia)).res.status === 200, PROMPTLY_MS, 100)).toBe(true);
    const assertion = String(upstream.received.at(-1)?.headers['x-tiergate-assertion'] ?? '');
    const claims = JSON.parse(Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString('utf8')) as { tenants: string[] };
    expect(claims.tenants).toEqual(['t1', 't3']);
  });
});

describe('upstream unavailable: 502, hung: 504', () => {
  it('upstream refusing connections → 502 problem+json; back → 200', async () => {
    await upstream.close();
    try {
      const { res, ms } = await timed(freshPath());
      expect({ status: res.status, contentType: res.contentType, type: res.body?.type }).toEqual({
        status: 502,
        contentType: PROBLEM_CONTENT_TYPE,
        type: 'https://tiergate.dev/problems/upstream-unavailable',
      });
      expect(res.body.requestId).toBe(res.headers.get('x-request-id'));
      expect(ms).toBeLessThan(PROMPTLY_MS);
    } finally {
      await upstream.listen();
    }
    expect((await timed(freshPath())).res.status).toBe(200);
  });

  it('upstream not answering within UPSTREAM_TIMEOUT_MS → 504 problem+json', async () => {
    upstream.mode = 'hang';
    try {
      upstream.clear();
      const path = freshPath();
      const { res, ms } = await timed(path);
      expect({ status: res.status, contentType: res.contentType, type: res.body?.type }).toEqual({
        status: 504,
        contentType: PROBLEM_CONTENT_TYPE,
        type: 'https://tiergate.dev/problems/upstream-timeout',
      });
      expect(ms).toBeLessThan(PROMPTLY_MS);
      // It was forwarded (the decision allowed it); the upstream just never answered.
      expect(upstream.received.map((r) => r.url)).toEqual([path]);
    } finally {
      upstream.mode = 'ok';
      await upstream.close(); // drop the hung connection
      await upstream.listen();
    }
    expect((await timed(freshPath())).res.status).toBe(200);
  });
});
