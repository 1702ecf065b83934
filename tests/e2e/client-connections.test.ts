// The gateway's connections to its clients. An idle keep-alive connection must be closed
// by the client side first: a client that does not honour `Keep-Alive: timeout` (Go's
// net/http, load balancers) sends a request on a connection the gateway is closing at that
// very moment, and a PUT or DELETE that meets the close is lost. So the gateway keeps an
// idle connection GATEWAY_KEEPALIVE_TIMEOUT_S (75 s), far past Node's own 5 s.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useCleanup } from '../support/cleanup.js';
import { startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

interface KeptAlive {
  socket: Socket;
  /** Resolves with the ms from the end of the response until the gateway closed the connection. */
  closedAfter: Promise<number>;
  /** The response's Keep-Alive header. */
  keepAlive: string | undefined;
}

/** One GET /healthz on a fresh keep-alive connection; the connection stays open afterwards. */
function requestKeptAlive(port: number): Promise<KeptAlive> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
    let text = '';
    let answeredAt = 0;
    const closedAfter = new Promise<number>((done) => socket.once('end', () => done(Date.now() - answeredAt)));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const headEnd = text.indexOf('\r\n\r\n');
      if (headEnd < 0 || answeredAt !== 0) return;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? Number.NaN);
      if (text.length < headEnd + 4 + length) return;
      answeredAt = Date.now();
      expect(text.startsWith('HTTP/1.1 200')).toBe(true);
      resolve({ socket, closedAfter, keepAlive: /\r\nkeep-alive: *([^\r]*)/i.exec(text)?.[1] });
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('client keep-alive', () => {
  let byDefault: TestStack;
  let short: TestStack;
  beforeAll(async () => {
    [byDefault, short] = await Promise.all([startTestStack(), startTestStack({ env: { GATEWAY_KEEPALIVE_TIMEOUT_S: '1' } })]);
  });
  afterAll(async () => {
    await Promise.all([byDefault?.stop(), short?.stop()]);
  });

  it('keeps an idle connection past Node’s 5 s by default, and says for how long', async () => {
    const c = await requestKeptAlive(byDefault.gatewayPort);
    expect(c.keepAlive).toBe('timeout=75');
    let closed = false;
    void c.closedAfter.then(() => (closed = true));
    await sleep(5500);
    expect(closed).toBe(false);
    // Still usable: a second request on it is answered.
    const again = new Promise<string>((resolve) => c.socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    c.socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    expect(await again).toMatch(/^HTTP\/1\.1 200/);
    c.socket.destroy();
  });

  it('closes an idle connection after GATEWAY_KEEPALIVE_TIMEOUT_S', async () => {
    const c = await requestKeptAlive(short.gatewayPort);
    expect(c.keepAlive).toBe('timeout=1');
    const after = await c.closedAfter;
    expect(after).toBeGreaterThanOrEqual(900);
    expect(after).toBeLessThan(3000);
    c.socket.destroy();
  });
});
