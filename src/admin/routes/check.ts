// POST /check: allowed or not, and why. Only for callers who administer the
// object's node (its audit readers, `can_read_audit`). The reasons name a grant's
// node only where the caller could list its roles (`can_assign_admin`); grants
// above the caller's reach are reported without the node (see explain.ts).
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import type { RequestEnv } from '../../authz/types.js';
import { reader, type AdminRuntime } from '../action.js';
import { unprocessable } from '../errors.js';
import { explain, objectContext } from '../explain.js';
import { CheckBody, CheckResult } from '../schemas.js';
import { ancestorPath, splitRef } from '../store.js';
import { allFieldsHook, ERROR_RESPONSES } from '../validation.js';

type AdminApp = OpenAPIHono<RequestEnv>;
const json = <T>(schema: T) => ({ 'application/json': { schema } });

export function registerCheckRoutes(app: AdminApp, rt: AdminRuntime): void {
  const route = createRoute({
    method: 'post',
    path: '/check',
    tags: ['Check'],
    summary:
      "Check a user's permission on an object and explain it (callers with can_read_audit on the object's node; grants on nodes where the caller lacks can_assign_admin are reported without the node)",
    request: { body: { content: json(CheckBody), required: true } },
    responses: { 200: { description: 'The decision and the role grants that produce it', content: json(CheckResult) }, ...ERROR_RESPONSES },
  });
  app.openapi(
    route,
    async (c) => {
      const { user, permission, object } = c.req.valid('json');
      const [type] = splitRef(object);
      const relations = (await rt.engine.relationsByType()).get(type);
      if (!relations?.has(permission)) {
        throw unprocessable(`${type} has no relation ${permission}`, [
          { name: 'body.permission', reason: `must be one of: ${[...(relations ?? [])].sort().join(', ')}` },
        ]);
      }
      const { node } = objectContext(object);
      await reader(rt, c, { action: 'check.explain', target: object, scope: (q) => ancestorPath(q, node) }).authorize(
        'can_read_audit',
        node,
      );
      const result = await explain(rt.engine, rt.db, c.get('principal').subject, user, permission, object);
      return c.json({ user, permission, object, ...result }, 200);
    },
    allFieldsHook(route),
  );
}
