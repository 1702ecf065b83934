// UpstreamAgent (src/gateway/forward.ts): how long an idle upstream connection is kept
// follows the upstream's Keep-Alive hint, kept on the socket by takeKeepAliveHint even
// though the forward stage removes the header. Real sockets on loopback.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { rememberKeepAliveHint, takeKeepAliveHint, UpstreamAgent } from '../../../src/gateway/forward.js';

let server: Server | undefined;
let agent: UpstreamAgent | undefined;

afterEach(async () => {
  agent?.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server?.closeAllConnections();
  server = agent = undefined;
});

/** An upstream that announces `keepAlive` (or nothing) and never times connections out itself. */
async function upstreamAnnouncing(keepAlive: string | undefined): Promise<number> {
  server = createServer((_req, res) => {
    if (keepAlive !== undefined) res.setHeader('keep-alive', keepAlive);
    res.end('ok');
  });
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as AddressInfo).port;
}

/** One GET through the agent, handled as the forward stage does; resolves with the socket once the agent has kept or dropped it. */
async function getThrough(port: number, keepHint = takeKeepAliveHint): Promise<{ socket: Socket; hintLeft: string | string[] | undefined }> {
  agent ??= new UpstreamAgent();
  const a = agent;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: a }, (res) => {
      keepHint(res);
      const hintLeft = res.headers['keep-alive'];
      const socket = res.socket as Socket;
      res.resume();
      res.on('end', () => setImmediate(() => resolve({ socket, hintLeft })));
    });
    req.on('error', reject);
    req.end();
  });
}

const kept = (socket: Socket) => Object.values(agent!.freeSockets).some((list) => list?.includes(socket));

describe('UpstreamAgent', () => {
  it('keeps an idle connection until a second before the announced timeout, and the header does not reach the client', async () => {
    const { socket, hintLeft } = await getThrough(await upstreamAnnouncing('timeout=5'));
    expect(hintLeft).toBeUndefined();
    expect(kept(socket)).toBe(true);
    expect(socket.timeout).toBe(4000);
  });

  it('reads the timeout among other Keep-Alive parameters', async () => {
    const { socket } = await getThrough(await upstreamAnnouncing('max=100, timeout=3'));
    expect(kept(socket)).toBe(true);
    expect(socket.timeout).toBe(2000);
  });

  it('does not reuse a connection whose announced timeout leaves no margin', async () => {
    const { socket } = await getThrough(await upstreamAnnouncing('timeout=1'));
    expect(kept(socket)).toBe(false);
    expect(socket.destroyed).toBe(true);
  });

  it('keeps a connection without a hint as Node does (no idle timeout of its own)', async () => {
    const { socket } = await getThrough(await upstreamAnnouncing(undefined));
    expect(kept(socket)).toBe(true);
    expect(socket.timeout ?? 0).toBe(0);
  });

  it('applies the hint a proxy remembered without removing the header (the bare proxy)', async () => {
    const { socket, hintLeft } = await getThrough(await upstreamAnnouncing('timeout=5'), rememberKeepAliveHint);
    expect(hintLeft).toBe('timeout=5');
    expect(kept(socket)).toBe(true);
    expect(socket.timeout).toBe(4000);
  });
});
