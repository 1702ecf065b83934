// What a warm proxied request costs the gateway in asynchronous work, counted rather than
// timed: the promises it creates and the timers it starts, through a real gateway to a
// recording upstream. The same requests sent straight to the upstream are the baseline
// (the test's own client and the upstream create promises too). A stage that awaits when
// it has nothing to wait for, or a cache that arms a timer per lookup, shows up here.
import { createHook } from 'node:async_hooks';
import { beforeAll, describe, expect, it } from 'vitest';
import { useCleanup } from '../support/cleanup.js';
import { sendRaw } from '../support/raw-http.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { seedTenantT1, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

const AGENTS = '/api/v1/tenants/t1/agents';
/** Promises a warm request creates in the gateway: Hono's dispatch of its three middlewares (request context, the stages as one, forward), @hono/node-server and http-proxy-middleware. */
const MAX_PROMISES = 26;
const REQUESTS = 40;

let s: TestStack;
let upstream: RecordingUpstream;
let tom: string;

/** Async resources created, by type, per request of `REQUESTS` sent one after another to `port`, after ten of warm-up. */
async function createdPerRequest(port: number): Promise<Map<string, number>> {
  const send = async () => {
    upstream.clear();
    const res = await sendRaw(port, `GET ${AGENTS}`, [tom]);
    expect(res.status, res.body).toBe(200);
  };
  for (let i = 0; i < 10; i++) await send();
  const created = new Map<string, number>();
  const hook = createHook({
    init(_id, type) {
      created.set(type, (created.get(type) ?? 0) + 1);
    },
  });
  hook.enable();
  try {
    for (let i = 0; i < REQUESTS; i++) await send();
  } finally {
    hook.disable();
  }
  return new Map([...created].map(([type, n]) => [type, n / REQUESTS]));
}

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  s = await startTestStack({ platformAdmins: ['pat'], upstreamUrl: upstream.url });
  tom = `Authorization: ${await seedTenantT1(s)}`;
});

describe('a warm proxied request', () => {
  it(`creates at most ${MAX_PROMISES} promises in the gateway, and starts no timer of its own beyond the upstream connection's`, async () => {
    const direct = await createdPerRequest(Number(new URL(upstream.url).port));
    const gateway = await createdPerRequest(s.gatewayPort);
    const more = (type: string) => (gateway.get(type) ?? 0) - (direct.get(type) ?? 0);
    expect(more('PROMISE')).toBeGreaterThan(0);
    expect(more('PROMISE')).toBeLessThanOrEqual(MAX_PROMISES);
    // The upstream request's time limit and the pooled connection's idle limit (both socket
    // timers), and the recording upstream's keep-alive timer for that connection (it runs in
    // this process); the direct requests close their connection, so they start none of these.
    expect(more('Timeout')).toBe(3);
  });
});
