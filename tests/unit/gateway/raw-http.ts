// Serves a Hono app on a real Node HTTP server (port 0) and sends
// requests byte for byte, so the raw request target reaches the app untouched
// (no client-side URL parsing resolves `..` or rewrites `\`).
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
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

/** `requestLine` is e.g. `GET /a/../b` (HTTP/1.1 is appended); bytes are sent as latin1. */
export function sendRaw(port: number, requestLine: string, headers: string[] = []): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      const head = [`${requestLine} HTTP/1.1`, `Host: 127.0.0.1:${port}`, ...headers, 'Connection: close', '', ''].join('\r\n');
      socket.write(Buffer.from(head, 'latin1'));
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      // latin1 keeps one char per byte so chunk sizes line up; the body is re-read as UTF-8 below.
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headerMap: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        headerMap[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      let body = rest.join('\r\n\r\n');
      if (headerMap['transfer-encoding'] === 'chunked') body = dechunk(body);
      resolve({ status: Number(statusLine.split(' ')[1]), headers: headerMap, body: Buffer.from(body, 'latin1').toString('utf8') });
    });
  });
}

function dechunk(body: string): string {
  let out = '';
  let rest = body;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, eol), 16);
    if (!size) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}
