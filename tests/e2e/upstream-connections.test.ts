// The gateway's connections to the upstream. An idle keep-alive connection is closed by
// the gateway a second before the upstream's announced timeout (`Keep-Alive: timeout=N`),
// so no request is written to a connection the upstream is closing at that moment: that
// race ends in ECONNRESET, and the client gets a 502 for a request that did nothing wrong.
import { beforeAll, describe, expect, it } from 'vitest';
import { useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { seedTenantT1, startTestStack, type TestStack } from '../support/test-stack.js';
import { waitFor } from '../support/wait.js';

useCleanup();

/** The upstream's own idle timeout: it announces `timeout=3`, so the gateway keeps an idle connection 2 s. */
const UPSTREAM_KEEP_ALIVE_MS = 3000;

let s: TestStack;
let upstream: RecordingUpstream;
let tom: string;

beforeAll(async () => {
  upstream = await startRecordingUpstream({ keepAliveTimeoutMs: UPSTREAM_KEEP_ALIVE_MS });
  s = await startTestStack({ platformAdmins: ['pat'], upstreamUrl: upstream.url });
  tom = await seedTenantT1(s);
});

describe('upstream keep-alive', () => {
  it('reuses an idle connection, and closes it itself a second before the upstream would', async () => {
    const first = await call(s.gatewayUrl, 'GET', '/api/v1/tenants/t1/agents', { auth: tom });
    expect(first.status).toBe(200);
    const conns = upstream.connections.length;
    const second = await call(s.gatewayUrl, 'GET', '/api/v1/tenants/t1/queues', { auth: tom });
    expect(second.status).toBe(200);
    // Kept alive: the second request went over the same connection.
    expect(upstream.connections.length).toBe(conns);

    const conn = upstream.connections.at(-1)!;
    // The gateway ends it (a FIN the upstream sees) before the upstream's own timeout,
    // which would destroy the socket from its side without one.
    expect(await waitFor(() => conn.peerEndedAt !== undefined, UPSTREAM_KEEP_ALIVE_MS + 2000)).toBe(true);
    const idleMs = conn.peerEndedAt! - conn.lastResponseAt!;
    expect(idleMs).toBeGreaterThanOrEqual(UPSTREAM_KEEP_ALIVE_MS - 1000 - 100);
    expect(idleMs).toBeLessThan(UPSTREAM_KEEP_ALIVE_MS - 100);
  });
});
