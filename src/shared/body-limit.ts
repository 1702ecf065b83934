// Hono's body limit, run only for requests that carry a body.
//
// Why not hono/body-limit on every request: it reads `c.req.raw.body`, and on
// @hono/node-server that turns the request into a whole WHATWG Request with an
// AbortSignal, whose WeakRef and FinalizationRegistry entries keep it alive through
// young-generation collections. Under a steady load of GETs that fills the old space
// quickly, and every full collection it sets off stalls each request in flight.
// A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 §6.3),
// so there is nothing to limit.
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { incomingOf } from './node-incoming.js';

/** hono's own options (its type is not exported). */
type BodyLimitOptions = Parameters<typeof bodyLimit>[0];

/**
 * Might the request carry a body? On @hono/node-server, from Node's parsed headers; with no
 * Node request behind it (app.request, other runtimes) the Request is already whole and
 * hono's own check of it costs nothing, so the limit decides.
 */
function mayHaveBody(c: Context): boolean {
  const incoming = incomingOf(c);
  if (incoming === undefined) return true;
  return incoming.headers['content-length'] !== undefined || incoming.headers['transfer-encoding'] !== undefined;
}

export function bodyLimitWhenBody(options: BodyLimitOptions): MiddlewareHandler {
  const limit = bodyLimit(options);
  return (c, next) => (mayHaveBody(c) ? limit(c, next) : next());
}
