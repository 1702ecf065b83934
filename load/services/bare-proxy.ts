// The baseline that separates proxy cost from auth cost: a reverse proxy with no
// authentication or authorization, built exactly like the gateway's forward stage
// (http-proxy-middleware 3, the same options and the same upstream agent settings),
// on a plain node:http server. Headers pass through untouched, so a request that
// carries a valid gateway assertion is answered by the upstream as usual.
// Prints `READY <url>` on stdout; stops on SIGTERM.
import { Agent, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createProxyMiddleware, type Plugin } from 'http-proxy-middleware';
import { proxyTarget, UPSTREAM_AGENT_OPTIONS } from '../../src/gateway/forward.js';

const target = process.env.TARGET;
if (!target) throw new Error('TARGET is required');

const errors: Plugin = (proxyServer) => {
  proxyServer.on('error', (_err, _req, res) => {
    const out = res as ServerResponse;
    if (typeof out.writeHead !== 'function') return;
    if (out.headersSent) out.destroy();
    else out.writeHead(502, { 'content-type': 'text/plain' }).end('upstream unavailable');
  });
};
const proxy = createProxyMiddleware<IncomingMessage, ServerResponse>({
  target: proxyTarget(target),
  changeOrigin: true,
  xfwd: true,
  agent: new Agent(UPSTREAM_AGENT_OPTIONS),
  ejectPlugins: true,
  plugins: [errors],
});

const server = createServer((req, res) => {
  void proxy(req, res);
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`READY http://127.0.0.1:${port}\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
