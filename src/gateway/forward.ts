// Stage 5: forward the allowed, canonical request to the upstream service its rule
// names, with http-proxy-middleware (one proxy and one keep-alive pool per upstream,
// built at start). The upstream sees the canonical path (the one that was matched and
// authorized, less the upstream's stripPrefix), none of the client's identity or
// forwarding claims, and the gateway's signed assertion of who is calling for which
// tenants. Errors name the upstream by name, never by URL.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Agent } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { parse as parseUrl, type UrlWithStringQuery } from 'node:url';
import type { MiddlewareHandler } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { createProxyMiddleware, type Plugin } from 'http-proxy-middleware';
import { ASSERTION_HEADER } from '../shared/assertion.js';
import { headerValue } from '../shared/node-incoming.js';
import { PROBLEM_CONTENT_TYPE, Problem, type ProblemSlug } from '../shared/problem.js';
import { identityAssertion, type AssertionOptions } from './identity-assertion.js';
import { endSpan, injectTraceHeaders, SpanKind, startSpan, type Span } from '../shared/tracing.js';
import type { TrustedPeers } from '../shared/trusted-proxies.js';
import { regionalTargetName } from '../shared/upstream-url.js';
import { forwardedPath } from './policy.js';
import type { GatewayEnv } from './types.js';

export const SUBJECT_HEADER = 'x-tiergate-subject';

/**
 * Headers a client could use to claim an identity, tenant or gateway decision.
 * Matched after folding case and `_`/`.` to `-`, so `X_User_Id` and `x.tenant.id`
 * are caught too (some servers treat those spellings as the same header).
 */
const IDENTITY_HEADERS = new Set([
  'x-user-id',
  'x-user',
  'x-userid',
  'x-tenant-id',
  'x-tenant',
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-groups',
  'x-remote-user',
  'remote-user',
  'x-authenticated-user',
  'x-authenticated-userid',
  'x-principal',
  'x-request-id',
]);
const IDENTITY_PREFIXES = ['x-tiergate-', 'x-auth-request-'];
/** A loop, not `.some(closure)`: this runs for every header of every request. */
function hasIdentityPrefix(folded: string): boolean {
  for (const p of IDENTITY_PREFIXES) if (folded.startsWith(p)) return true;
  return false;
}
/**
 * Believed only from TRUSTED_PROXIES; http-proxy then appends the real peer. With
 * tracing on, the gateway's own `traceparent` replaces whatever arrived.
 */
const FORWARDING_HEADERS = new Set(['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-real-ip', 'traceparent', 'tracestate']);
/** Hop-by-hop (RFC 9110 §7.6.1) plus the client's bearer token, which the upstream must never need. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'authorization']);

function foldName(name: string): string {
  const lower = name.toLowerCase();
  // Most names hold neither: skip the regex (this runs for every header of every request).
  return lower.includes('_') || lower.includes('.') ? lower.replace(/[_.]/g, '-') : lower;
}

/**
 * The request's headers without anything the upstream must not believe, as a new
 * object: deleting from Node's own object would turn it into a slow dictionary that
 * every later reader (http-proxy, Node's client) pays for. Exported for its unit tests.
 */
export function sanitizedHeaders(headers: IncomingHttpHeaders, peerTrusted: boolean): IncomingHttpHeaders {
  // Headers named by the client's Connection header are hop-by-hop too; dropping
  // them here (before the gateway adds its own) means Connection cannot remove ours.
  const connection = headers.connection;
  const named =
    connection === undefined
      ? undefined
      : String(connection)
          .split(',')
          .map((s) => foldName(s.trim()))
          .filter((s) => s.length > 0);
  const kept: IncomingHttpHeaders = {};
  for (const name of Object.keys(headers)) {
    const folded = foldName(name);
    if (
      HOP_BY_HOP.has(folded) ||
      named?.includes(folded) ||
      IDENTITY_HEADERS.has(folded) ||
      hasIdentityPrefix(folded) ||
      (!peerTrusted && FORWARDING_HEADERS.has(folded))
    ) {
      continue;
    }
    kept[name] = headers[name];
  }
  return kept;
}

/** Where one upstream is and how it is called (server/upstreams.ts resolves them from the policy and configuration). */
export interface UpstreamTarget {
  /** The name rules use (PolicyDecisionRequest.upstream). */
  name: string;
  /** Origin only (http(s)://host:port). */
  url: string;
  /** Past it, 504. */
  timeoutMs: number;
  /** Removed from the front of the canonical path (the policy checked every rule's path starts with it). */
  stripPrefix?: string | undefined;
}

/** Told when an upstream exchange ends: the upstream's status (or `error` / `timeout`) and the seconds from sending to its last byte. */
export type UpstreamObserver = (outcome: number | 'error' | 'timeout', seconds: number) => void;

export interface ForwardOptions extends AssertionOptions {
  /** Every upstream a rule names. */
  upstreams: readonly UpstreamTarget[];
  trustedProxies: TrustedPeers;
  /** Called once per upstream proxy built: the observer of that upstream's exchanges (metrics). */
  onUpstream?: (upstream: string) => UpstreamObserver;
  /** The proxies, when the caller builds them ahead (a policy reload); default one made from onUpstream. */
  routes?: UpstreamRoutes;
}

interface ForwardState {
  requestId: string;
  timedOut: boolean;
  /** performance.now() when the request to the upstream was sent. */
  sentAt: number;
  /** The request to the upstream (the latest attempt). */
  upstreamReq?: import('node:http').ClientRequest;
  /**
   * The X-Forwarded-* values as the forward stage left them, for a second attempt:
   * http-proxy appends to the request's own headers on every attempt. Undefined when
   * there were none (the usual case: only a trusted proxy's are kept).
   */
  forwarded: Array<string | string[] | undefined> | undefined;
  retried: boolean;
}

const XFWD = ['x-forwarded-for', 'x-forwarded-port', 'x-forwarded-proto', 'x-forwarded-host'] as const;

/** Methods whose request can be sent again as it was: idempotent and without a body the client streamed. */
const REPLAYABLE = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A pooled connection the upstream closed just as a request was written to it: nothing
 * was answered, so an idempotent bodiless request can go again on a new connection
 * (what Node's documentation recommends for `reusedSocket`, and Go's Transport does).
 */
function replayable(err: Error, req: IncomingMessage, state: ForwardState | undefined): state is ForwardState {
  const code = (err as NodeJS.ErrnoException).code;
  return (
    state !== undefined &&
    !state.retried &&
    !state.timedOut &&
    state.upstreamReq?.reusedSocket === true &&
    (code === 'ECONNRESET' || code === 'EPIPE') &&
    REPLAYABLE.has(req.method ?? '') &&
    // A body was streamed to the first attempt and cannot be sent again.
    (req.headers['content-length'] === undefined || req.headers['content-length'] === '0') &&
    req.headers['transfer-encoding'] === undefined
  );
}
const STATE = Symbol('tiergate.forward');
type StatefulRequest = IncomingMessage & { [STATE]?: ForwardState };

function sendProblem(res: ServerResponse, status: number, slug: ProblemSlug, title: string, detail: string, requestId: string, upstream: string): void {
  const body = JSON.stringify(new Problem(status, slug, title, { detail, extensions: { upstream } }).details({ requestId }));
  res.writeHead(status, { 'content-type': PROBLEM_CONTENT_TYPE, 'content-length': Buffer.byteLength(body), 'x-request-id': requestId });
  res.end(body);
}

/** The upstream connection pool's settings (load/bare-proxy.ts uses the same, for a fair baseline). */
export const UPSTREAM_AGENT_OPTIONS = { keepAlive: true, maxSockets: 512 } as const;

const KEEP_ALIVE_HINT = Symbol('tiergate.keepAliveHint');
type HintedSocket = Duplex & { [KEEP_ALIVE_HINT]?: string };

/**
 * The upstream connection pool. An idle connection is closed a second before the
 * upstream's announced keep-alive timeout (`Keep-Alive: timeout=N`, which Node servers
 * send with 5), so no request is written to a connection the upstream is closing at that
 * very moment: that race ends in ECONNRESET and a 502 for the client. Node's own Agent
 * applies the hint only when it has a `timeout` of its own (and then only to shorten
 * it), and reads it from the response headers, from which the forward stage removes
 * Keep-Alive (hop-by-hop); so the hint is kept on the socket (rememberKeepAliveHint,
 * takeKeepAliveHint) and this applies it.
 */
export class UpstreamAgent extends Agent {
  constructor() {
    super(UPSTREAM_AGENT_OPTIONS);
  }

  override keepSocketAlive(socket: Duplex): boolean {
    const hinted = socket as HintedSocket;
    // Kept on the socket from the response by rememberKeepAliveHint.
    const hint = hinted[KEEP_ALIVE_HINT];
    hinted[KEEP_ALIVE_HINT] = undefined;
    if ((super.keepSocketAlive(socket) as unknown) === false) return false;
    const seconds = hint === undefined ? undefined : /(?:^|[\s,])timeout=(\d+)/i.exec(hint)?.[1];
    if (seconds === undefined) return true;
    const idleMs = Number(seconds) * 1000 - 1000;
    if (idleMs <= 0) return false; // too short to reuse safely
    const net = socket as Socket;
    if (!net.timeout || idleMs < net.timeout) net.setTimeout(idleMs);
    return true;
  }
}

/** Keeps the upstream's Keep-Alive hint on its socket, for UpstreamAgent (call it for every upstream response). */
export function rememberKeepAliveHint(proxyRes: IncomingMessage): void {
  const hint = headerValue(proxyRes.headers['keep-alive']);
  if (hint !== undefined && proxyRes.socket) (proxyRes.socket as HintedSocket)[KEEP_ALIVE_HINT] = hint;
}

/** rememberKeepAliveHint, then drops the header: the client's connection is not the upstream's. */
export function takeKeepAliveHint(proxyRes: IncomingMessage): void {
  rememberKeepAliveHint(proxyRes);
  delete proxyRes.headers['keep-alive'];
}

/**
 * The upstream URL parsed once, for http-proxy-middleware's `target`: given a string,
 * http-proxy runs url.parse on it for every request.
 * The same parse, done at start (load/bare-proxy.ts uses it too).
 */
export function proxyTarget(url: string): UrlWithStringQuery {
  return parseUrl(url);
}

/** One upstream's proxy: its own keep-alive pool, timeout and observer. */
interface UpstreamRoute {
  stripPrefix: string | undefined;
  proxy: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}

function upstreamRoute(up: UpstreamTarget, onUpstream: UpstreamObserver | undefined): UpstreamRoute {
  const agent = new UpstreamAgent();
  const events: Plugin = (proxyServer) => {
    proxyServer.on('proxyReq', (proxyReq, req) => {
      const state = (req as StatefulRequest)[STATE];
      if (state) {
        state.sentAt = performance.now();
        state.upstreamReq = proxyReq;
      }
      proxyReq.setTimeout(up.timeoutMs, () => {
        if (state) state.timedOut = true;
        proxyReq.destroy(new Error('upstream timeout'));
      });
    });
    if (onUpstream) {
      proxyServer.on('proxyRes', (proxyRes, req) => {
        const state = (req as StatefulRequest)[STATE];
        if (!state) return;
        const status = proxyRes.statusCode ?? 0;
        proxyRes.once('end', () => onUpstream(status, (performance.now() - state.sentAt) / 1000));
      });
    }
    proxyServer.on('proxyRes', (proxyRes, _req, res) => {
      // Connection is hop-by-hop: the client's connection follows the client's own
      // request (Node's verdict, res.shouldKeepAlive), not the upstream's. Without
      // this, http-proxy answers `Connection: keep-alive` even to a client that sent
      // `Connection: close` (sanitizedHeaders left that header out of the request),
      // and the socket is held open until the keep-alive timeout.
      proxyRes.headers.connection = (res as ServerResponse).shouldKeepAlive ? 'keep-alive' : 'close';
      takeKeepAliveHint(proxyRes);
    });
    proxyServer.on('error', (err, req, res) => {
      const state = (req as StatefulRequest)[STATE];
      const out = res as ServerResponse;
      if (typeof out.writeHead === 'function' && !out.headersSent && replayable(err, req, state)) {
        state.retried = true;
        XFWD.forEach((name, i) => {
          const value = state.forwarded?.[i];
          if (value === undefined) delete req.headers[name];
          else req.headers[name] = value;
        });
        void proxy(req, out);
        return;
      }
      if (state && onUpstream) onUpstream(state.timedOut ? 'timeout' : 'error', (performance.now() - state.sentAt) / 1000);
      if (typeof out.writeHead !== 'function') return;
      if (out.headersSent) {
        out.destroy(err);
        return;
      }
      if (state?.timedOut) {
        sendProblem(out, 504, 'upstream-timeout', 'Upstream timed out', `The upstream "${up.name}" did not answer within ${up.timeoutMs} ms.`, state.requestId, up.name);
      } else {
        sendProblem(out, 502, 'upstream-unavailable', 'Upstream unavailable', `The upstream "${up.name}" could not be reached.`, state?.requestId ?? '', up.name);
      }
    });
  };
  const proxy = createProxyMiddleware<IncomingMessage, ServerResponse>({
    target: proxyTarget(up.url),
    changeOrigin: true,
    xfwd: true,
    agent,
    ejectPlugins: true,
    plugins: [events],
  });
  return { stripPrefix: up.stripPrefix, proxy };
}

/**
 * The proxies, one per upstream target object: a reloaded policy whose upstream did not
 * change hands over the same target object, so it keeps its proxy and keep-alive pool;
 * a changed one gets a new proxy (built by prepare, before the policy that names it is
 * swapped in), and the old one serves the requests still in flight.
 */
export class UpstreamRoutes {
  private readonly built = new WeakMap<UpstreamTarget, UpstreamRoute>();
  constructor(private readonly onUpstream?: (upstream: string) => UpstreamObserver) {}

  prepare(targets: Iterable<UpstreamTarget>): void {
    for (const t of targets) this.get(t);
  }

  get(target: UpstreamTarget): UpstreamRoute {
    let route = this.built.get(target);
    if (route === undefined) this.built.set(target, (route = upstreamRoute(target, this.onUpstream?.(target.name))));
    return route;
  }
}

export function forward(opts: ForwardOptions): MiddlewareHandler<GatewayEnv> {
  // Built once: the request looks its rule's upstream up by name, in the upstream map
  // of the policy it was matched under (set by the policy stage), else in opts.upstreams.
  const routes = opts.routes ?? new UpstreamRoutes(opts.onUpstream);
  const fixed = new Map(opts.upstreams.map((u) => [u.name, u] as const));
  routes.prepare(fixed.values());

  return async (c) => {
    const { incoming, outgoing } = c.env;
    const canonical = c.get('canonical');
    const principal = c.get('principal');
    const policy = c.get('policy');
    const requestId = c.get('requestId');
    // A regional upstream's targets are `<name>@<region>`, the region chosen by the
    // residency stage; without one, the plain name is not a target of it: refused (500).
    const region = c.get('region');
    const targetName = region === undefined ? policy.upstream : regionalTargetName(policy.upstream, region);
    const target = (c.get('upstreams') ?? fixed).get(targetName);
    // The policy and the upstreams are checked against each other at load: never here.
    if (target === undefined) throw new Error(`forward: no upstream named "${targetName}"`);
    const route = routes.get(target);
    // The path the upstream receives is the one the assertion names (its `htu`).
    const path = forwardedPath(canonical.path, route.stripPrefix);
    const signed = identityAssertion(c, opts, path);
    const assertion = signed instanceof Promise ? await signed : signed;

    const h = sanitizedHeaders(incoming.headers, opts.trustedProxies.has(incoming.socket.remoteAddress ?? ''));
    h[ASSERTION_HEADER] = assertion;
    h[SUBJECT_HEADER] = principal.sub;
    h['x-request-id'] = requestId;
    // Tracing on: the upstream continues the gateway's trace, from this CLIENT span.
    const span = startSpan('tiergate.forward', SpanKind.CLIENT, { 'tiergate.upstream': targetName, 'http.request.method': canonical.method });
    if (span) {
      injectTraceHeaders(span, h);
      outgoing.once('close', () => endForwardSpan(span, outgoing));
    }
    incoming.headers = h;
    // Forward exactly what was matched and authorized.
    incoming.url = canonical.query ? `${path}?${canonical.query}` : path;
    const anyForwarded = h[XFWD[0]] ?? h[XFWD[1]] ?? h[XFWD[2]] ?? h[XFWD[3]];
    (incoming as StatefulRequest)[STATE] = {
      requestId,
      timedOut: false,
      sentAt: performance.now(),
      forwarded: anyForwarded === undefined ? undefined : [h[XFWD[0]], h[XFWD[1]], h[XFWD[2]], h[XFWD[3]]],
      retried: false,
    };
    outgoing.setHeader('x-request-id', requestId);

    await route.proxy(incoming, outgoing);
    return RESPONSE_ALREADY_SENT;
  };
}

function endForwardSpan(span: Span, res: ServerResponse): void {
  const status = res.statusCode;
  span.setAttribute('http.response.status_code', status);
  endSpan(span, status >= 500 || !res.writableFinished ? `status ${status}${res.writableFinished ? '' : ', response not finished'}` : undefined);
}
