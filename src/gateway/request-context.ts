// Stage 0: a request id (the client's only when it comes from a trusted proxy and
// looks like an id; otherwise a new one), a child logger, and the one structured
// log line per request, written when the response has really gone out (for
// proxied requests that is after the upstream answered).
import { randomUUID } from 'node:crypto';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context, MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import { headerValue } from '../shared/node-incoming.js';
import type { TrustedPeers } from '../shared/trusted-proxies.js';
import { endSpan, extractTraceContext, SpanKind, startSpan, traceIds, tracingEnabled, withSpan, type Span } from '../shared/tracing.js';
import type { GatewayMetrics } from './metrics.js';
import type { GatewayEnv } from './types.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface RequestContextOptions {
  logger: Logger;
  trustedProxies: TrustedPeers;
  metrics?: GatewayMetrics;
}

/**
 * The request's metric and access line, once its response has gone out. A module-level
 * function, not a closure made per request: the dev loader (tsx, keepNames) names every
 * named closure with Object.defineProperty, a cost on every request.
 */
function finish(c: Context<GatewayEnv>, opts: RequestContextOptions, requestId: string, startedAt: number, status: number, span: Span | undefined): void {
  const durationMs = performance.now() - startedAt;
  if (span) endServerSpan(c, span, status);
  // c.get, not c.var: Hono's `var` getter copies every variable into a new object.
  const policy = c.get('policy');
  const route = policy?.route ?? (status === 404 ? 'unmatched' : c.req.routePath);
  opts.metrics?.requestDuration.observe({ route, method: c.req.method, status: String(status) }, durationMs / 1000);
  // The access line is built only when it will be written (LOG_LEVEL info or lower).
  if (!opts.logger.isLevelEnabled('info')) return;
  const v = c.var;
  // Never the token, never request bodies.
  opts.logger.info(
    {
      requestId,
      // The canonical method: in forward-auth, the original request's, not the question's.
      method: v.canonical?.method ?? c.req.method,
      path: v.canonical?.path ?? '(rejected before normalisation)',
      status,
      principal: v.principal?.subject,
      permission: v.policy?.permission,
      object: v.policy?.object,
      policyVersion: v.policyVersion,
      decision: v.decision ? (v.decision.allowed ? 'allow' : 'deny') : undefined,
      cacheLayer: v.decision?.layer,
      decisionMs: v.decision ? Number(v.decision.durationMs.toFixed(3)) : undefined,
      durationMs: Number(durationMs.toFixed(3)),
      ...(span ? traceIds(span) : undefined),
    },
    'request',
  );
}

export function requestContext(opts: RequestContextOptions): MiddlewareHandler<GatewayEnv> {
  return async (c, next) => {
    const startedAt = performance.now();
    const incoming = c.env?.incoming;
    const peer = incoming?.socket.remoteAddress ?? '';
    // Node's parsed headers when there are any (Hono's c.req.header builds a Headers view first).
    const offered = incoming ? headerValue(incoming.headers['x-request-id']) : c.req.header('x-request-id');
    const requestId = offered && opts.trustedProxies.has(peer) && REQUEST_ID.test(offered) ? offered : randomUUID();
    c.set('requestId', requestId);
    c.set('startedAt', startedAt);
    c.set('log', opts.logger);
    // Tracing on: the request's server span, continuing a trusted proxy's trace only.
    const span = tracingEnabled() ? startServerSpan(c, opts.trustedProxies.has(peer) ? incoming?.headers : undefined) : undefined;

    const outgoing = c.env?.outgoing;
    // `on`, not `once`: a response finishes once, and once() would wrap the listener and
    // remove it again on every request.
    if (outgoing) outgoing.on('finish', () => finish(c, opts, requestId, startedAt, outgoing.statusCode, span));
    await (span ? withSpan(span, next) : next());
    // A proxied response was written by the forward stage (with the id); the sentinel
    // Hono gets back is shared by every request and must not be touched.
    const res = c.res;
    if (res !== RESPONSE_ALREADY_SENT && !res.headers.has('x-request-id')) res.headers.set('x-request-id', requestId);
    if (!outgoing) finish(c, opts, requestId, startedAt, c.res.status, span);
  };
}

/**
 * The request's SERVER span (undefined when tracing is off): a child of the trace the
 * `traceparent` in `trustedHeaders` names, else the root of a new trace. A client's
 * own `traceparent` is never continued: `trustedHeaders` is a trusted proxy's only.
 */
function startServerSpan(c: Context<GatewayEnv>, trustedHeaders: Record<string, string | string[] | undefined> | undefined): Span | undefined {
  const span = startSpan('tiergate.request', SpanKind.SERVER, undefined, extractTraceContext(trustedHeaders));
  return span === undefined ? undefined : describeRequest(c, span);
}

function describeRequest(c: Context<GatewayEnv>, span: Span): Span {
  span.setAttribute('http.request.method', c.req.method);
  span.setAttribute('tiergate.request_id', c.get('requestId'));
  return span;
}

function endServerSpan(c: Context<GatewayEnv>, span: Span, status: number): void {
  const policy = c.get('policy');
  if (policy) {
    span.setAttribute('http.route', policy.route);
    span.updateName(`${c.req.method} ${policy.route}`);
  }
  span.setAttribute('http.response.status_code', status);
  endSpan(span, status >= 500 ? `status ${status}` : undefined);
}
