// "Why is this allowed?": the answer OpenFGA gives, plus which role grants on the
// object's structural chain produce it. A grant counts as a reason only if the
// model says it suffices on its own: a throwaway subject holding just that grant
// (as a contextual tuple) is checked for the same permission. The explanation
// names no more than the caller could list through GET …/roles: a grant on a node
// where the caller lacks `can_assign_admin` is reported without the node.
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/index.js';
import { PLATFORM_OBJECT } from '../fga/bootstrap.js';
import type { TupleKey } from '../authz/types.js';
import type { Engine } from './engine.js';
import { ROLE_NAMES, TENANT_RESOURCE_TYPES } from './schemas.js';
import { ancestorPath, splitRef } from './store.js';

export interface Reason {
  role: string;
  /** The node holding the grant, e.g. `division:emea`; null when the caller does not administer it. */
  on: string | null;
  /** `direct grant`, `inherited by <object>`, or HIDDEN_VIA. */
  via: string;
  /** The chain from `on` down to the object, without the nodes the caller does not administer. */
  path: string[];
}

/** How a grant on a node the caller may not list is reported: no node, no holder. */
export const HIDDEN_VIA = 'inherited from a node you do not administer';

export interface Explanation {
  allowed: boolean;
  reasons: Reason[];
  /** Set when denied: the permission the user lacks. */
  missing?: string;
}

const RESOURCE_TYPES = new Set(TENANT_RESOURCE_TYPES);

export interface ObjectContext {
  /** The hierarchy node that governs the object (the tenant of a resource; the node itself otherwise). */
  node: string;
  /** The resource's tenant link, which the gateway also passes as a contextual tuple. */
  contextualTuples: TupleKey[];
}

export function objectContext(object: string): ObjectContext {
  const [type, id = ''] = splitRef(object);
  if (RESOURCE_TYPES.has(type)) {
    const tenant = `tenant:${id.slice(0, id.indexOf('/'))}`;
    return { node: tenant, contextualTuples: [{ user: tenant, relation: 'tenant', object }] };
  }
  return { node: object, contextualTuples: [] };
}

/** From the object up to the platform: `[object, tenant:t, division:…, organization:o, platform:root]`. */
async function chainUp(q: Queryable, object: string, ctx: ObjectContext): Promise<string[]> {
  if (object === PLATFORM_OBJECT) return [PLATFORM_OBJECT];
  const up = (await ancestorPath(q, ctx.node)).reverse();
  return [...(ctx.node === object ? [] : [object]), ...up, PLATFORM_OBJECT];
}

/**
 * Explains `user`'s `permission` on `object` to `viewer`: every reason on a node
 * where the viewer holds `can_assign_admin` in full, the others folded into one
 * reason per role with no node and only the viewer's part of the path.
 */
export async function explain(
  engine: Engine,
  q: Queryable,
  viewer: string,
  user: string,
  permission: string,
  object: string,
): Promise<Explanation> {
  const ctx = objectContext(object);
  const [allowed, chain] = await Promise.all([engine.check(user, permission, object, ctx.contextualTuples), chainUp(q, object, ctx)]);
  const holders = chain.filter((n) => n !== object || !RESOURCE_TYPES.has(splitRef(n)[0]));
  const direct = (await Promise.all(holders.map((node) => engine.readAll({ user, object: node })))).flat();
  const grants = direct.filter((t) => (ROLE_NAMES as readonly string[]).includes(t.relation));
  const probe = `user:tiergate-explain-${randomUUID()}`;
  // One BatchCheck: which grants suffice, and which nodes of the chain the viewer may list.
  const answers = await engine.checkMany([
    ...grants.map((g) => ({
      user: probe,
      relation: permission,
      object,
      contextualTuples: [{ user: probe, relation: g.relation, object: g.object }, ...ctx.contextualTuples],
    })),
    ...holders.map((node) => ({ user: viewer, relation: 'can_assign_admin', object: node })),
  ]);
  const listable = new Set(holders.filter((_, i) => answers[grants.length + i]));
  const visible = (n: string) => listable.has(n) || (n === object && !holders.includes(n));
  const reasons: Reason[] = [];
  const hidden = new Set<string>();
  grants.forEach((g, i) => {
    if (!answers[i]) return;
    const path = chain.slice(0, chain.indexOf(g.object) + 1).reverse();
    if (listable.has(g.object)) {
      reasons.push({ role: g.relation, on: g.object, via: g.object === object ? 'direct grant' : `inherited by ${object}`, path });
      return;
    }
    const reason = { role: g.relation, on: null, via: HIDDEN_VIA, path: path.filter(visible) };
    const key = JSON.stringify(reason);
    if (!hidden.has(key)) reasons.push(reason);
    hidden.add(key);
  });
  return { allowed, reasons, ...(allowed ? {} : { missing: permission }) };
}

/**
 * The value of the gateway's deny-reason header (`DENY_REASON_HEADER`): it names
 * the missing permission only — never the object, the roles held, or who would
 * have access — so it tells a caller what to ask for without mapping the model.
 */
export function denyReason(permission: string): string {
  return `missing permission ${permission}`;
}
