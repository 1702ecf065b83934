// The tenant-resource service: a thin upstream behind the gateway. Order of the
// stages: request id + log line → /healthz (open) → assertion (401) → body limit
// → tenant scope (403) → routes. Everything else answers 404/405 problem+json.
import { randomUUID } from 'node:crypto';
import { Hono, type MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import type { Db } from '../db/index.js';
import type { AssertionClaims } from '../shared/assertion.js';
import { bodyLimitWhenBody } from '../shared/body-limit.js';
import { Problem } from '../shared/problem.js';
import { createAssertionVerifier, requireAssertion, type AssertionKey } from './assertion-auth.js';
import { renderProblem, type TenantServiceEnv } from './http.js';
import { TENANT_BASE, registerAgentStatusRoute, registerReportRoutes, registerResourceRoutes } from './routes.js';
import { requireTenantScope } from './scope.js';

export interface TenantServiceAppDeps {
  db: Db;
  /** Public key(s) of the gateway: createRemoteJWKSet(GATEWAY_JWKS_URL), a local JWKS, or one key. */
  verifyKey: AssertionKey;
  /** Expected `aud` of assertions (ASSERTION_AUDIENCE). */
  audience: string;
  log?: Logger;
  /** Default 5 s. */
  clockToleranceSec?: number;
  /** Verified assertions kept by token hash until exp; default 10 000. */
  assertionCacheMax?: number;
  /** Request bodies larger than this are refused with 413; default 64 KiB. */
  maxBodyBytes?: number;
  /** `reports`: serve only the report routes (the gateway's `reports` upstream); default every route. */
  only?: 'reports';
}

const TRUSTED_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Request id (the gateway's, when well-formed) and one structured log line per request, never the assertion. */
function requestContext(log: Logger | undefined): MiddlewareHandler<TenantServiceEnv> {
  return async (c, next) => {
    const started = performance.now();
    const incoming = c.req.header('x-request-id');
    const requestId = incoming !== undefined && TRUSTED_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    c.set('requestId', requestId);
    await next();
    c.header('x-request-id', requestId);
    if (log) {
      const claims = c.get('claims') as AssertionClaims | undefined;
      log.info(
        {
          requestId,
          method: c.req.method,
          path: c.req.path,
          status: c.res.status,
          sub: claims?.sub,
          scope: claims ? `${claims.scope.type}:${claims.scope.id}` : undefined,
          ms: Math.round((performance.now() - started) * 100) / 100,
        },
        'request',
      );
    }
  };
}

export function createTenantServiceApp(deps: TenantServiceAppDeps): Hono<TenantServiceEnv> {
  const { db, log } = deps;
  const verifier = createAssertionVerifier({
    verifyKey: deps.verifyKey,
    audience: deps.audience,
    clockToleranceSec: deps.clockToleranceSec,
    cacheMax: deps.assertionCacheMax,
  });
  const app = new Hono<TenantServiceEnv>();

  app.use('*', requestContext(log));
  // Registered before the assertion check, so it answers without one (liveness only, no data).
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.use('*', requireAssertion(verifier));

  app.get('/readyz', async (c) => {
    await db.query('select 1').catch((err: unknown) => {
      throw new Problem(503, 'not-ready', 'Service Unavailable', { detail: 'database unreachable', cause: err });
    });
    return c.json({ status: 'ready', db: db.kind });
  });

  app.use(
    '/api/v1/*',
    bodyLimitWhenBody({
      maxSize: deps.maxBodyBytes ?? 64 * 1024,
      onError: () => {
        throw new Problem(413, 'payload-too-large', 'Content Too Large', { detail: 'request body too large' });
      },
    }),
  );
  app.use(`${TENANT_BASE}/*`, requireTenantScope());

  if (deps.only !== 'reports') {
    registerAgentStatusRoute(app, db);
    registerResourceRoutes(app, db);
  }
  registerReportRoutes(app, db);

  app.notFound((c) => renderProblem(c, new Problem(404, 'not-found', 'Not Found', { detail: 'no such route' })));
  app.onError((err, c) => {
    if (err instanceof Problem) {
      if (err.status >= 500) log?.error({ err: err.cause ?? err, requestId: c.get('requestId') }, err.title);
      return renderProblem(c, err);
    }
    log?.error({ err, requestId: c.get('requestId') }, 'unhandled error');
    return renderProblem(c, new Problem(500, 'internal', 'Internal Server Error'));
  });

  return app;
}
