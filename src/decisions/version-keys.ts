// Version keys and the mapping from a tuple change to the versions it bumps.
//
// Every object is mapped to a *slot*: hierarchy nodes (the targets of a structural
// relation: platform, organization, division, tenant) have a slot of their own, their
// name (`tenant:t1`); objects of other types (resources) share a bucket
// (`#b|agent|417`) — any deterministic bucketing is sound, a shared bucket only costs
// extra invalidation. Per slot s there are two kinds of version:
//
//   s                     the any-version: changes whenever any tuple on an object of s
//                         changes (the only per-node version before principal scoping,
//                         under the same key name);
//   #s|s                  the structure-version: changes when a structural tuple on s is
//                         written or deleted, and when a tuple whose user is not a plain
//                         object (a wildcard `user:*`, a userset `x#rel`) is, or one on a
//                         relation this process's model does not know as a role;
// per principal P (a plain subject) one:
//   #p|P                  the role-version of P: changes when a role tuple whose user is
//                         exactly P is written or deleted, on any object. One key for all
//                         of P's roles, so a cached decision records one role-version
//                         whatever its path, and nodes' keys are shared by every
//                         principal's decisions; the price is that a grant or revocation
//                         for P invalidates all of P's decisions (never another
//                         principal's). Without Redis, these keys are forgotten a while
//                         after their last bump (see ./local-version-store.ts);
//   #p                    the role counter: incremented by every role change; a role-version
//                         is set to its new value, so none ever takes a value twice;
// plus
//   #c|<object>           the children-version of a node: changes when a structural
//                         tuple pointing at it is written or deleted (what "tenants under
//                         D" depends on);
//   #d|<node>             the settings-version of a node: changes when the node's settings
//                         document changes (src/settings/; the gateway's settings claim is
//                         cached against the versions of the path's documents);
//   #g                    the global epoch: a new model, a reset cursor, lost Redis state,
//                         a replica's reconnect to Redis (./decision-cache.ts `fenced`).
//
// None of these is a valid OpenFGA object name other than a node's own slot (types
// contain no `#`), and the prefixes `#b|`, `#s|`, `#p|`, `#c|`, `#d|` and the keys `#p`, `#g`
// differ, so keys of different kinds never collide. (`#p|P` needs no length prefix: P is
// all that follows it.) The per-node role-versions of the scheme before this one were
// named `#r|<len(s)>:s<P>`: nothing reads or bumps those names any more
// (./caching-authorizer.ts refuses a Redis entry recorded under them).
import { createHash } from 'node:crypto';
import type { TupleChange, TupleKey } from '../authz/types.js';
import { objectPart, typeOf, type HierarchyStructure } from '../fga/hierarchy.js';

export const GLOBAL_KEY = '#g';
/** Incremented by every role change; each role-version is set to its new value. */
export const ROLE_COUNTER_KEY = '#p';
export const ROLE_KEY_PREFIX = '#p|';

export type InvalidationKind =
  | 'role_grant'
  | 'role_revoke'
  | 'structural_link'
  | 'structural_unlink'
  | 'model'
  | 'cursor_reset'
  | 'redis_reconnect'
  | 'settings';

export const INVALIDATION_KINDS: readonly InvalidationKind[] = [
  'role_grant',
  'role_revoke',
  'structural_link',
  'structural_unlink',
  'model',
  'cursor_reset',
  'redis_reconnect',
  'settings',
];

/** FNV-1a over UTF-16 code units: cheap, stable across processes. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A plain object subject `type:id`: no userset part (`#relation`), not a wildcard
 * (`type:*`), type and id non-empty. A Check for a plain subject P can only be affected
 * by a role tuple whose user is exactly P (see ./soundness.ts, section 1); any other
 * subject (as a tuple's user or as a Check's user) is handled conservatively.
 */
export function plainSubject(subject: string): boolean {
  const colon = subject.indexOf(':');
  if (colon <= 0 || colon === subject.length - 1) return false;
  if (subject.indexOf('#') >= 0) return false;
  return !(colon === subject.length - 2 && subject.charCodeAt(colon + 1) === 42); // `type:*`
}

export class VersionKeys {
  /**
   * Names what bumpsFor makes of a tuple here: a hash of everything it reads (node types,
   * structural and known relations, buckets). Two processes with the same scheme bump the
   * same versions for the same change.
   */
  readonly scheme: string;

  constructor(
    readonly structure: HierarchyStructure,
    private readonly buckets = 1024,
  ) {
    const sorted = (m: ReadonlyMap<string, Iterable<string>>) =>
      [...m].map(([type, names]) => [type, [...names].sort()] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const facts = {
      nodeTypes: [...structure.nodeTypes].sort(),
      parentRelations: sorted(structure.parentRelations),
      relations: sorted(structure.relations),
      buckets,
    };
    this.scheme = createHash('sha256').update(JSON.stringify(facts)).digest('base64url').slice(0, 16);
  }

  /** The slot of `object`: the node itself for hierarchy node types, a bucket for other types. */
  slot(object: string): string {
    const type = typeOf(object);
    if (this.structure.nodeTypes.has(type)) return object;
    return `#b|${type}|${fnv1a(object) % this.buckets}`;
  }

  /** The any-version key of `object`: changes whenever any tuple on it (or its bucket) changes. */
  objectKey(object: string): string {
    return this.slot(object);
  }

  /** The structure-version key of `object`'s slot. */
  structureKey(object: string): string {
    return this.structureKeyOfSlot(this.slot(object));
  }

  structureKeyOfSlot(slot: string): string {
    return `#s|${slot}`;
  }

  /** The role-version key of principal `subject` (a plain subject): one for all its roles. */
  roleKey(subject: string): string {
    // Joined, not concatenated: one flat string, which cached decisions and the version copy
    // share, instead of a rope that holds on to the subject string it was built from.
    return [ROLE_KEY_PREFIX, subject].join('');
  }

  /** The key whose version changes whenever a structural tuple pointing at `object` changes. */
  childrenKey(object: string): string {
    return `#c|${object}`;
  }

  /** The key whose version changes whenever `node`'s settings document changes. */
  settingsKey(node: string): string {
    return `#d|${node}`;
  }

  isStructural(t: TupleKey): boolean {
    return this.structure.parentRelations.get(typeOf(t.object))?.includes(t.relation) ?? false;
  }

  /**
   * A role tuple, scoped to its user: a relation this model defines on the object's type
   * and does not follow (not structural), with a plain object as user. A relation the
   * model does not know (a tuple written under a newer model, say) is not one: it might
   * be structural there.
   */
  isPrincipalRole(t: TupleKey): boolean {
    return (this.structure.relations.get(typeOf(t.object))?.has(t.relation) ?? false) && !this.isStructural(t) && plainSubject(t.user);
  }
}

export interface Bumps {
  /** Version keys to increment (deduplicated). */
  keys: string[];
  /**
   * Role-version keys to set, each paired with the counter it takes its value from (the
   * role counter, which the store increments along with `keys`): a role key takes that
   * counter's value after the increments. Values of a role key therefore never repeat,
   * even after it was forgotten (see ./version-store.ts).
   */
  roles: Array<[key: string, from: string]>;
  /** What the change was, for metrics: one count per changed tuple. */
  kinds: InvalidationKind[];
}

/**
 * Every version a tuple change must bump. The soundness argument (see ./soundness.ts,
 * invariant W) rests on rules 1–3; rule 4 keeps hierarchy listings fresh.
 *   1. every written or deleted tuple: the any-key of its object's slot;
 *   2. a role tuple (VersionKeys.isPrincipalRole): the role key of its user, set from the
 *      role counter (incremented once per change, however many role tuples it holds);
 *   3. any other tuple — structural, a wildcard or userset user, an unknown relation:
 *      the structure key of its object's slot;
 *   4. a structural tuple also bumps the children-key of the parent it names
 *      (a write names the new parent, a delete the old one: a move does both).
 */
export function bumpsFor(change: TupleChange, keys: VersionKeys): Bumps {
  const out = new Set<string>();
  const roles = new Map<string, string>();
  const kinds: InvalidationKind[] = [];
  const visit = (t: TupleKey, write: boolean) => {
    const slot = keys.slot(t.object);
    out.add(slot);
    if (keys.isPrincipalRole(t)) {
      roles.set(keys.roleKey(t.user), ROLE_COUNTER_KEY);
      kinds.push(write ? 'role_grant' : 'role_revoke');
      return;
    }
    out.add(keys.structureKeyOfSlot(slot));
    if (keys.isStructural(t)) {
      out.add(keys.childrenKey(objectPart(t.user)));
      kinds.push(write ? 'structural_link' : 'structural_unlink');
    } else {
      kinds.push(write ? 'role_grant' : 'role_revoke');
    }
  };
  for (const t of change.writes) visit(t, true);
  for (const t of change.deletes) visit(t, false);
  return { keys: [...out], roles: [...roles], kinds };
}

/** The bump for changed settings documents: each node's settings-version. */
export function settingsBump(nodes: readonly string[], keys: VersionKeys): Bumps {
  return { keys: [...new Set(nodes)].map((n) => keys.settingsKey(n)), roles: [], kinds: nodes.length > 0 ? ['settings'] : [] };
}

/** A bump of the global epoch alone. */
export function globalBump(kind: InvalidationKind): Bumps {
  return { keys: [GLOBAL_KEY], roles: [], kinds: [kind] };
}
