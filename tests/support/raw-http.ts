// HTTP requests written byte for byte on a socket, for targets that fetch/undici would
// normalise (no client-side URL parsing resolves `..` or rewrites `\`), and a Hono app
// served on a real Node HTTP server (port 0) to receive them untouched.
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';

export interface RawResponse {
  status: number;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: string;
  /** The body parsed as JSON when it is JSON, else undefined. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * Writes `requestLine` (e.g. `GET /a/../b`; ` HTTP/1.1` is appended), a Host header,
 * `headers` and `Connection: close` (unless `headers` has a Connection line) exactly
 * as given, as latin1 bytes ("\u00e9" is the one byte 0xE9; pass a Buffer for other
 * bytes), and reads the answer until the server closes the connection.
 */
export function sendRaw(
  port: number,
  requestLine: string | Buffer,
  headers: string[] = [],
  opts: { body?: string; host?: string; timeoutMs?: number; localAddress?: string } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    // localAddress: another loopback address (127.0.0.2) to stand for another peer.
    const socket = connect({ port, host: '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${opts.timeoutMs ?? 10_000} ms`));
    }, opts.timeoutMs ?? 10_000);
    socket.once('connect', () => {
      const body = opts.body ?? '';
      const lines = [
        `Host: ${opts.host ?? `127.0.0.1:${port}`}`,
        ...headers,
        ...(body ? [`Content-Length: ${Buffer.byteLength(body)}`] : []),
        // The caller's own Connection header replaces ours (it should include `close`).
        ...(headers.some((h) => /^connection:/i.test(h)) ? [] : ['Connection: close']),
        '',
        '',
      ].join('\r\n');
      const line = typeof requestLine === 'string' ? Buffer.from(`${requestLine} HTTP/1.1\r\n`, 'latin1') : Buffer.concat([requestLine, Buffer.from(' HTTP/1.1\r\n')]);
      socket.write(Buffer.concat([line, Buffer.from(lines, 'latin1'), Buffer.from(body, 'utf8')]));
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      clearTimeout(timer);
      // The server may answer and reset at once (e.g. a parse error); keep what arrived.
      if (chunks.length > 0) finish();
      else reject(err);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      finish();
    });
    let finished = false;
    function finish(): void {
      if (finished) return;
      finished = true;
      resolve(parseResponse(Buffer.concat(chunks)));
    }
  });
}

function parseResponse(raw: Buffer): RawResponse {
  const text = raw.toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  let body = split < 0 ? '' : text.slice(split + 4);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') body = dechunk(body);
  const utf8 = Buffer.from(body, 'latin1').toString('utf8');
  let json: unknown;
  if (/json/.test(headers['content-type'] ?? '') && utf8 !== '') {
    try {
      json = JSON.parse(utf8);
    } catch {
      json = undefined;
    }
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: utf8, json };
}

function dechunk(body: string): string {
  let out = '';
  let rest = body;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) return out;
    const size = parseInt(rest.slice(0, eol), 16);
    if (!size) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

export interface RawServer {
  port: number;
  send(requestLine: string, headers?: string[]): Promise<RawResponse>;
  close(): Promise<void>;
}

type Fetch = (req: Request, env: never) => Response | Promise<Response>;

export async function serveRaw(fetch: Fetch, errorHandler?: (err: unknown) => Response): Promise<RawServer> {
  const listener = getRequestListener(fetch as never, errorHandler ? { errorHandler } : {});
  // The listener answers every error itself, as in src/server/gateway-server.ts.
  const server: Server = createServer((req, res) => void listener(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    send: (requestLine, headers = []) => sendRaw(port, requestLine, headers),
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
}
