// POST /organizations/{organizationId}/break-glass: the one way back into an
// organization that has no admin left. A platform admin (`can_break_glass` on the
// platform) names another user and says why; while the organization has any
// admin the answer is 409. Refusals and the grant are audited with the reason,
// scoped to the platform and to the organization, so the new admin reads how they
// got there.
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { PLATFORM_OBJECT } from '../../fga/bootstrap.js';
import type { RequestEnv } from '../../authz/types.js';
import { mutation, type AdminRuntime } from '../action.js';
import { Problem } from '../../shared/problem.js';
import { conflict, notFound } from '../errors.js';
import { BreakGlassBody, BreakGlassResult, OrganizationParams } from '../schemas.js';
import { getNode } from '../store.js';
import { allFieldsHook, CONFLICT, ERROR_RESPONSES, NOT_FOUND } from '../validation.js';

type AdminApp = OpenAPIHono<RequestEnv>;
const json = <T>(schema: T) => ({ 'application/json': { schema } });

export function registerBreakGlassRoutes(app: AdminApp, rt: AdminRuntime): void {
  const route = createRoute({
    method: 'post',
    path: '/organizations/{organizationId}/break-glass',
    tags: ['Roles'],
    summary: 'Grant admin on an organization that has none, to another user, with a reason (can_break_glass on the platform)',
    request: { params: OrganizationParams, body: { content: json(BreakGlassBody), required: true } },
    responses: {
      200: { description: 'Granted; the audit entry carries the reason', content: json(BreakGlassResult) },
      ...ERROR_RESPONSES,
      ...NOT_FOUND,
      ...CONFLICT,
    },
  });
  app.openapi(
    route,
    async (c) => {
      const { organizationId } = c.req.valid('param');
      const { user, reason } = c.req.valid('json');
      const ref = `organization:${organizationId}`;
      const scope = async () => [PLATFORM_OBJECT, ref];
      return mutation(rt, c, { action: 'organization.break-glass', target: ref, scope }, async (a) => {
        await a.authorize('can_break_glass', PLATFORM_OBJECT);
        if (user === a.actor) {
          const err = new Problem(403, 'forbidden', 'Forbidden', {
            detail: 'break-glass grants admin to another user, never to the caller',
            'invalid-params': [{ name: 'body.user', reason: 'must not be the caller' }],
          });
          await a.refuse(err, { user, reason, refused: err.detail });
        }
        const tuple = { user, relation: 'admin', object: ref };
        try {
          // Under the organization's node lock nothing grants or revokes its admins
          // between this count and the write.
          await a.writeLocked([ref], async (tx) => {
            if (!(await getNode(tx, 'organization', organizationId))) throw notFound(ref);
            if ((await rt.engine.readPage({ object: ref, relation: 'admin' }, 1)).tuples.length > 0) {
              throw conflict(`${ref} has an admin; break-glass is only for an organization without one`);
            }
            return { result: undefined, change: { writes: [tuple], deletes: [] }, after: { role: 'admin', user }, detail: { reason } };
          });
        } catch (err) {
          if (err instanceof Problem && err.status === 409) await a.refuse(err, { user, reason, refused: err.detail });
          throw err;
        }
        return c.json({ object: ref, role: 'admin' as const, user, reason }, 200);
      });
    },
    allFieldsHook(route),
  );
}
