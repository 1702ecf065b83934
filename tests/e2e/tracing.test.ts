// OpenTelemetry tracing, end to end: the standalone gateway (src/server/gateway-main.ts)
// with OTEL_EXPORTER_OTLP_ENDPOINT set exports its spans over OTLP/HTTP protobuf to a
// real receiver (tests/support/otlp-receiver.ts decodes the wire payload), and the trees
// are checked: one allowed request (normalise → authenticate → policy → authorize → the
// OpenFGA Check under authorize → forward, whose traceparent the upstream receives), one
// denied request (no forward span, 403), the log line's trace id, and which peers'
// traceparent is continued (TRUSTED_PROXIES only).
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { useCleanup } from '../support/cleanup.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { SPAN_KIND, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { adminOk, startTestStack, type TestStack } from '../support/test-stack.js';
import { waitFor } from '../support/wait.js';

useCleanup();

/** The peer the gateway trusts: loopback, but another address than the untrusted client's 127.0.0.1. */
const PROXY_ADDRESS = '127.0.0.2';

let s: TestStack;
let receiver: OtlpReceiver;
let upstream: RecordingUpstream;
let gateway: GatewayProcess;

beforeAll(async () => {
  const redisUrl = inject('redisUrl');
  receiver = await startOtlpReceiver();
  upstream = await startRecordingUpstream();
  s = await startTestStack({ platformAdmins: ['pat'], redisUrl, upstreamUrl: upstream.url });
  const ok = (sub: string, method: string, path: string, body?: unknown) => adminOk(s, sub, method, path, body);
  await ok('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await ok('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't2', name: 'T2' });
  await ok('olivia', 'PUT', '/tenants/t1/roles/admin/tom');
  gateway = await startGatewayProcess(
    s.replicaEnv({
      REDIS_URL: redisUrl,
      TRUSTED_PROXIES: PROXY_ADDRESS,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: 'tiergate-under-test',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    }),
  );
});

afterAll(async () => {
  await gateway?.stop();
});

interface Answer {
  status: number;
  requestId: string;
}

/** GET through the gateway from `localAddress` (the peer address the gateway sees). */
function get(path: string, headers: Record<string, string>, localAddress = '127.0.0.1'): Promise<Answer> {
  const url = new URL(path, gateway.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'GET', headers, localAddress, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, requestId: String(res.headers['x-request-id']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The SERVER span of the request with this id, once it has arrived. */
async function serverSpan(requestId: string): Promise<ReceivedSpan> {
  const find = () => receiver.spans.find((sp) => sp.kind === SPAN_KIND.server && sp.attributes['tiergate.request_id'] === requestId);
  expect(await waitFor(() => find() !== undefined, 15_000), `server span of request ${requestId}`).toBe(true);
  return find()!;
}

function childrenOf(parent: ReceivedSpan): ReceivedSpan[] {
  return receiver.spans.filter((sp) => sp.traceId === parent.traceId && sp.parentSpanId === parent.spanId);
}

function only(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const found = spans.filter((sp) => sp.name === name);
  expect(found.map((sp) => sp.name), `exactly one ${name} among ${spans.map((sp) => sp.name).join(', ')}`).toEqual([name]);
  return found[0]!;
}

const CLIENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CLIENT_SPAN = 'b7ad6b7169203331';
const CLIENT_TRACEPARENT = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;

describe('tracing with OTEL_EXPORTER_OTLP_ENDPOINT set', () => {
  it('exports an allowed request as one tree: stages under the server span, OpenFGA under authorize, forward last; the upstream continues it', async () => {
    const tom = await s.authHeader('tom');
    upstream.clear();
    const res = await get('/api/v1/tenants/t1/agents', { authorization: tom, traceparent: CLIENT_TRACEPARENT });
    expect(res.status).toBe(200);

    const root = await serverSpan(res.requestId);
    // From an untrusted peer (127.0.0.1) the client's traceparent starts nothing: a new trace, no parent.
    expect(root.traceId).not.toBe(CLIENT_TRACE);
    expect(root.parentSpanId).toBe('');
    expect(root.resource['service.name']).toBe('tiergate-under-test');
    expect(root.attributes['http.response.status_code']).toBe(200);
    expect(root.attributes['http.route']).toBe('/api/v1/tenants/{tenantId}/agents');

    await receiver.trace(root.traceId, 8);
    await waitFor(() => childrenOf(root).some((sp) => sp.name === 'tiergate.forward'), 15_000);
    const children = childrenOf(root);
    for (const stage of ['tiergate.normalise', 'tiergate.authenticate', 'tiergate.policy', 'tiergate.edge_policy', 'tiergate.authorize']) {
      expect(only(children, stage).kind).toBe(SPAN_KIND.internal);
    }
    const authorize = only(children, 'tiergate.authorize');
    expect(authorize.attributes['tiergate.decision']).toBe('allow');
    expect(authorize.attributes['tiergate.cache_layer']).toBe('openfga');
    expect(only(children, 'tiergate.policy').attributes['tiergate.permission']).toBe('can_read_operational');

    const underAuthorize = childrenOf(authorize);
    const check = only(underAuthorize, 'openfga.check');
    expect(check.kind).toBe(SPAN_KIND.client);
    expect(check.attributes['rpc.method']).toBe('Check');
    expect(only(underAuthorize, 'tiergate.redis.lookup').attributes['tiergate.redis.hit']).toBe(false);

    const forward = only(children, 'tiergate.forward');
    expect(forward.kind).toBe(SPAN_KIND.client);
    expect(forward.attributes['tiergate.upstream']).toBe('tenant-service');
    // The upstream saw the gateway's traceparent (the forward span), never the client's.
    expect(upstream.received).toHaveLength(1);
    expect(upstream.received[0]!.headers.traceparent).toBe(`00-${root.traceId}-${forward.spanId}-01`);

    // The gateway's access line for this request carries the same trace id.
    const line = gateway
      .output()
      .split('\n')
      .filter((l) => l.includes(res.requestId) && l.includes('"msg":"request"'))
      .map((l) => JSON.parse(l) as { trace_id?: string; span_id?: string; status?: number });
    expect(line).toHaveLength(1);
    expect(line[0]).toMatchObject({ trace_id: root.traceId, span_id: root.spanId, status: 200 });
  });

  it('exports a denied request without a forward span, with 403 on the server span and deny on authorize', async () => {
    const tom = await s.authHeader('tom');
    upstream.clear();
    const res = await get('/api/v1/tenants/t2/agents', { authorization: tom });
    expect(res.status).toBe(403);
    const root = await serverSpan(res.requestId);
    expect(root.attributes['http.response.status_code']).toBe(403);
    await receiver.trace(root.traceId, 6);
    const children = childrenOf(root);
    expect(children.map((sp) => sp.name).sort()).toEqual(['tiergate.authenticate', 'tiergate.authorize', 'tiergate.edge_policy', 'tiergate.normalise', 'tiergate.policy']);
    expect(only(children, 'tiergate.authorize').attributes['tiergate.decision']).toBe('deny');
    expect(receiver.spans.filter((sp) => sp.traceId === root.traceId && sp.name === 'tiergate.forward')).toEqual([]);
    expect(upstream.received).toHaveLength(0);
    const line = gateway.output().split('\n').find((l) => l.includes(res.requestId) && l.includes('"msg":"request"'));
    expect(JSON.parse(line!)).toMatchObject({ trace_id: root.traceId, status: 403 });
  });

  it("continues a trusted proxy's traceparent, and the upstream sees the gateway's span in that trace", async () => {
    const tom = await s.authHeader('tom');
    upstream.clear();
    const res = await get('/api/v1/tenants/t1/agents', { authorization: tom, traceparent: CLIENT_TRACEPARENT }, PROXY_ADDRESS);
    expect(res.status).toBe(200);
    const root = await serverSpan(res.requestId);
    expect([root.traceId, root.parentSpanId]).toEqual([CLIENT_TRACE, CLIENT_SPAN]);
    await waitFor(() => childrenOf(root).some((sp) => sp.name === 'tiergate.forward'), 15_000);
    const forward = only(childrenOf(root), 'tiergate.forward');
    expect(upstream.received[0]!.headers.traceparent).toBe(`00-${CLIENT_TRACE}-${forward.spanId}-01`);
  });

  it('sends OTLP/HTTP protobuf', () => {
    expect(receiver.contentTypes.length).toBeGreaterThan(0);
    expect(new Set(receiver.contentTypes)).toEqual(new Set(['application/x-protobuf']));
  });
});
