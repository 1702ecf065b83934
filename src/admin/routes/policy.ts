// GET /policy/shadow: how the shadow (candidate) route policy would have decided the
// requests it was evaluated on, against the enforced one, so an operator can promote
// it with evidence. Platform admins only (`can_read_policy` on the platform). The
// answer is this gateway process's own (each worker and replica keeps its own; the
// tiergate_shadow_* metrics add them up); examples name the request id, subject,
// method and path, never a token or a body.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { PLATFORM_OBJECT } from '../../fga/bootstrap.js';
import type { RequestEnv } from '../../authz/types.js';
import { reader, type AdminRuntime } from '../action.js';
import { allFieldsHook, ERROR_RESPONSES } from '../validation.js';

type AdminApp = OpenAPIHono<RequestEnv>;

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

export function registerPolicyRoutes(app: AdminApp, rt: AdminRuntime, summary: () => ShadowSummaryBody): void {
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
