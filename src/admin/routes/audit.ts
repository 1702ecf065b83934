// GET /audit: the trail, filtered and paged, scoped like everything else. A
// reader sees the entries whose stored ancestor path meets a node where the
// model gives them `can_read_audit` — the platform (platform-level entries and
// organization creation), an organization, a division subtree, a tenant.
// There is no route that edits or deletes entries, and the table refuses it.
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { PLATFORM_OBJECT } from '../../fga/bootstrap.js';
import type { RequestEnv } from '../../authz/types.js';
import { reader, type AdminRuntime } from '../action.js';
import { queryAudit } from '../audit.js';
import { AuditPage, AuditQuery } from '../schemas.js';
import { allFieldsHook, ERROR_RESPONSES } from '../validation.js';

type AdminApp = OpenAPIHono<RequestEnv>;
const json = <T>(schema: T) => ({ 'application/json': { schema } });

/**
 * The nodes whose audit the subject may read. Inheritance runs downwards and each
 * entry carries its full ancestor path, so the nodes where the subject holds a
 * direct admin grant are enough; the model then confirms each (can_read_audit).
 */
export async function auditRoots(rt: AdminRuntime, subject: string): Promise<string[]> {
  const direct = (
    await Promise.all(['platform', 'organization', 'division', 'tenant'].map((t) => rt.engine.readAll({ user: subject, relation: 'admin', object: `${t}:` })))
  ).flat();
  const nodes = [...new Set(direct.map((t) => t.object))];
  const allowed = await rt.engine.checkMany(nodes.map((object) => ({ user: subject, relation: 'can_read_audit', object })));
  return nodes.filter((_, i) => allowed[i]);
}

export function registerAuditRoutes(app: AdminApp, rt: AdminRuntime): void {
  const route = createRoute({
    method: 'get',
    path: '/audit',
    tags: ['Audit'],
    summary: 'Read the audit trail within your scope (newest first; filters; cursor paging)',
    request: { query: AuditQuery },
    responses: { 200: { description: 'One page of entries', content: json(AuditPage) }, ...ERROR_RESPONSES },
  });
  app.openapi(
    route,
    async (c) => {
      const q = c.req.valid('query');
      const subject = c.get('principal').subject;
      const roots = await auditRoots(rt, subject);
      if (roots.length === 0) {
        // Nowhere to read: deny (and record it) rather than answer an empty list.
        await reader(rt, c, { action: 'audit.read', target: 'audit', scope: async () => [PLATFORM_OBJECT] }).authorize(
          'can_read_audit',
          PLATFORM_OBJECT,
        );
      }
      const page = await queryAudit(rt.db, {
        visibleTo: roots,
        actor: q.actor,
        action: q.action,
        target: q.target,
        under: q.under,
        outcome: q.outcome,
        since: q.since,
        until: q.until,
        before: q.cursor,
        limit: q.limit,
      });
      return c.json(page, 200);
    },
    allFieldsHook(route),
  );
}
