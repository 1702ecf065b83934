// Role grants: PUT / DELETE …/roles/{role}/{userId} (idempotent) and GET …/roles.
// Who may grant what is the model's call: `can_assign_<role>` on the node, checked
// before the write. Only role relations pass here, never structural links.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { PLATFORM_OBJECT } from '../../fga/bootstrap.js';
import type { Queryable } from '../../db/index.js';
import type { RequestEnv } from '../../authz/types.js';
import { mutation, reader, type AdminRuntime } from '../action.js';
import { conflict, notFound, unprocessable } from '../errors.js';
import { NodeId, RoleChangeResult, RoleList, RoleListQuery, RoleParam, ROLE_NAMES, UserIdParam, type RoleName } from '../schemas.js';
import { getNode } from '../store.js';
import { allFieldsHook, ERROR_RESPONSES, NOT_FOUND, CONFLICT } from '../validation.js';

type AdminApp = OpenAPIHono<RequestEnv>;
type Level = 'platform' | 'organization' | 'division' | 'tenant';

const LEVELS: { level: Level; prefix: string; param?: string }[] = [
  { level: 'platform', prefix: '/platform' },
  { level: 'organization', prefix: '/organizations/{organizationId}', param: 'organizationId' },
  { level: 'division', prefix: '/divisions/{divisionId}', param: 'divisionId' },
  { level: 'tenant', prefix: '/tenants/{tenantId}', param: 'tenantId' },
];

/** Roles per level: `member` (tenant user) exists only on tenants. */
const ROLES_AT: Record<Level, readonly RoleName[]> = {
  platform: ['admin'],
  organization: ['admin'],
  division: ['admin'],
  tenant: ['admin', 'member'],
};

const TAG = 'Roles';
const json = <T>(schema: T) => ({ 'application/json': { schema } });

export function registerRoleRoutes(app: AdminApp, rt: AdminRuntime): void {
  for (const l of LEVELS) registerLevel(app, rt, l);
}

function registerLevel(app: AdminApp, rt: AdminRuntime, l: (typeof LEVELS)[number]): void {
  const nodeParams = l.param ? { [l.param]: NodeId } : {};
  const grantParams = z.strictObject({ ...nodeParams, role: RoleParam, userId: UserIdParam });
  const listParams = z.strictObject(nodeParams);
  const objectOf = (p: Record<string, string>) => (l.level === 'platform' ? PLATFORM_OBJECT : `${l.level}:${p[l.param!]}`);

  /** Role valid at this level, and the node exists (after the permission check). */
  async function prepare(p: Record<string, string>, role: RoleName): Promise<string> {
    if (!ROLES_AT[l.level].includes(role)) {
      throw unprocessable(`${role} is not a role on ${l.level === 'platform' ? 'the platform' : `${l.level}s`}`, [
        { name: 'path.role', reason: `must be one of: ${ROLES_AT[l.level].join(', ')}` },
      ]);
    }
    return objectOf(p);
  }
  async function mustExist(q: Queryable, object: string): Promise<void> {
    if (l.level === 'platform') return;
    if (!(await getNode(q, l.level, object.slice(l.level.length + 1)))) throw notFound(object);
  }

  for (const method of ['put', 'delete'] as const) {
    const grant = method === 'put';
    const route = createRoute({
      method,
      path: `${l.prefix}/roles/{role}/{userId}`,
      tags: [TAG],
      summary: `${grant ? 'Grant' : 'Revoke'} a role on ${l.level === 'platform' ? 'the platform' : `a ${l.level}`} (can_assign_<role>; idempotent)`,
      request: { params: grantParams },
      responses: {
        200: { description: 'Done; `changed` says whether anything changed', content: json(RoleChangeResult) },
        ...ERROR_RESPONSES,
        ...NOT_FOUND,
        ...(grant ? {} : CONFLICT),
      },
    });
    app.openapi(
      route,
      async (c) => {
        const p = c.req.valid('param') as Record<string, string> & { role: RoleName; userId: string };
        const object = await prepare(p, p.role);
        const user = `user:${p.userId}`;
        const tuple = { user, relation: p.role, object };
        const scope = l.level === 'platform' ? { scope: async () => [PLATFORM_OBJECT] } : {};
        return mutation(rt, c, { action: grant ? 'role.grant' : 'role.revoke', target: object, ...scope }, async (a) => {
          await a.authorize(`can_assign_${p.role}`, object);
          // Under the node's lock: it still exists (a delete cannot slip in and
          // leave this grant behind), and the tuple's presence read here is what
          // `changed` and the audit report.
          const changed = await a.writeLocked([object], async (tx) => {
            await mustExist(tx, object);
            const exists = (await rt.engine.readPage(tuple, 1)).tuples.length > 0;
            if (exists === grant) return { unchanged: true, result: false };
            if (!grant && p.role === 'admin' && l.level === 'organization') {
              // Only organization admins grant organization admin: removing the last
              // one would leave the organization without anyone to manage it.
              const admins = await rt.engine.readAll({ object, relation: 'admin' });
              if (admins.length <= 1) throw conflict(`${user} is the last admin of ${object}; grant another admin first`);
            }
            return {
              change: grant ? { writes: [tuple], deletes: [] } : { writes: [], deletes: [tuple] },
              result: true,
              before: grant ? null : { role: p.role, user },
              after: grant ? { role: p.role, user } : null,
            };
          });
          return c.json({ ...tuple, role: p.role, changed }, 200);
        });
      },
      allFieldsHook(route),
    );
  }

  const list = createRoute({
    method: 'get',
    path: `${l.prefix}/roles`,
    tags: [TAG],
    summary: `List direct role grants on ${l.level === 'platform' ? 'the platform' : `a ${l.level}`} (can_assign_admin)`,
    request: { params: listParams, query: RoleListQuery },
    responses: { 200: { description: 'Direct grants (one OpenFGA Read page)', content: json(RoleList) }, ...ERROR_RESPONSES, ...NOT_FOUND },
  });
  app.openapi(
    list,
    async (c) => {
      const object = objectOf(c.req.valid('param') as Record<string, string>);
      const { limit, cursor } = c.req.valid('query');
      // Seeing who holds roles on a node is for those who administer it.
      await reader(rt, c, { action: 'role.list', target: object }).authorize('can_assign_admin', object);
      await mustExist(rt.db, object);
      const page = await rt.engine.readPage({ object }, limit, cursor);
      const items = page.tuples
        .filter((t): t is typeof t & { relation: RoleName } => (ROLE_NAMES as readonly string[]).includes(t.relation))
        .map((t) => ({ object: t.object, role: t.relation, user: t.user }));
      return c.json({ items, nextCursor: page.cursor ?? null }, 200);
    },
    allFieldsHook(list),
  );
}
