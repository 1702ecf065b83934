// Stage 5: forward the allowed, canonical request to the tenant-resource service
// with http-proxy-middleware. The upstream sees the canonical path (the one that was
// matched and authorized), none of the client's identity or forwarding claims, and
// the gateway's signed assertion of who is calling for which tenants.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Agent } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { createProxyMiddleware, type Plugin } from 'http-proxy-middleware';
import { ASSERTION_HEADER } from '../shared/assertion.js';
import { PROBLEM_CONTENT_TYPE, problem } from '../shared/problem.js';
import type { AssertionSigner } from './assertion-signer.js';
import type { GatewayEnv, Scope } from './types.js';

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
/** Believed only from TRUSTED_PROXIES; http-proxy then appends the real peer. */
const FORWARDING_HEADERS = new Set(['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-real-ip']);
/** Hop-by-hop (RFC 9110 §7.6.1) plus the client's bearer token, which the upstream must never need. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'authorization']);

function foldName(name: string): string {
  return name.toLowerCase().replace(/[_.]/g, '-');
}

/**
 * Removes everything the upstream must not believe from `headers`, in place.
 * Exported for its unit tests.
 */
export function sanitizeHeaders(headers: IncomingHttpHeaders, peerTrusted: boolean): void {
  // Headers named by the client's Connection header are hop-by-hop too; dropping
  // them here (before the gateway adds its own) means Connection cannot remove ours.
  const named = String(headers.connection ?? '')
    .split(',')
    .map((s) => foldName(s.trim()))
    .filter((s) => s.length > 0);
  for (const name of Object.keys(headers)) {
    const folded = foldName(name);
    if (
      HOP_BY_HOP.has(folded) ||
      named.includes(folded) ||
      IDENTITY_HEADERS.has(folded) ||
      IDENTITY_PREFIXES.some((p) => folded.startsWith(p)) ||
      (!peerTrusted && FORWARDING_HEADERS.has(folded))
    ) {
      delete headers[name];
    }
  }
}

export interface ForwardOptions {
  target: string;
  timeoutMs: number;
  signer: AssertionSigner;
  /** The tenants a scope covers: the tenant itself, or every tenant under a division/organization. */
  resolveTenants: (scope: Scope) => Promise<string[]>;
  trustedProxies: ReadonlySet<string>;
}

interface ForwardState {
  requestId: string;
  timedOut: boolean;
}
const STATE = Symbol('tiergate.forward');
type StatefulRequest = IncomingMessage & { [STATE]?: ForwardState };

function sendProblem(res: ServerResponse, status: number, slug: string, title: string, detail: string, requestId: string): void {
  const body = JSON.stringify(problem(status, slug, title, { detail, requestId }));
  res.writeHead(status, { 'content-type': PROBLEM_CONTENT_TYPE, 'content-length': Buffer.byteLength(body), 'x-request-id': requestId });
  res.end(body);
}

export function forward(opts: ForwardOptions): MiddlewareHandler<GatewayEnv> {
  const agent = new Agent({ keepAlive: true, maxSockets: 512 });
  const events: Plugin = (proxyServer) => {
    proxyServer.on('proxyReq', (proxyReq, req) => {
      const state = (req as StatefulRequest)[STATE];
      proxyReq.setTimeout(opts.timeoutMs, () => {
        if (state) state.timedOut = true;
        proxyReq.destroy(new Error('upstream timeout'));
      });
    });
    proxyServer.on('error', (err, req, res) => {
      const state = (req as StatefulRequest)[STATE];
      const out = res as ServerResponse;
      if (typeof out.writeHead !== 'function') return;
      if (out.headersSent) {
        out.destroy(err);
        return;
      }
      if (state?.timedOut) {
        sendProblem(out, 504, 'upstream-timeout', 'Upstream timed out', `The tenant service did not answer within ${opts.timeoutMs} ms.`, state.requestId);
      } else {
        sendProblem(out, 502, 'upstream-unavailable', 'Upstream unavailable', 'The tenant service could not be reached.', state?.requestId ?? '');
      }
    });
  };
  const proxy = createProxyMiddleware<IncomingMessage, ServerResponse>({
    target: opts.target,
    changeOrigin: true,
    xfwd: true,
    agent,
    ejectPlugins: true,
    plugins: [events],
  });

  return async (c) => {
    const { incoming, outgoing } = c.env;
    const { canonical, principal, policy, requestId } = c.var;
    const tenants = policy.scope.type === 'tenant' ? [policy.scope.id] : await opts.resolveTenants(policy.scope);
    const assertion = await opts.signer.sign(principal.sub, policy.scope, tenants, canonical.method, canonical.path);

    sanitizeHeaders(incoming.headers, opts.trustedProxies.has(incoming.socket.remoteAddress ?? ''));
    incoming.headers[ASSERTION_HEADER] = assertion;
    incoming.headers[SUBJECT_HEADER] = principal.sub;
    incoming.headers['x-request-id'] = requestId;
    // Forward exactly what was matched and authorized.
    incoming.url = canonical.query ? `${canonical.path}?${canonical.query}` : canonical.path;
    (incoming as StatefulRequest)[STATE] = { requestId, timedOut: false };
    outgoing.setHeader('x-request-id', requestId);

    await proxy(incoming, outgoing);
    return RESPONSE_ALREADY_SENT;
  };
}
