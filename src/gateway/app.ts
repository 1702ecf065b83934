// Composes the gateway: the request pipeline for /api/v1 (normalise -> authenticate
// -> match policy -> edge policies -> authorize -> rate limit -> residency -> forward), the admin plane at /admin/v1, and the
// operational endpoints. Stages are built elsewhere and passed in, so each stays a
// small module with its own tests and this file only says in which order they run.
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type { JWK } from 'jose';
import type { Logger } from 'pino';
import { Problem } from '../shared/problem.js';
import type { TrustedPeers } from '../shared/trusted-proxies.js';
import { authorize, type AllowedRequest, type DeniedRequest } from './authorize.js';
import { forward, type ForwardOptions } from './forward.js';
import { DEV_OIDC_PATH } from './dev-issuer-oidc.js';
import { forwardAuthApp, type ForwardAuthOptions } from './forward-auth.js';
import type { GatewayMetrics } from './metrics.js';
import { pipeline } from './pipeline.js';
import { requestContext } from './request-context.js';
import { residency } from './residency.js';
import { authorizeSpanEnd, policySpanEnd, stageSpan } from './stage-spans.js';
import type { Authorizer, Decision } from '../authz/types.js';
import type { GatewayEnv } from './types.js';
import type { RequestEnv } from '../authz/types.js';

export interface ReadinessCheck {
  name: string;
  /** Resolves with a short detail when ready; rejects (or resolves false) when not. */
  check: () => Promise<string | boolean>;
  /** Optional checks report their state but do not make the gateway unready (e.g. Redis). */
  optional?: boolean;
}

export interface GatewayAppDeps {
  logger: Logger;
  metrics: GatewayMetrics;
  trustedProxies: TrustedPeers;
  normalise: MiddlewareHandler<GatewayEnv>;
  authenticate: MiddlewareHandler<RequestEnv>;
  matchPolicy: MiddlewareHandler<GatewayEnv>;
  /** The edge policies of the scope node (./edge-policy.ts), between policy and authorize; none when absent. */
  edgePolicy?: MiddlewareHandler<GatewayEnv>;
  /** The rate-limit stage (./rate-limit.ts), after authorize: only callers allowed into a node spend its budget; none: no limits. */
  rateLimit?: MiddlewareHandler<GatewayEnv>;
  authorizer: Authorizer;
  forward: ForwardOptions;
  /** The forward-auth decision endpoints (nginx, Traefik, Envoy), mounted at their prefix; none when absent. */
  forwardAuth?: ForwardAuthOptions;
  denyReasonHeader?: string;
  onDenied?: (denied: DeniedRequest) => void;
  /** Every allowed request on the data path and forward-auth (not AuthZEN evaluations): the cross-level access audit. */
  onAllowed?: (allowed: AllowedRequest) => void;
  /** Every decision (metrics: latency by the cache layer that answered). */
  onDecision?: (decision: Decision) => void;
  /** The admin API (an app of its own), mounted at /admin/v1. */
  admin?: Hono<RequestEnv>;
  /** The AuthZEN PDP (./authzen.ts): its own paths (/access/v1, its metadata) and stages. */
  authzen?: Hono<GatewayEnv>;
  /** The checks, or a function naming them per probe (they follow a reloaded policy's upstreams). */
  readiness: ReadinessCheck[] | (() => ReadinessCheck[]);
  /** Public keys of the assertions the gateway signs, for the upstream. */
  assertionJwks: { keys: JWK[] };
  /** Public keys of the development issuer, when it is trusted. */
  devIssuerJwks?: { keys: JWK[] };
  /** The development issuer's sign-in endpoints (./dev-issuer-oidc.ts), mounted at /dev-issuer when it is trusted. */
  devOidc?: Hono;
  /** The web console's static bundle and sign-in settings, mounted at /console. */
  console?: Hono<GatewayEnv>;
}

export const API_PREFIX = '/api/v1';
export const ADMIN_PREFIX = '/admin/v1';
export const CONSOLE_PREFIX = '/console';

export function createGatewayApp(deps: GatewayAppDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.use('*', requestContext({ logger: deps.logger, trustedProxies: deps.trustedProxies, metrics: deps.metrics }));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const results = await Promise.all(
      (typeof deps.readiness === 'function' ? deps.readiness() : deps.readiness).map(async (r) => {
        try {
          const out = await r.check();
          return { name: r.name, ok: out !== false, optional: r.optional === true, detail: typeof out === 'string' ? out : undefined };
        } catch (err) {
          return { name: r.name, ok: false, optional: r.optional === true, detail: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    const ready = results.every((r) => r.ok || r.optional);
    return c.json({ status: ready ? 'ready' : 'not ready', checks: results }, ready ? 200 : 503);
  });
  app.get('/.well-known/tiergate/jwks.json', (c) => c.json(deps.assertionJwks, 200, { 'cache-control': 'public, max-age=300' }));
  if (deps.devIssuerJwks) {
    const jwks = deps.devIssuerJwks;
    app.get('/.well-known/dev-issuer/jwks.json', (c) => c.json(jwks, 200, { 'cache-control': 'public, max-age=300' }));
  }

  // The data path. Order matters and is the whole point: bad input is refused
  // before anyone is authenticated, identity before policy, policy before the engine.
  const authorizeStage = authorize({
    authorizer: deps.authorizer,
    denyReasonHeader: deps.denyReasonHeader,
    onDenied: deps.onDenied,
    onAllowed: deps.onAllowed,
    onDecision: deps.onDecision,
  });
  // Only a rule whose upstream declares regions reads the settings here (no span: for
  // every other rule the stage does nothing).
  const residencyStage = residency({ settings: deps.forward.settings, onOutcome: (outcome) => deps.metrics.countEdgePolicy('residency', outcome) });
  const rateLimitStage = deps.rateLimit && stageSpan('rate_limit', deps.rateLimit);
  const api = new Hono<GatewayEnv>();
  // The same edge-policy stage object in proxy and forward-auth mode.
  const edgeStage = deps.edgePolicy ? stageSpan('edge_policy', deps.edgePolicy) : undefined;
  // Each stage in a span of its own when tracing is on (as they are when it is off), all of
  // them one middleware (./pipeline.ts): a warm request goes through them without an await.
  const stages: MiddlewareHandler<GatewayEnv>[] = [
    stageSpan('normalise', deps.normalise),
    // It reads and sets only request variables, which the gateway's include.
    stageSpan('authenticate', deps.authenticate) as unknown as MiddlewareHandler<GatewayEnv>,
    stageSpan('policy', deps.matchPolicy, policySpanEnd),
  ];
  if (edgeStage) stages.push(edgeStage);
  stages.push(stageSpan('authorize', authorizeStage, authorizeSpanEnd));
  if (rateLimitStage) stages.push(rateLimitStage);
  stages.push(residencyStage);
  api.use('*', pipeline(stages));
  api.all('*', forward(deps.forward));
  app.route(API_PREFIX, api);

  // The same stages without forward, for an ingress that forwards itself (decision mode).
  if (deps.forwardAuth) {
    const decisions = forwardAuthApp({
      ...deps.forwardAuth,
      authenticate: stageSpan('authenticate', deps.authenticate),
      matchPolicy: stageSpan('policy', deps.matchPolicy, policySpanEnd),
      ...(edgeStage ? { edgePolicy: edgeStage } : {}),
      ...(rateLimitStage ? { rateLimit: rateLimitStage } : {}),
      authorize: stageSpan('authorize', authorizeStage, authorizeSpanEnd),
      residency: residencyStage,
      assertion: deps.forward,
    });
    app.route(deps.forwardAuth.prefix, decisions);
  }

  if (deps.admin) {
    const admin = new Hono<GatewayEnv>();
    admin.use('*', deps.normalise);
    admin.route('/', deps.admin);
    app.route(ADMIN_PREFIX, admin);
  }

  if (deps.devOidc) app.route(DEV_OIDC_PATH, deps.devOidc);
  if (deps.console) {
    app.get(CONSOLE_PREFIX, (c) => c.redirect(`${CONSOLE_PREFIX}/`, 301));
    app.route(CONSOLE_PREFIX, deps.console);
  }

  if (deps.authzen) app.route('/', deps.authzen);

  app.notFound((c) => new Problem(404, 'not-found', 'Not Found', { detail: 'No route matches this path.' }).response({ requestId: c.get('requestId') }));
  app.onError(renderGatewayError);
  return app;
}

/**
 * The gateway's one error renderer: a Problem a stage threw as it is, with the request
 * id; anything else is logged and answered 500 without internals.
 */
export function renderGatewayError(err: Error, c: Context<GatewayEnv>): Response {
  const requestId = c.get('requestId');
  if (err instanceof Problem) return err.response({ requestId });
  c.get('log')?.error({ err: err.message, stack: err.stack, requestId }, 'unhandled error');
  return new Problem(500, 'internal', 'Internal Server Error').response({ requestId });
}
