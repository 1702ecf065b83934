import type { Server } from 'node:http';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';

/**
 * Listens on a free loopback port and can stop (connections refused, open ones
 * dropped) and listen again on the same port: how the recording upstream and the
 * TCP relay simulate a server going away and coming back.
 */
export async function reopenableListener(
  server: Server | NetServer,
  sockets: ReadonlySet<Socket>,
): Promise<{ port: number; listen(): Promise<void>; close(): Promise<void>; isListening(): boolean }> {
  let port = 0;
  let listening = false;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        port = (server.address() as AddressInfo).port;
        listening = true;
        resolve();
      });
    });
  const close = () =>
    new Promise<void>((resolve) => {
      for (const sock of sockets) sock.destroy();
      if (!listening) return resolve();
      listening = false;
      server.close(() => resolve());
    });
  await listen();
  return { port, listen, close, isListening: () => listening };
}
