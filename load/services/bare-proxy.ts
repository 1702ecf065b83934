// The baseline that separates proxy cost from auth cost: a reverse proxy with no
// authentication or authorization, built exactly like the gateway's forward stage
// (http-proxy-middleware 3, the same options and the same upstream connection pool),
// on a plain node:http server. Headers pass through untouched, so a request that
// carries a valid gateway assertion is answered by the upstream as usual.
// WORKERS (default 1) runs it under node:cluster like the gateway, so both compete for
// the cores with the same number of processes and the difference between them is the
// auth work, not the process layout.
// HONO_MIDDLEWARES=N (row h of the bench) puts the same proxy inside a Hono app on
// @hono/node-server, under /api/v1 behind N middlewares that do nothing but set a
// variable and call next(): the framework's share of the gateway's cost, apart from
// what the gateway's own stages do.
// BURN_US=N (`npm run bench -- --bare-burn-us N`) makes the plain proxy spin N µs of CPU
// per request before proxying: a control that asks whether the gateway's extra CPU alone
// explains its latency, never a baseline.
// Prints `READY <url>` on stdout; stops on SIGTERM.
import cluster from 'node:cluster';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { Hono, type MiddlewareHandler } from 'hono';
import { createProxyMiddleware, type Plugin } from 'http-proxy-middleware';
import { proxyTarget, rememberKeepAliveHint, UpstreamAgent } from '../../src/gateway/forward.js';

const targetUrl = process.env.TARGET;
if (!targetUrl) throw new Error('TARGET is required');
const target: string = targetUrl;

const workers = Number(process.env.WORKERS ?? 1);
const honoMiddlewares = process.env.HONO_MIDDLEWARES === undefined ? undefined : Number(process.env.HONO_MIDDLEWARES);
const port = Number(process.env.PORT ?? 0);
const burnUs = Number(process.env.BURN_US ?? 0);

if (workers > 1 && cluster.isPrimary) {
  if (port === 0) throw new Error('PORT is required with WORKERS > 1');
  let listening = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().once('listening', () => {
      if (++listening === workers) process.stdout.write(`READY http://127.0.0.1:${port}\n`);
    });
  }
  const stopAll = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
    setTimeout(() => process.exit(0), 2000).unref();
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
    });
  };
  process.once('SIGTERM', stopAll);
  process.once('SIGINT', stopAll);
} else {
  serve();
}

function serve(): void {
  const events: Plugin = (proxyServer) => {
    // The same upstream pool as the gateway's; headers pass on untouched.
    proxyServer.on('proxyRes', (proxyRes) => rememberKeepAliveHint(proxyRes));
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
    agent: new UpstreamAgent(),
    ejectPlugins: true,
    plugins: [events],
  });

  const plain: RequestListener =
    burnUs > 0
      ? (req, res) => {
          burn();
          void proxy(req, res);
        }
      : (req, res) => void proxy(req, res);
  const server = createServer(honoMiddlewares === undefined ? plain : inHono(proxy, honoMiddlewares));
  server.listen(port, '127.0.0.1', () => {
    // A cluster worker: the primary says READY once every worker listens.
    if (cluster.isWorker) return;
    const { port: bound } = server.address() as AddressInfo;
    process.stdout.write(`READY http://127.0.0.1:${bound}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

type ProxyEnv = { Bindings: { incoming: IncomingMessage; outgoing: ServerResponse } };

/** The proxy as the handler of a Hono app, under /api/v1 behind `n` do-nothing middlewares. */
function inHono(proxy: (req: IncomingMessage, res: ServerResponse) => Promise<void>, n: number): RequestListener {
  const noop: MiddlewareHandler<ProxyEnv> = async (c, next) => {
    c.set('seen' as never, true as never);
    await next();
  };
  const api = new Hono<ProxyEnv>();
  if (n > 0) api.use('*', ...Array.from({ length: n }, () => noop));
  api.all('*', async (c) => {
    await proxy(c.env.incoming, c.env.outgoing);
    return RESPONSE_ALREADY_SENT;
  });
  const app = new Hono<ProxyEnv>();
  app.route('/api/v1', api);
  const listener = getRequestListener(app.fetch);
  // The listener answers its own errors (500) and never rejects, so its promise has nothing left to report.
  return (req, res) => void listener(req, res);
}

/** Spins for BURN_US of CPU time (a busy loop, no allocation): the control's extra work. */
function burn(): void {
  const until = performance.now() + burnUs / 1000;
  while (performance.now() < until);
}
