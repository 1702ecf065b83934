// A tiny node:http server recording every request it gets, to stand for the upstream.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { owned } from './cleanup.js';
import { reopenableListener } from './reopenable-listener.js';

export interface RecordedRequest {
  method: string;
  /** The request target exactly as received. */
  url: string;
  headers: IncomingHttpHeaders;
  /** Every header line as received: [name, value, name, value, …]. */
  rawHeaders: string[];
  body: string;
}

export type UpstreamMode = 'ok' | 'hang';

export interface RecordingUpstream {
  url: string;
  port: number;
  readonly received: RecordedRequest[];
  /** `ok` answers 200 JSON; `hang` records the request and never answers (until stop). */
  mode: UpstreamMode;
  /** Every connection the upstream accepted, in order: when its last response went out, and when the peer closed it. */
  readonly connections: UpstreamConnection[];
  /** Forget what was recorded. */
  clear(): void;
  /** Stops listening (connections refused) and drops open connections; `listen()` starts it again on the same port. */
  close(): Promise<void>;
  listen(): Promise<void>;
  stop(): Promise<void>;
}

export interface UpstreamConnection {
  /** Date.now() when the last response on it was finished. */
  lastResponseAt?: number;
  /** Date.now() when the peer (the gateway) ended it; unset if the upstream closed it first. */
  peerEndedAt?: number;
}

/** `keepAliveTimeoutMs`: the upstream's own idle timeout (Node's default 5 s), announced as `Keep-Alive: timeout=N`. */
export async function startRecordingUpstream(opts: { keepAliveTimeoutMs?: number } = {}): Promise<RecordingUpstream> {
  const received: RecordedRequest[] = [];
  const connections: UpstreamConnection[] = [];
  const bySocket = new WeakMap<Socket, UpstreamConnection>();
  const sockets = new Set<Socket>();
  const state = { mode: 'ok' as UpstreamMode };
  const server: Server = createServer((req, res) => {
    res.once('finish', () => {
      const conn = bySocket.get(req.socket);
      if (conn) conn.lastResponseAt = Date.now();
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: [...req.rawHeaders], body: Buffer.concat(chunks).toString('utf8') });
      if (state.mode === 'hang') return;
      const body = JSON.stringify({ recorded: true, method: req.method, url: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  if (opts.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = opts.keepAliveTimeoutMs;
  server.on('connection', (s) => {
    const conn: UpstreamConnection = {};
    connections.push(conn);
    bySocket.set(s, conn);
    // 'end' is the peer's FIN; a socket the server times out itself is destroyed without it.
    s.once('end', () => {
      conn.peerEndedAt = Date.now();
    });
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const { listen, close, port } = await reopenableListener(server, sockets);
  const stop = owned(close);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    connections,
    get mode() {
      return state.mode;
    },
    set mode(m: UpstreamMode) {
      state.mode = m;
    },
    clear: () => void received.splice(0, received.length),
    close,
    listen,
    stop,
  };
}
