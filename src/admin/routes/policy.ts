// POST /policy/reload: read the route policy file again now (the gateway also reloads
// it when the file changes and on SIGHUP). A platform admin's action
// (`can_reload_policy` on the platform), audited at platform level with the version
// before and after; a file that does not validate is answered 422 `policy-invalid`
// naming file:line:col, and the previous version stays in force.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { PLATFORM_OBJECT } from '../../fga/bootstrap.js';
import type { RequestEnv } from '../../authz/types.js';
import { mutation, type AdminRuntime } from '../action.js';
import { recordAudit } from '../audit.js';
import { Problem } from '../../shared/problem.js';
import { ERROR_RESPONSES } from '../validation.js';

type AdminApp = OpenAPIHono<RequestEnv>;

export interface PolicyReloadResult {
  /** applied: a new version is enforced; unchanged: the file has the version in force; refused: invalid, nothing changed. */
  result: 'applied' | 'unchanged' | 'refused';
  /** The version enforced after the reload. */
  version: string;
  /** The version enforced before it. */
  previousVersion: string;
  /** Why it was refused (file:line:col: ...). */
  error?: string;
}

/** Reloads the route policy in this process (and asks the others of its cluster to). */
export type PolicyReloader = () => Promise<PolicyReloadResult>;

const ReloadResult = z
  .object({
    result: z.enum(['applied', 'unchanged']),
    version: z.string().openapi({ description: 'The policy version (a hash of the file) now enforced', example: '3f2a9c01b7de' }),
    previousVersion: z.string(),
  })
  .openapi('PolicyReload');

export function registerPolicyRoutes(app: AdminApp, rt: AdminRuntime, reload: PolicyReloader): void {
  const route = createRoute({
    method: 'post',
    path: '/policy/reload',
    tags: ['Policy'],
    summary: 'Reload the route policy file now (can_reload_policy on the platform); an invalid file changes nothing',
    responses: {
      200: { description: 'Reloaded (or the file has the version in force); audited with both versions', content: { 'application/json': { schema: ReloadResult } } },
      ...ERROR_RESPONSES,
      422: {
        description: 'The file does not validate (`policy-invalid`, detail names file:line:col): the previous version stays in force',
        content: ERROR_RESPONSES[422].content,
      },
    },
  });
  app.openapi(route, async (c) =>
    mutation(rt, c, { action: 'policy.reload', target: PLATFORM_OBJECT, scope: async () => [PLATFORM_OBJECT] }, async (a) => {
      await a.authorize('can_reload_policy', PLATFORM_OBJECT);
      const r = await reload();
      await recordAudit(rt.db, {
        actor: a.actor,
        action: 'policy.reload',
        target: PLATFORM_OBJECT,
        scope: [PLATFORM_OBJECT],
        outcome: r.result === 'refused' ? 'failed' : 'success',
        requestId: a.requestId,
        before: { policyVersion: r.previousVersion },
        after: { policyVersion: r.version },
        detail: { result: r.result, ...(r.error !== undefined ? { error: r.error } : {}) },
      });
      if (r.result === 'refused') {
        throw new Problem(422, 'policy-invalid', 'Invalid route policy', {
          detail: `${r.error ?? 'the file does not validate'}; version ${r.version} stays in force`,
          extensions: { policyVersion: r.version },
        });
      }
      return c.json({ result: r.result, version: r.version, previousVersion: r.previousVersion }, 200);
    }),
  );
}
