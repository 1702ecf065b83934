// GET /me/{organizations|divisions|tenants}: every node the caller may see
// (`can_view`), complete and paged. OpenFGA's ListObjects silently stops at its
// max-results and deadline, so an answer that reaches either bound is replaced by
// a walk of the hierarchy from the caller's direct grants, each candidate then
// confirmed by the model (BatchCheck).
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { RequestEnv } from '../../authz/types.js';
import type { AdminRuntime } from '../action.js';
import { EngineUnavailableError } from '../errors.js';
import { MeList, MeListQuery, MeResult, type NodeKind } from '../schemas.js';
import { allOrganizationIds, getNodes, subtree } from '../store.js';
import { allFieldsHook, ERROR_RESPONSES } from '../validation.js';

type AdminApp = OpenAPIHono<RequestEnv>;
const TAG = 'Me';
const json = <T>(schema: T) => ({ 'application/json': { schema } });
const PLURAL: Record<NodeKind, string> = { organization: 'organizations', division: 'divisions', tenant: 'tenants' };

export interface VisibleIds {
  ids: string[];
  source: 'list-objects' | 'hierarchy-walk';
}

export async function visibleIds(rt: AdminRuntime, subject: string, kind: NodeKind): Promise<VisibleIds> {
  const started = performance.now();
  let objects: string[];
  try {
    objects = await rt.engine.listObjects(subject, 'can_view', kind);
  } catch (err) {
    // ListObjects over a large subtree can outlast the client's OPENFGA_TIMEOUT_MS before
    // its own deadline: the walk answers instead (its checks are small batches).
    if (!(err instanceof EngineUnavailableError)) throw err;
    rt.log?.info({ subject, kind, elapsedMs: Math.round(performance.now() - started) }, 'ListObjects did not answer in time; walking the hierarchy');
    return { ids: await walk(rt, subject, kind), source: 'hierarchy-walk' };
  }
  const elapsed = performance.now() - started;
  // Either bound reached: the answer may be a silent subset.
  const maybeTruncated = objects.length >= rt.listObjectsMaxResults || elapsed >= rt.listObjectsDeadlineMs * 0.9;
  if (!maybeTruncated) return { ids: objects.map((o) => o.slice(kind.length + 1)), source: 'list-objects' };
  rt.log?.info({ subject, kind, returned: objects.length, elapsedMs: Math.round(elapsed) }, 'ListObjects may be truncated; walking the hierarchy');
  return { ids: await walk(rt, subject, kind), source: 'hierarchy-walk' };
}

/** Candidates from the caller's direct grants and the stored hierarchy, confirmed by the model. */
async function walk(rt: AdminRuntime, subject: string, kind: NodeKind): Promise<string[]> {
  const [platform, orgs, divisions, tenants] = await Promise.all(
    ['platform', 'organization', 'division', 'tenant'].map((t) => rt.engine.readAll({ user: subject, object: `${t}:` })),
  );
  const idsWith = (tuples: { relation: string; object: string }[] | undefined, relations: string[]) =>
    (tuples ?? []).filter((t) => relations.includes(t.relation)).map((t) => t.object.slice(t.object.indexOf(':') + 1));
  let candidates: string[];
  if (kind === 'organization') {
    candidates = idsWith(platform, ['admin']).length > 0 ? await allOrganizationIds(rt.db) : idsWith(orgs, ['admin']);
  } else {
    const sub = await subtree(rt.db, { organizations: idsWith(orgs, ['admin']), divisions: idsWith(divisions, ['admin']) });
    candidates = kind === 'division' ? sub.divisions : [...sub.tenants, ...idsWith(tenants, ['admin', 'member'])];
  }
  const unique = [...new Set(candidates)];
  const allowed = await rt.engine.checkMany(unique.map((id) => ({ user: subject, relation: 'can_view', object: `${kind}:${id}` })));
  return unique.filter((_, i) => allowed[i]);
}

export function registerMeRoutes(app: AdminApp, rt: AdminRuntime): void {
  const me = createRoute({
    method: 'get',
    path: '/me',
    tags: [TAG],
    summary: 'Who the caller is, as OpenFGA knows the subject',
    request: { query: z.strictObject({}) },
    responses: { 200: { description: 'The caller', content: json(MeResult) }, ...ERROR_RESPONSES },
  });
  app.openapi(me, (c) => c.json({ subject: c.get('principal').subject }, 200), allFieldsHook(me));

  for (const kind of ['organization', 'division', 'tenant'] as const) {
    const route = createRoute({
      method: 'get',
      path: `/me/${PLURAL[kind]}`,
      tags: [TAG],
      summary: `Every ${kind} the caller may see (can_view), sorted by id, paged`,
      request: { query: MeListQuery },
      responses: { 200: { description: 'One page of the complete list', content: json(MeList) }, ...ERROR_RESPONSES },
    });
    app.openapi(
      route,
      async (c) => {
        const { limit, cursor } = c.req.valid('query');
        const { ids, source } = await visibleIds(rt, c.get('principal').subject, kind);
        // Names come from PostgreSQL; getNodes sorts by id, so a cursor is the last id seen.
        const all = await getNodes(rt.db, kind, ids);
        const start = cursor ? all.findIndex((n) => n.id > cursor) : 0;
        const from = start < 0 ? all.length : start;
        const items = all.slice(from, from + limit);
        const more = from + limit < all.length;
        return c.json({ items, nextCursor: more ? items[items.length - 1]!.id : null, source, total: all.length }, 200);
      },
      allFieldsHook(route),
    );
  }
}
