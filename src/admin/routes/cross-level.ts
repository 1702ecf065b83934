// Who from above accessed a tenant (src/admin/cross-level.ts):
//   GET /tenants/{tenantId}/access-from-above: rows about that tenant only, for whoever
//     has can_read_audit on it (its admins, and through inheritance the admins of its
//     divisions and organization);
//   GET /break-glass/accesses: every access through a break-glass grant, across
//     organizations, for platform admins (can_read_audit on the platform).
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { PLATFORM_OBJECT } from '../../fga/bootstrap.js';
import type { RequestEnv } from '../../authz/types.js';
import { reader, type AdminRuntime } from '../action.js';
import { queryCrossLevel } from '../cross-level.js';
import { NodeId, TenantParams } from '../schemas.js';
import { allFieldsHook, ERROR_RESPONSES } from '../validation.js';

type AdminApp = OpenAPIHono<RequestEnv>;
const json = <T>(schema: T) => ({ 'application/json': { schema } });

const window = {
  since: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Rows last seen at or after this time' }),
  until: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Rows first seen before this time' }),
  limit: z.coerce.number().int().min(1).max(500).default(100).openapi({ type: 'integer', example: 100 }),
  cursor: z.string().regex(/^[0-9]{1,18}$/, 'must be a nextCursor from a previous page').optional(),
};
export const AccessFromAboveQuery = z.strictObject(window);
export const BreakGlassAccessQuery = z.strictObject({
  organizationId: NodeId.optional().openapi({ description: 'Only accesses inside this organization' }),
  ...window,
});

export const CrossLevelAccessSchema = z
  .object({
    id: z.string(),
    subject: z.string().openapi({ example: 'user:olivia' }),
    node: z.string().openapi({ description: 'The node accessed: a tenant, or for break-glass any node', example: 'tenant:acme-sales' }),
    roleNode: z.string().openapi({
      description: 'Where the role that allowed it is held; `-` when no role held at resolution time explains the access (revoked since)',
      example: 'organization:acme',
    }),
    role: z.string().openapi({ example: 'admin' }),
    breakGlass: z.boolean().openapi({ description: 'The role is an organization admin grant made by a platform break-glass' }),
    rule: z.string().openapi({ description: 'The route policy rule that matched', example: 'agents.list' }),
    permission: z.string().openapi({ example: 'can_read_operational' }),
    method: z.string().openapi({ example: 'GET' }),
    route: z.string().openapi({ description: "The rule's path template", example: '/api/v1/tenants/{tenantId}/agents' }),
    hour: z.string().openapi({ description: 'The hour the row counts (UTC, start)' }),
    firstSeen: z.string(),
    lastSeen: z.string(),
    count: z.number().int().min(1).openapi({ description: 'Requests in that hour, over every gateway' }),
  })
  .openapi('CrossLevelAccess');
export const CrossLevelAccessPage = z
  .object({ items: z.array(CrossLevelAccessSchema), nextCursor: z.string().nullable() })
  .openapi('CrossLevelAccessPage');

export function registerCrossLevelRoutes(app: AdminApp, rt: AdminRuntime): void {
  const tenantRoute = createRoute({
    method: 'get',
    path: '/tenants/{tenantId}/access-from-above',
    tags: ['Audit'],
    summary: "Who accessed this tenant through a role held above it, or through break-glass (can_read_audit on the tenant; per hour, newest first)",
    request: { params: TenantParams, query: AccessFromAboveQuery },
    responses: { 200: { description: 'One page of rows', content: json(CrossLevelAccessPage) }, ...ERROR_RESPONSES },
  });
  app.openapi(
    tenantRoute,
    async (c) => {
      const { tenantId } = c.req.valid('param');
      const q = c.req.valid('query');
      const ref = `tenant:${tenantId}`;
      await reader(rt, c, { action: 'tenant.access-from-above.read', target: ref }).authorize('can_read_audit', ref);
      const page = await queryCrossLevel(rt.db, { node: ref, since: q.since, until: q.until, before: q.cursor, limit: q.limit });
      return c.json(page, 200);
    },
    allFieldsHook(tenantRoute),
  );

  const platformRoute = createRoute({
    method: 'get',
    path: '/break-glass/accesses',
    tags: ['Audit'],
    summary: 'Every gateway access through a break-glass grant, across organizations (can_read_audit on the platform; per hour, newest first)',
    request: { query: BreakGlassAccessQuery },
    responses: { 200: { description: 'One page of rows', content: json(CrossLevelAccessPage) }, ...ERROR_RESPONSES },
  });
  app.openapi(
    platformRoute,
    async (c) => {
      const q = c.req.valid('query');
      await reader(rt, c, { action: 'break-glass.accesses.read', target: PLATFORM_OBJECT, scope: async () => [PLATFORM_OBJECT] }).authorize(
        'can_read_audit',
        PLATFORM_OBJECT,
      );
      const page = await queryCrossLevel(rt.db, {
        breakGlass: true,
        under: q.organizationId === undefined ? undefined : `organization:${q.organizationId}`,
        since: q.since,
        until: q.until,
        before: q.cursor,
        limit: q.limit,
      });
      return c.json(page, 200);
    },
    allFieldsHook(platformRoute),
  );
}
