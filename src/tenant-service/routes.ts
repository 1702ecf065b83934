// The tenant-scoped routes: CRUD per resource kind, agent status, tenant report.
// Every handler reads the tenant from c.get('tenantId') — the asserted tenant set
// by requireTenantScope — never from the path or a header.
import type { Hono } from 'hono';
import type { Db } from '../db/index.js';
import { RESOURCE_KINDS, type ResourceKind } from '../shared/resource-kinds.js';
import { Problem } from '../shared/problem.js';
import { methodNotAllowed, notFound, type TenantServiceEnv, type TsContext } from './http.js';
import {
  createResource,
  createResourceCapped,
  deleteResource,
  getCallRecord,
  getResource,
  listCallRecords,
  listResources,
  patchResource,
  replaceResource,
  setAgentStatus,
  type Page,
} from './repository.js';
import { callsSince, summarizeNode, summarizeTenants } from './reports.js';
import { localDay, quotaExceeded, quotaOf, retentionCutoff, timezoneOf } from './settings.js';
import { requireNodeScope } from './scope.js';
import {
  agentStatusBodySchema,
  encodeCursor,
  kindSchemas,
  pageRequest,
  parseOr400,
  pathId,
  readJsonBody,
  type KindSchemas,
} from './validation.js';

export const TENANT_BASE = '/api/v1/tenants/:tenantId';

type App = Hono<TenantServiceEnv>;

/** Resource kinds (path segment) capped by a settings key. */
const QUOTA_KEYS: Record<string, string> = { agents: 'quota.agents' };

function pageBody<T>(page: Page<T>) {
  return { items: page.items, nextCursor: page.lastId === null ? null : encodeCursor(page.lastId) };
}

function without(body: Record<string, unknown>, key: string): Record<string, unknown> {
  const { [key]: _omitted, ...rest } = body;
  return rest;
}

/** PUT/PATCH may repeat the business id, never change it. */
function checkBodyId(body: Record<string, unknown>, kind: ResourceKind, id: string): void {
  const inBody = body[kind.idParam];
  if (inBody !== undefined && inBody !== id) {
    throw new Problem(400, 'invalid-request', 'Bad Request', {
      detail: `${kind.idParam} cannot be changed`,
      'invalid-params': [{ name: `body.${kind.idParam}`, reason: 'must equal the id in the path' }],
    });
  }
}

function itemId(c: TsContext, kind: ResourceKind): string {
  return pathId(c.req.param('id'), kind.idParam);
}

function registerWritableKind(app: App, db: Db, s: KindSchemas): void {
  const { kind } = s;
  const collection = `${TENANT_BASE}/${kind.segment}`;
  const item = `${collection}/:id`;
  const what = (id: string) => `${kind.idParam} ${id}`;

  app.get(collection, async (c) => c.json(pageBody(await listResources(db, c.get('tenantId'), kind, pageRequest(c)))));

  app.post(collection, async (c) => {
    const body = parseOr400(s.create, await readJsonBody(c), 'body');
    const id = body[kind.idParam] as string;
    const attrs = { ...s.defaults, ...without(body, kind.idParam), ...s.operational };
    // The tenant's effective quota of this kind, from the assertion's settings claim.
    const quota = QUOTA_KEYS[kind.segment] === undefined ? undefined : quotaOf(c.get('claims'), QUOTA_KEYS[kind.segment]!);
    let created;
    if (quota) {
      const capped = await createResourceCapped(db, c.get('tenantId'), kind, id, attrs, quota.limit);
      if ('over' in capped) throw quotaExceeded(quota, capped.over);
      created = capped.created;
    } else {
      created = await createResource(db, c.get('tenantId'), kind, id, attrs);
    }
    if (!created) {
      throw new Problem(409, 'conflict', 'Conflict', { detail: `${what(id)} already exists in this tenant` });
    }
    return c.json(created, 201, { location: `${c.req.path}/${id}` });
  });

  app.get(item, async (c) => {
    const id = itemId(c, kind);
    const found = await getResource(db, c.get('tenantId'), kind, id);
    if (!found) throw notFound(what(id));
    return c.json(found);
  });

  app.put(item, async (c) => {
    const id = itemId(c, kind);
    const body = parseOr400(s.replace, await readJsonBody(c), 'body');
    checkBodyId(body, kind, id);
    const attrs = { ...s.defaults, ...without(body, kind.idParam) };
    const replaced = await replaceResource(db, c.get('tenantId'), kind, id, attrs, Object.keys(s.operational));
    if (!replaced) throw notFound(what(id));
    return c.json(replaced);
  });

  app.patch(item, async (c) => {
    const id = itemId(c, kind);
    const body = parseOr400(s.patch, await readJsonBody(c), 'body');
    checkBodyId(body, kind, id);
    const patched = await patchResource(db, c.get('tenantId'), kind, id, without(body, kind.idParam));
    if (!patched) throw notFound(what(id));
    return c.json(patched);
  });

  app.delete(item, async (c) => {
    const id = itemId(c, kind);
    if (!(await deleteResource(db, c.get('tenantId'), kind, id))) throw notFound(what(id));
    return c.body(null, 204);
  });

  app.all(collection, methodNotAllowed(['GET', 'HEAD', 'POST']));
  app.all(item, methodNotAllowed(['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE']));
}

/** Call records: read-only through the API (they come from the telephony platform). */
function registerCallRecords(app: App, db: Db, kind: ResourceKind): void {
  const collection = `${TENANT_BASE}/${kind.segment}`;
  const item = `${collection}/:id`;
  // Records older than the tenant's recording.retention_days are not visible.
  app.get(collection, async (c) => c.json(pageBody(await listCallRecords(db, c.get('tenantId'), pageRequest(c), retentionCutoff(c.get('claims'))))));
  app.get(item, async (c) => {
    const id = itemId(c, kind);
    const found = await getCallRecord(db, c.get('tenantId'), id, retentionCutoff(c.get('claims')));
    if (!found) throw notFound(`${kind.idParam} ${id}`);
    return c.json(found);
  });
  app.all(collection, methodNotAllowed(['GET', 'HEAD']));
  app.all(item, methodNotAllowed(['GET', 'HEAD']));
}

export function registerResourceRoutes(app: App, db: Db): void {
  for (const kind of RESOURCE_KINDS) {
    if (kind.segment === 'call-records') registerCallRecords(app, db, kind);
    else if (kind.readOnly) throw new Error(`read-only kind ${kind.segment} has no storage`);
    else registerWritableKind(app, db, kindSchemas(kind));
  }
}

/** The operational action tenant users may take: only the agent's status changes. */
export function registerAgentStatusRoute(app: App, db: Db): void {
  const agents = RESOURCE_KINDS.find((k) => k.segment === 'agents');
  if (!agents) throw new Error('agents kind missing');
  const path = `${TENANT_BASE}/agents/:id/status`;
  app.put(path, async (c) => {
    const id = itemId(c, agents);
    const { status } = parseOr400(agentStatusBodySchema, await readJsonBody(c), 'body');
    const updated = await setAgentStatus(db, c.get('tenantId'), agents, id, status);
    if (!updated) throw notFound(`${agents.idParam} ${id}`);
    return c.json(updated);
  });
  app.all(path, methodNotAllowed(['PUT']));
}

export function registerReportRoutes(app: App, db: Db): void {
  const tenantReport = `${TENANT_BASE}/reports/summary`;
  app.get(tenantReport, async (c) => {
    const [summary] = await summarizeTenants(db, [c.get('tenantId')]);
    // The tenant's local day, in its effective timezone: calls since local midnight.
    const timezone = timezoneOf(c.get('claims'));
    const day = localDay(timezone);
    const calls = await callsSince(db, c.get('tenantId'), day.startsAt);
    return c.json({ ...summary!, timezone, today: { date: day.date, startsAt: day.startsAt, calls } });
  });
  app.all(tenantReport, methodNotAllowed(['GET', 'HEAD']));

  // Aggregated over exactly the tenants the gateway resolved under the node and
  // put in the assertion; the service keeps no hierarchy of its own to drift.
  for (const type of ['division', 'organization'] as const) {
    const path = `/api/v1/${type}s/:nodeId/reports/summary`;
    app.get(path, requireNodeScope(type, 'nodeId'), async (c) => {
      const claims = c.get('claims');
      return c.json(await summarizeNode(db, { type, id: claims.scope.id }, claims.tenants));
    });
    app.all(path, methodNotAllowed(['GET', 'HEAD']));
  }
}
