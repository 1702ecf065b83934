// Forward-auth (decision mode): an ingress that already proxies (nginx
// `auth_request`, Traefik `forwardAuth`, Envoy `ext_authz` HTTP service) asks
// tiergate about a request and forwards it itself. The original request goes
// through the same stages as a proxied one, without `forward`:
//
//   trusted peer? ──► original method + target ──► canonicaliseRequest ──► authenticate ──► match policy ──► edge policies ──► authorize ──► rate limit ──► residency ──► 200 + assertion
//   (403)             (400)                        (400, as proxy mode)    (401)            (404/405/400)     (403/401)         (403/503)     (429)          (503)
//   The edge policies read the client address from the ingress's X-Forwarded-For (the
//   ingress is a trusted proxy by then): it must send one.
//
// - Only a peer in TRUSTED_PROXIES is answered; anyone else gets 403 untrusted-peer,
//   whatever it sends. The original method and target are read only from the
//   request of that peer, and only from one place per ingress:
//     nginx    FORWARD_AUTH_METHOD_HEADER / FORWARD_AUTH_URI_HEADER (default
//              X-Original-Method / X-Original-URI), the endpoint `<prefix>/nginx`;
//     Traefik  X-Forwarded-Method / X-Forwarded-Uri, the endpoint `<prefix>/traefik`;
//     Envoy    the request's own method, and its target behind `<prefix>/envoy`
//              (ext_authz's `path_prefix` prepends it to the original path).
//   Each such header must arrive exactly once and must not be named by the
//   Connection header (a hop could drop it); nothing else (X-Original-URL,
//   Forwarded, the other X-Forwarded-*) is ever read, so there is nothing to fall
//   back to. The decision endpoints' own targets must be exactly these paths.
// - The original request is then canonicalised by the normalise stage's parser
//   (canonicaliseRequest) with the same refusals, after the same header checks on
//   the headers the ingress passed on (the client's, in nginx and Traefik).
// - Allowed: 200 with no body, the signed assertion (X-Tiergate-Assertion) and the
//   subject (X-Tiergate-Subject) for the ingress to copy upstream: the same
//   assertion proxy mode sends for the same canonical request. Envoy allows only
//   200, so no other 2xx is used. Refused: the same problem+json, status and
//   headers (WWW-Authenticate, Allow, Retry-After, the deny reason) as proxy mode.
// - A rule whose upstream declares regions: the same residency refusal as proxy mode
//   (503 no-upstream-in-region); allowed, X-Tiergate-Upstream (`<name>@<region>`) and
//   X-Tiergate-Region name the one target the ingress may send the request to.
import { Hono, type MiddlewareHandler } from 'hono';
import { ASSERTION_HEADER } from '../shared/assertion.js';
import { incomingOf } from '../shared/node-incoming.js';
import { Problem } from '../shared/problem.js';
import type { TrustedPeers } from '../shared/trusted-proxies.js';
import type { RequestEnv } from '../authz/types.js';
import { SUBJECT_HEADER } from './forward.js';
import { pipeline } from './pipeline.js';
import { identityAssertion, type AssertionOptions } from './identity-assertion.js';
import { canonicaliseRequest, checkHeaders, refusalProblem } from './normalise.js';
import { regionalTargetName } from '../shared/upstream-url.js';
import { REGION_HEADER, UPSTREAM_HEADER } from './residency.js';
import type { GatewayEnv } from './types.js';

export type ForwardAuthMode = 'nginx' | 'traefik' | 'envoy';

export interface ForwardAuthOptions {
  /** FORWARD_AUTH_PREFIX, e.g. `/forward-auth`. */
  prefix: string;
  trustedProxies: TrustedPeers;
  /** MAX_PATH_LENGTH and MAX_HEADER_BYTES, as in proxy mode. */
  maxPathLength: number;
  maxHeaderBytes: number;
  /** FORWARD_AUTH_METHOD_HEADER / FORWARD_AUTH_URI_HEADER (nginx), lower case. */
  methodHeader: string;
  uriHeader: string;
}

/** The headers Traefik's forwardAuth sets (it replaces any the client sent unless told to trust them). */
export const TRAEFIK_METHOD_HEADER = 'x-forwarded-method';
export const TRAEFIK_URI_HEADER = 'x-forwarded-uri';

/** The one value of a header that must arrive exactly once, or the reason it cannot be used. */
function single(rawHeaders: readonly string[], name: string, connection: readonly string[]): string {
  let value: string | undefined;
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const n = rawHeaders[i]!;
    if (n.length === name.length && n.toLowerCase() === name) {
      count++;
      value = rawHeaders[i + 1]!.trim();
    }
  }
  if (value !== undefined && count === 1 && !connection.includes(name)) return value;
  const why = count === 0 ? 'is missing' : count > 1 ? `was sent ${count} times` : 'is named by the Connection header (a hop-by-hop header cannot carry it)';
  throw new Problem(400, 'invalid-original-request', 'Original request not reported', {
    detail: `the ${name} header ${why}; the ingress must send it exactly once`,
    'invalid-params': [{ name: `header.${name}`, reason: 'must be sent exactly once by the trusted proxy' }],
  });
}

function wrongEndpoint(expected: string): Problem {
  return new Problem(400, 'invalid-request-target', 'Invalid request target', {
    detail: `the decision endpoint is exactly ${expected}`,
  });
}

/**
 * The original request as the trusted ingress reported it, canonicalised: sets
 * `c.var.canonical`, like the normalise stage does in proxy mode.
 */
export function originalRequest(mode: ForwardAuthMode, opts: ForwardAuthOptions): MiddlewareHandler<GatewayEnv> {
  const endpoint = `${opts.prefix}/${mode}`;
  const methodHeader = mode === 'traefik' ? TRAEFIK_METHOD_HEADER : opts.methodHeader;
  const uriHeader = mode === 'traefik' ? TRAEFIK_URI_HEADER : opts.uriHeader;
  return async function originalRequestStage(c, next) {
    const incoming = incomingOf(c);
    const peer = incoming?.socket.remoteAddress ?? '';
    if (incoming === undefined || !opts.trustedProxies.has(peer)) {
      c.get('log')?.warn({ peer, mode }, 'forward-auth question from a peer not in TRUSTED_PROXIES');
      throw new Problem(403, 'untrusted-peer', 'Not a trusted proxy', {
        detail: 'forward-auth decisions are answered only to peers in TRUSTED_PROXIES',
      });
    }
    const headerRefusal = checkHeaders(incoming.rawHeaders, opts.maxHeaderBytes);
    if (headerRefusal) throw refusalProblem(headerRefusal);
    const target = incoming.url ?? '';
    let method: string;
    let original: string;
    if (mode === 'envoy') {
      if (!target.startsWith(`${endpoint}/`)) throw wrongEndpoint(`${endpoint}/<original path>`);
      method = incoming.method ?? '';
      original = target.slice(endpoint.length);
    } else {
      if (target !== endpoint) throw wrongEndpoint(endpoint);
      const connection = (incoming.headers.connection ?? '')
        .split(',')
        .map((s) => s.trim().toLowerCase())
        .filter((s) => s !== '');
      method = single(incoming.rawHeaders, methodHeader, connection);
      original = single(incoming.rawHeaders, uriHeader, connection);
    }
    const result = canonicaliseRequest(method, original, opts.maxPathLength);
    if (!result.ok) throw refusalProblem(result.refusal);
    c.set('canonical', result.value);
    await next();
  };
}

/** The answer to an authorized question: 200, the assertion and the subject, no body. */
export function allow(opts: AssertionOptions): MiddlewareHandler<GatewayEnv> {
  return async function allowStage(c) {
    const signed = identityAssertion(c, opts);
    const assertion = signed instanceof Promise ? await signed : signed;
    const headers: Record<string, string> = {
      [ASSERTION_HEADER]: assertion,
      [SUBJECT_HEADER]: c.get('principal').sub,
      'cache-control': 'no-store',
    };
    const region = c.get('region');
    if (region !== undefined) {
      headers[UPSTREAM_HEADER] = regionalTargetName(c.get('policy').upstream, region);
      headers[REGION_HEADER] = region;
    }
    return c.body(null, 200, headers);
  };
}

export interface ForwardAuthAppDeps extends ForwardAuthOptions {
  authenticate: MiddlewareHandler<RequestEnv>;
  matchPolicy: MiddlewareHandler<GatewayEnv>;
  /** The proxy mode's edge-policy stage (./edge-policy.ts), the same object; none when absent. */
  edgePolicy?: MiddlewareHandler<GatewayEnv>;
  /** The rate-limit stage, after authorize, as in proxy mode; none: no limits. */
  rateLimit?: MiddlewareHandler<GatewayEnv>;
  authorize: MiddlewareHandler<GatewayEnv>;
  /** The residency stage (./residency.ts): the region of a regional upstream, or its refusal. */
  residency: MiddlewareHandler<GatewayEnv>;
  assertion: AssertionOptions;
}

/** The decision endpoints, to mount at `prefix`: the proxy-mode stages without forward. */
export function forwardAuthApp(deps: ForwardAuthAppDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  const decide = allow(deps.assertion);
  for (const [mode, path] of [
    ['nginx', '/nginx'],
    ['traefik', '/traefik'],
    ['envoy', '/envoy/*'],
  ] as const) {
    // One middleware (./pipeline.ts), as in proxy mode; authenticate reads and sets only request variables, which the gateway's include.
    const stages = [originalRequest(mode, deps), deps.authenticate as unknown as MiddlewareHandler<GatewayEnv>, deps.matchPolicy, deps.edgePolicy, deps.authorize, deps.rateLimit, deps.residency];
    app.all(path, pipeline(stages.filter((stage) => stage !== undefined)), decide);
  }
  return app;
}
