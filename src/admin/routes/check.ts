// POST /check: allowed or not, and why, with the edge policies in force at the
// object's node (network, authentication strength) and where each was set. Only for callers who administer the
// object's node (its audit readers, `can_read_audit`). The reasons name a grant's
// node only where the caller could list its roles (`can_assign_admin`); grants
// above the caller's reach are reported without the node (see explain.ts).
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import type { RequestEnv } from '../../authz/types.js';
import { reader, type AdminRuntime } from '../action.js';
import { unprocessable } from '../errors.js';
import { explain, objectContext } from '../explain.js';
import { CheckBody, CheckRequestBody, CheckRequestResult, CheckResult } from '../schemas.js';
import { ancestorPath, splitRef } from '../store.js';
import { allFieldsHook, ERROR_RESPONSES } from '../validation.js';
import { EDGE_POLICY_KEYS } from '../../settings/edge-keys.js';
import { effectiveValue } from '../../settings/effective.js';
import type { SettingsRegistry } from '../../settings/registry.js';
import { readEntries } from '../../settings/store.js';
import type { Queryable } from '../../db/index.js';

type AdminApp = OpenAPIHono<RequestEnv>;
const json = <T>(schema: T) => ({ 'application/json': { schema } });

const SETTINGS_NODE = /^(organization|division|tenant):/;

/**
 * The edge policies in force at `node` (the gateway checks them before the permission):
 * each key's effective value, the node that decided it and the node that locked it.
 * Admins of the node may see these nodes; the gateway's refusals never name them.
 */
async function edgePoliciesAt(q: Queryable, registry: SettingsRegistry, node: string) {
  if (!SETTINGS_NODE.test(node)) return [];
  const path = (await ancestorPath(q, node)).filter((n) => SETTINGS_NODE.test(n));
  const entries = await readEntries(q, path);
  const chain = path.map((n) => ({ node: n, entries: entries.get(n)! }));
  return EDGE_POLICY_KEYS.flatMap((key) => {
    const def = registry.get(key);
    if (!def) return [];
    const v = effectiveValue(def, chain);
    const inForce = Array.isArray(v.value) ? v.value.length > 0 : key === 'security.session_max_age' || v.value === true;
    return [{ policy: key, value: v.value, inForce, source: v.source, lockedBy: v.lockedBy }];
  });
}

/** What the gateway's route policy makes of a request, without forwarding it. */
export interface MappedRequest {
  method: string;
  /** The canonical path the rule matched. */
  path: string;
  rule: string;
  permission: string;
  object: string;
}

/**
 * Runs the gateway's normalise and route-policy stages on a method and raw target; a
 * target they refuse throws the same Problem the gateway would answer with.
 */
export type RequestMapper = (method: string, target: string) => MappedRequest;

export function registerCheckRoutes(app: AdminApp, rt: AdminRuntime, settings?: SettingsRegistry, mapRequest?: RequestMapper): void {
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
      const [result, edgePolicies] = await Promise.all([
        explain(rt.engine, rt.db, c.get('principal').subject, user, permission, object),
        settings ? edgePoliciesAt(rt.db, settings, node) : [],
      ]);
      return c.json({ user, permission, object, ...result, edgePolicies }, 200);
    },
    allFieldsHook(route),
  );

  if (mapRequest === undefined) return;
  const request = createRoute({
    method: 'post',
    path: '/check/request',
    tags: ['Check'],
    summary:
      'Map an API request (method and target, e.g. GET /api/v1/tenants/acme-sales/agents) through the route policy, then check and explain it like POST /check; nothing is forwarded',
    request: { body: { content: json(CheckRequestBody), required: true } },
    responses: { 200: { description: 'The rule that matched, the decision and the role grants that produce it', content: json(CheckRequestResult) }, ...ERROR_RESPONSES },
  });
  app.openapi(
    request,
    async (c) => {
      const { user, method, target } = c.req.valid('json');
      // Refusals (400 bad target, 404 no route, 405) are the gateway's own answers.
      const mapped = mapRequest(method, target);
      const { node } = objectContext(mapped.object);
      await reader(rt, c, { action: 'check.explain', target: mapped.object, scope: (q) => ancestorPath(q, node) }).authorize('can_read_audit', node);
      const result = await explain(rt.engine, rt.db, c.get('principal').subject, user, mapped.permission, mapped.object);
      return c.json({ user, permission: mapped.permission, object: mapped.object, request: mapped, ...result }, 200);
    },
    allFieldsHook(request),
  );
}
