// The admin plane, mounted by the gateway at /admin/v1: hierarchy, role grants,
// tuples, what-can-I-see, check/explain and the audit trail. Authorised by the
// same model as the data path; the OpenAPI document is generated from the zod
// schemas that validate every request.
import { randomUUID } from 'node:crypto';
import { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import type { OpenFgaClient } from '@openfga/sdk';
import type { Logger } from 'pino';
import type { Db } from '../db/index.js';
import type { DecisionInvalidator, RequestEnv } from '../authz/types.js';
import { bodyLimitWhenBody } from '../shared/body-limit.js';
import { parseJsonBody } from '../shared/json-body.js';
import { Problem } from '../shared/problem.js';
import type { AdminRuntime } from './action.js';
import { registerDocsPage } from './docs-page.js';
import { createEngine } from './engine.js';
import { issuesToInvalidParams, locationOf, renderError, TARGET_LOCATION, validationProblem } from './errors.js';
import { registerAuditRoutes } from './routes/audit.js';
import { registerBreakGlassRoutes } from './routes/break-glass.js';
import { registerCrossLevelRoutes } from './routes/cross-level.js';
import { registerCheckRoutes, type RequestMapper } from './routes/check.js';
import { registerHierarchyRoutes } from './routes/hierarchy.js';
import { registerPolicyRoutes, type PolicyReloader, type ShadowSummaryBody } from './routes/policy.js';
import { registerMeRoutes } from './routes/me.js';
import { registerRoleRoutes } from './routes/roles.js';
import { registerTupleRoutes } from './routes/tuples.js';
import { registerSettingsRoutes } from './routes/settings.js';
import { loadRegistry, type SettingsRegistry } from '../settings/registry.js';
import { REPO_ROOT } from '../shared/repo-root.js';
import { join } from 'node:path';

export { migrateAdmin } from './store.js';
export { recordGatewayDenial, type GatewayDenial } from './audit.js';
export { denyReason } from './explain.js';
export type { PolicyReloader, PolicyReloadResult } from './routes/policy.js';
export type { MappedRequest, RequestMapper } from './routes/check.js';

export const ADMIN_BASE_PATH = '/admin/v1';

export interface AdminDeps {
  /** OpenFGA client with store id and authorization model id pinned. */
  fga: OpenFgaClient;
  db: Db;
  /** Told about every OpenFGA write before the response is sent. */
  invalidator: DecisionInvalidator;
  /** The gateway's authenticate stage: sets c.var.principal or answers 401. */
  authenticate: MiddlewareHandler<RequestEnv>;
  log?: Logger;
  /** Where the app is mounted (for the docs page and the document's server URL). */
  basePath?: string;
  /** Largest accepted request body (default 256 KiB). */
  maxBodyBytes?: number;
  /** The settings registry (default: policy/settings.yaml of the repository). */
  settings?: SettingsRegistry;
  /** POST /policy/reload (platform admins); the route is absent without it. */
  reloadPolicy?: PolicyReloader;
  /** The shadow route policy's summary (GET /policy/shadow); the route is absent without it. */
  shadowSummary?: () => ShadowSummaryBody;
  /** The gateway's normalise + route policy (POST /check/request); the route is absent without it. */
  mapRequest?: RequestMapper;
}

// The media types zod-openapi's body validator parses as JSON (hono's validator test).
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

/**
 * Reads a JSON body once, strictly (src/shared/json-body.ts), before any route sees it:
 * invalid UTF-8, invalid JSON or a lone surrogate anywhere is a 400 and no handler runs.
 * The validators then parse the same, checked bytes: hono keeps the body read here.
 */
const strictJsonBody: MiddlewareHandler<RequestEnv> = async (c, next) => {
  const contentType = c.req.header('content-type');
  if (contentType === undefined || !JSON_MEDIA_TYPE.test(contentType.split(';')[0]!.trim())) return next();
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  // No body: the route's validator says whether one was required.
  if (bytes.length === 0) return next();
  const parsed = parseJsonBody(bytes);
  if (!parsed.ok) {
    throw new Problem(400, 'invalid-json', 'Invalid JSON body', {
      detail: `${parsed.detail}; nothing was changed`,
      ...(parsed.at ? { 'invalid-params': [{ name: locationOf('body', parsed.at.path), reason: parsed.at.reason }] } : {}),
    });
  }
  return next();
};

export function createAdminApp(deps: AdminDeps): OpenAPIHono<RequestEnv> {
  const basePath = deps.basePath ?? ADMIN_BASE_PATH;
  const rt: AdminRuntime = {
    db: deps.db,
    engine: createEngine(deps.fga),
    invalidator: deps.invalidator,
    log: deps.log,
  };

  const app = new OpenAPIHono<RequestEnv>({
    // Routes pass allFieldsHook (every invalid field at once); this covers any route that does not.
    defaultHook: (result, c) => {
      if (!result.success) return validationProblem(c, issuesToInvalidParams(TARGET_LOCATION[result.target] ?? result.target, result.error));
      return undefined;
    },
  });

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });

  app.onError((err, c) => renderError(err, c, deps.log));
  app.notFound((c) =>
    new Problem(404, 'not-found', 'Not found', { detail: `no admin route ${c.req.method} ${c.req.path}` }).response({ requestId: c.get('requestId') }),
  );

  // Public, registered before authentication: the description of the API, not its data.
  app.doc('/openapi.json', {
    openapi: '3.0.3',
    info: {
      title: 'tiergate admin API',
      version: '1.0.0',
      description:
        'Hierarchy, delegated role grants, relationship tuples, hierarchical settings, check/explain and the audit trail. Every call is authorised by the OpenFGA model; errors are RFC 9457 problem+json.',
    },
    servers: [{ url: basePath }],
    security: [{ bearer: [] }],
  });
  registerDocsPage(app, basePath);

  app.use('*', async (c, next) => {
    if (!c.get('requestId')) c.set('requestId', randomUUID());
    await next();
  });
  app.use('*', deps.authenticate);
  app.use(
    '*',
    bodyLimitWhenBody({
      maxSize: deps.maxBodyBytes ?? 256 * 1024,
      onError: () => {
        throw new Problem(413, 'payload-too-large', 'Payload too large', {
          detail: `request bodies are limited to ${deps.maxBodyBytes ?? 256 * 1024} bytes`,
        });
      },
    }),
  );

  app.use('*', strictJsonBody);

  const settingsRegistry = deps.settings ?? loadRegistry(join(REPO_ROOT, 'policy', 'settings.yaml'));
  registerHierarchyRoutes(app, rt, settingsRegistry);
  registerRoleRoutes(app, rt);
  registerBreakGlassRoutes(app, rt);
  registerTupleRoutes(app, rt);
  registerMeRoutes(app, rt);
  registerCheckRoutes(app, rt, settingsRegistry, deps.mapRequest);
  registerAuditRoutes(app, rt);
  registerCrossLevelRoutes(app, rt);
  registerSettingsRoutes(app, rt, settingsRegistry);
  if (deps.reloadPolicy || deps.shadowSummary) registerPolicyRoutes(app, rt, { reload: deps.reloadPolicy, shadowSummary: deps.shadowSummary });
  return app;
}
