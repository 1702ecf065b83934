// AuthZEN's subject/resource/action → one OpenFGA check, derived from the loaded model.
//
// - subject {type: "user", id} → `user:<id>` (id as a token's `sub`: SUBJECT_ID). Other
//   subject types are answered `false`: the model grants nothing to them on resources.
// - resource {type, id} → `<type>:<id>` for a type of the model that has `can_*`
//   permissions. Its scope (what the decision cache versions) is derived as the route
//   policy does: a hierarchy node is its own scope; a tenant resource (a type whose
//   `tenant` relation takes a tenant) has id `<tenantId>/<businessId>`, scope the tenant,
//   and the `tenant` link as a contextual tuple. Other types (the platform) have no scope
//   and are asked with higher consistency, bypassing the cache.
// - action {name} → the relation `name` when it is a `can_*` permission of the resource's
//   type, or `can_<name>` when that is one ("read" and "can_read" ask the same). Anything
//   else is answered `false`: only the model's permissions are ever asked, never a role or
//   a structural relation.
// `properties` and `context` are accepted and not used: the model has no conditions.
import type { AuthorizationModel } from '@openfga/sdk';
import { SUBJECT_ID } from '../config.js';
import { ID_PATTERN } from '../shared/resource-kinds.js';
import type { CheckRequest, Scope } from '../authz/types.js';

/** One evaluation, complete (after the defaults of a batch were applied). */
export interface AuthzenEvaluation {
  subject: { type: string; id: string };
  resource: { type: string; id: string };
  action: { name: string };
}

/** Why no check was asked: a deny (the question names nothing the model grants) or an invalid id. */
export type Unanswerable = { kind: 'deny'; reason: string } | { kind: 'invalid'; message: string };

export type Question = { kind: 'check'; check: CheckRequest } | Unanswerable;

const SCOPE_TYPES: ReadonlySet<string> = new Set<Scope['type']>(['tenant', 'division', 'organization']);
const ACTION_NAME = /^[a-z_][a-z0-9_]{0,63}$/;

export class AuthzenMapping {
  /** type → its `can_*` permissions. */
  private readonly permissions = new Map<string, ReadonlySet<string>>();
  /** Types linked to a tenant by their `tenant` relation (ids `<tenantId>/<businessId>`). */
  private readonly tenantResources = new Set<string>();

  constructor(model: Pick<AuthorizationModel, 'type_definitions'>) {
    for (const td of model.type_definitions) {
      const relations = Object.keys(td.relations ?? {});
      const can = relations.filter((r) => r.startsWith('can_'));
      if (can.length > 0) this.permissions.set(td.type, new Set(can));
      const direct = td.metadata?.relations?.['tenant']?.directly_related_user_types ?? [];
      if (td.type !== 'tenant' && direct.some((d) => d.type === 'tenant' && !d.relation && !d.wildcard)) this.tenantResources.add(td.type);
    }
  }

  /** The permissions a resource type may be asked about (empty for an unknown type). */
  permissionsOf(type: string): readonly string[] {
    return [...(this.permissions.get(type) ?? [])].sort();
  }

  question(e: AuthzenEvaluation): Question {
    if (e.subject.type !== 'user') return { kind: 'deny', reason: 'unsupported_subject_type' };
    if (!SUBJECT_ID.test(e.subject.id)) return { kind: 'invalid', message: 'subject.id is not a valid user id' };
    const permissions = this.permissions.get(e.resource.type);
    if (permissions === undefined) return { kind: 'deny', reason: 'unknown_resource_type' };
    const relation = this.relationOf(e.action.name, permissions);
    if (relation === undefined) return { kind: 'deny', reason: 'unknown_action' };

    const { type, id } = e.resource;
    const object = `${type}:${id}`;
    const user = `user:${e.subject.id}`;
    if (this.tenantResources.has(type)) {
      const slash = id.indexOf('/');
      const tenantId = id.slice(0, slash);
      const businessId = id.slice(slash + 1);
      if (slash < 0 || !ID_PATTERN.test(tenantId) || !ID_PATTERN.test(businessId)) {
        return { kind: 'invalid', message: `resource.id of a ${type} must be "<tenantId>/<id>", each an id` };
      }
      return {
        kind: 'check',
        check: {
          user,
          relation,
          object,
          contextualTuples: [{ user: `tenant:${tenantId}`, relation: 'tenant', object }],
          scope: { type: 'tenant', id: tenantId },
        },
      };
    }
    if (!ID_PATTERN.test(id)) return { kind: 'invalid', message: 'resource.id is not a valid id' };
    if (SCOPE_TYPES.has(type)) {
      return { kind: 'check', check: { user, relation, object, contextualTuples: [], scope: { type: type as Scope['type'], id } } };
    }
    // No scope to version the decision by: asked fresh, never cached.
    return { kind: 'check', check: { user, relation, object, contextualTuples: [], consistency: 'strong' } };
  }

  /**
   * A resource search (`resource.id` left out): the relation and type to list, or why
   * there is nothing to list. Tenant resources are linked to their tenant only in the
   * questions asked (contextual tuples), never stored, so OpenFGA cannot list them.
   */
  search(subject: AuthzenEvaluation['subject'], type: string, actionName: string): { kind: 'list'; user: string; relation: string } | Unanswerable {
    if (subject.type !== 'user') return { kind: 'deny', reason: 'unsupported_subject_type' };
    if (!SUBJECT_ID.test(subject.id)) return { kind: 'invalid', message: 'subject.id is not a valid user id' };
    const permissions = this.permissions.get(type);
    if (permissions === undefined) return { kind: 'deny', reason: 'unknown_resource_type' };
    const relation = this.relationOf(actionName, permissions);
    if (relation === undefined) return { kind: 'deny', reason: 'unknown_action' };
    if (this.tenantResources.has(type)) {
      return { kind: 'invalid', message: `resources of type ${type} cannot be searched: they are linked to their tenant only when asked about; search tenants instead` };
    }
    return { kind: 'list', user: `user:${subject.id}`, relation };
  }

  private relationOf(name: string, permissions: ReadonlySet<string>): string | undefined {
    if (!ACTION_NAME.test(name)) return undefined;
    if (permissions.has(name)) return name;
    const prefixed = `can_${name}`;
    return !name.startsWith('can_') && permissions.has(prefixed) ? prefixed : undefined;
  }
}
