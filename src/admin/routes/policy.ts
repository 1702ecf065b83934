// The route policy's admin endpoints, both platform-level:
//   POST /policy/reload  read the route policy file again now (the gateway also reloads
//                        it when the file changes and on SIGHUP); `can_reload_policy`,
//                        audited with the version before and after; a file that does not
//                        validate is 422 `policy-invalid` naming file:line:col, and the
//                        previous version stays in force.
//   GET  /policy/shadow  how the shadow (candidate) route policy would have decided the
//                        requests it was evaluated on, against the enforced one, so an
//                        operator can promote it with evidence; `can_read_policy`. The
//                        answer is this gateway process's own (each worker and replica keeps
//                        its own; the tiergate_shadow_* metrics add them up); examples name
//                        the request id, subject, method and path, never a token or a body.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { PLATFORM_OBJECT } from '../../fga/bootstrap.js';
import type { RequestEnv } from '../../authz/types.js';
import { mutation, reader, type AdminRuntime } from '../action.js';
import { recordAudit } from '../audit.js';
import { Problem } from '../../shared/problem.js';
import { allFieldsHook, ERROR_RESPONSES } from '../validation.js';

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

function registerReloadRoute(app: AdminApp, rt: AdminRuntime, reload: PolicyReloader): void {
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

const OUTCOMES = ['allow', 'deny', 'no-route', 'method-not-allowed', 'invalid-id', 'unavailable'] as const;
const KINDS = ['allow_to_deny', 'deny_to_allow', 'rule_changed', 'route_changed'] as const;

const Side = z
  .object({
    outcome: z.enum(OUTCOMES),
    rule: z.string().openapi({ description: 'The matched rule id; "-" when no rule matched' }),
    permission: z.string().optional(),
    object: z.string().optional(),
    allow: z.string().optional().openapi({ description: 'The Allow list of a 405' }),
  })
  .openapi('ShadowSide');

const Example = z
  .object({ requestId: z.string(), at: z.string(), subject: z.string(), method: z.string(), path: z.string(), enforced: Side, candidate: Side })
  .openapi('ShadowExample');

const Divergence = z
  .object({
    kind: z.enum(KINDS),
    rule: z.string(),
    candidateRule: z.string(),
    count: z.number().int(),
    firstAt: z.string(),
    lastAt: z.string(),
    examples: z.array(Example).openapi({ description: 'The most recent (newest first, at most 5)' }),
  })
  .openapi('ShadowDivergence');

const Version = z.object({ file: z.string(), version: z.string().openapi({ description: 'First 12 hex digits of the file content SHA-256' }) });

export const ShadowSummarySchema = z
  .object({
    enabled: z.boolean().openapi({ description: 'False when SHADOW_POLICY_FILE is not set' }),
    enforced: Version,
    candidate: Version.optional(),
    sampleRate: z.number(),
    since: z.string().openapi({ description: 'When this process started counting' }),
    pid: z.number().int().openapi({ description: 'The gateway process the counts are from' }),
    requestsEvaluated: z.number().int(),
    matching: z.number().int(),
    diverging: z.number().int(),
    skipped: z.number().int().openapi({ description: 'Sampled requests the enforced engine could not decide (503)' }),
    errors: z.number().int().openapi({ description: 'Candidate evaluations that failed (engine errors); never affected the answer' }),
    byKind: z.object({ allow_to_deny: z.number().int(), deny_to_allow: z.number().int(), rule_changed: z.number().int(), route_changed: z.number().int() }),
    divergences: z.array(Divergence),
  })
  .openapi('ShadowSummary');
export type ShadowSummaryBody = z.infer<typeof ShadowSummarySchema>;

function registerShadowRoute(app: AdminApp, rt: AdminRuntime, summary: () => ShadowSummaryBody): void {
  const route = createRoute({
    method: 'get',
    path: '/policy/shadow',
    tags: ['Policy'],
    summary: 'Divergences of the shadow route policy from the enforced one since start, with examples (can_read_policy on the platform)',
    responses: { 200: { description: 'This gateway process’s shadow evaluation summary', content: { 'application/json': { schema: ShadowSummarySchema } } }, ...ERROR_RESPONSES },
  });
  app.openapi(
    route,
    async (c) => {
      await reader(rt, c, { action: 'policy.shadow.read', target: PLATFORM_OBJECT, scope: async () => [PLATFORM_OBJECT] }).authorize('can_read_policy', PLATFORM_OBJECT);
      return c.json(summary(), 200, { 'cache-control': 'no-store' });
    },
    allFieldsHook(route),
  );
}

export interface PolicyRouteDeps {
  /** POST /policy/reload; the route is absent without it. */
  reload?: PolicyReloader | undefined;
  /** GET /policy/shadow; the route is absent without it. */
  shadowSummary?: (() => ShadowSummaryBody) | undefined;
}

export function registerPolicyRoutes(app: AdminApp, rt: AdminRuntime, deps: PolicyRouteDeps): void {
  if (deps.reload) registerReloadRoute(app, rt, deps.reload);
  if (deps.shadowSummary) registerShadowRoute(app, rt, deps.shadowSummary);
}
