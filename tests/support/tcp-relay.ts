// A loopback TCP relay in front of a server, to cut and restore it (connection
// refused) or make it answer 500.
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { owned } from './cleanup.js';
import { reopenableListener } from './reopenable-listener.js';

export type RelayMode = 'pass' | 'http-500';

export interface TcpRelay {
  /** http://127.0.0.1:<port>: point a client here instead of at the target. */
  url: string;
  port: number;
  /** `pass` pipes bytes to the target; `http-500` answers every request with a 500 itself. */
  mode: RelayMode;
  /** Connections opened so far (both modes). */
  readonly connections: number;
  /** Closes the listener and destroys every connection: new connections are refused. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A loopback TCP relay in front of `targetPort`, so a test can make a server
 * unreachable (connection refused) and reachable again without restarting it
 * (an in-memory OpenFGA would lose its data on restart).
 */
export async function startTcpRelay(targetPort: number): Promise<TcpRelay> {
  const sockets = new Set<Socket>();
  const state = { mode: 'pass' as RelayMode, connections: 0 };
  const track = (sock: Socket) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
  };
  const server = createNetServer((client) => {
    state.connections++;
    track(client);
    if (state.mode === 'http-500') {
      client.on('data', () => {
        const body = '{"code":"internal_error","message":"relay: injected failure"}';
        client.end(`HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      });
      return;
    }
    const target = connect(targetPort, '127.0.0.1');
    track(target);
    client.pipe(target);
    target.pipe(client);
    client.once('close', () => target.destroy());
    target.once('close', () => client.destroy());
  });
  const { listen, close: cut, port, isListening } = await reopenableListener(server, sockets);
  const stop = owned(cut);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get mode() {
      return state.mode;
    },
    set mode(m: RelayMode) {
      state.mode = m;
    },
    get connections() {
      return state.connections;
    },
    cut,
    restore: () => (isListening() ? Promise.resolve() : listen()),
    stop,
  };
}
