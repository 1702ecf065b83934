// A pooled upstream connection that the upstream closes just as a request is written to
// it (an upstream that announces no keep-alive timeout, or closes early): an idempotent
// bodiless request goes again once on a new connection, with the same headers; any
// other request gets the 502 it got before, and is not sent twice.
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { sendRaw } from '../support/raw-http.js';
import { seedTenantT1, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

interface Seen {
  connection: number;
  requestLine: string;
  forwardedFor: string | undefined;
}

/**
 * A raw HTTP/1.1 upstream: it answers the first request on each connection (keep-alive,
 * no Keep-Alive hint) and closes the connection, unanswered, on the second.
 */
function startClosingUpstream(): Promise<{ url: string; seen: Seen[]; connections: () => number; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const open = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((socket: Socket) => {
    const connection = ++connections;
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    let buffered = '';
    let requests = 0;
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const lines = head.split('\r\n');
        const forwardedFor = lines.find((l) => /^x-forwarded-for:/i.test(l))?.slice('x-forwarded-for:'.length).trim();
        seen.push({ connection, requestLine: lines[0]!, forwardedFor });
        if (++requests > 1) {
          socket.destroy();
          return;
        }
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n{}');
      }
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      const close = () =>
        new Promise<void>((done) => {
          server.close(() => done());
          for (const socket of open) socket.destroy();
        });
      resolve({ url: `http://127.0.0.1:${port}`, seen, connections: () => connections, close });
    });
  });
}

interface Setup {
  s: TestStack;
  upstream: Awaited<ReturnType<typeof startClosingUpstream>>;
  tom: string;
}

async function setUp(env: Record<string, string> = {}): Promise<Setup> {
  const upstream = await startClosingUpstream();
  const s = await startTestStack({ platformAdmins: ['pat'], upstreamUrl: upstream.url, env });
  return { s, upstream, tom: await seedTenantT1(s) };
}

const upstreams: Setup['upstream'][] = [];
let s: TestStack;
let upstream: Setup['upstream'];
let tom: string;

beforeAll(async () => {
  ({ s, upstream, tom } = await setUp());
  upstreams.push(upstream);
});

afterAll(async () => {
  for (const u of upstreams) await u.close();
});

describe('a pooled upstream connection closed under a request', () => {
  it('sends a GET again on a new connection, once, with the same forwarding headers', async () => {
    const first = await call(s.gatewayUrl, 'GET', '/api/v1/tenants/t1/agents', { auth: tom });
    expect(first.status).toBe(200);
    expect(upstream.connections()).toBe(1);

    const second = await call(s.gatewayUrl, 'GET', '/api/v1/tenants/t1/queues', { auth: tom });
    expect(second.status, second.text).toBe(200);
    // Written to the pooled connection (closed unanswered), then to a new one.
    const queues = upstream.seen.filter((r) => r.requestLine.startsWith('GET /api/v1/tenants/t1/queues '));
    expect(queues.map((r) => r.connection)).toEqual([1, 2]);
    // http-proxy appends X-Forwarded-For on every attempt: the second carries one address, not two.
    expect(queues.map((r) => r.forwardedFor)).toEqual(['127.0.0.1', '127.0.0.1']);
  });

  it('does not send a GET with a body again (the body went to the first attempt)', async () => {
    // The connection pooled after the first test has answered one request: this one meets the close.
    const port = Number(new URL(s.gatewayUrl).port);
    const res = await sendRaw(port, 'GET /api/v1/tenants/t1/extensions', [`Authorization: ${tom}`, 'Content-Type: application/json'], { body: '{"x":1}' });
    expect(res.status, res.body).toBe(502);
    expect(upstream.seen.filter((r) => r.requestLine.startsWith('GET /api/v1/tenants/t1/extensions ')).length).toBe(1);
  });

  it('answers 502 to a POST on such a connection and does not send it twice', async () => {
    // A new pooled connection (the GET above closed the last one): prime it, then the POST meets the close.
    expect((await call(s.gatewayUrl, 'GET', '/api/v1/tenants/t1/ivrs', { auth: tom })).status).toBe(200);
    const res = await call(s.gatewayUrl, 'POST', '/api/v1/tenants/t1/agents', { auth: tom, body: { agentNo: 'a-retry', name: 'Retry' } });
    expect(res.status, res.text).toBe(502);
    expect(res.body?.type).toBe('https://tiergate.dev/problems/upstream-unavailable');
    const primed = upstream.seen.find((r) => r.requestLine.startsWith('GET /api/v1/tenants/t1/ivrs '))!.connection;
    expect(upstream.seen.filter((r) => r.requestLine.startsWith('POST ')).map((r) => r.connection)).toEqual([primed]);
  });
});

describe('behind a trusted proxy', () => {
  let t: Setup;
  beforeAll(async () => {
    t = await setUp({ TRUSTED_PROXIES: '127.0.0.1' });
    upstreams.push(t.upstream);
  });

  it("sends the proxy's X-Forwarded-For again as it came, plus this hop, once", async () => {
    const headers = { 'x-forwarded-for': '203.0.113.7' };
    expect((await call(t.s.gatewayUrl, 'GET', '/api/v1/tenants/t1/agents', { auth: t.tom, headers })).status).toBe(200);
    const res = await call(t.s.gatewayUrl, 'GET', '/api/v1/tenants/t1/queues', { auth: t.tom, headers });
    expect(res.status, res.text).toBe(200);
    const queues = t.upstream.seen.filter((r) => r.requestLine.startsWith('GET /api/v1/tenants/t1/queues '));
    expect(queues.map((r) => r.forwardedFor)).toEqual(['203.0.113.7,127.0.0.1', '203.0.113.7,127.0.0.1']);
  });
});
