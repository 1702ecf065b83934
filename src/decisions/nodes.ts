// Version keys and the mapping from a tuple change to the versions it bumps.
//
// Version keys (never valid OpenFGA object names, so no clash with real ids):
//   `tenant:t1`, `division:d1`, … exact per-node keys for hierarchy node types
//       (targets of a structural relation: platform, organization, division, tenant);
//   `#b|agent|417`   a bucket for objects of other types (resources): any deterministic
//       bucketing is sound, a shared bucket only costs extra invalidation;
//   `#c|division:d1` the children-version of a node: changes when a structural tuple
//       pointing at it is written or deleted (what "tenants under D" depends on);
//   `#g`             the global epoch: a new model, a reset cursor, lost Redis state,
//                    a replica's reconnect to Redis (./decision-cache.ts `fenced`).
import type { TupleChange, TupleKey } from '../gateway/types.js';
import { objectPart, typeOf, type HierarchyStructure } from '../fga/hierarchy.js';

export const GLOBAL_KEY = '#g';

export type InvalidationKind =
  | 'role_grant'
  | 'role_revoke'
  | 'structural_link'
  | 'structural_unlink'
  | 'model'
  | 'cursor_reset'
  | 'redis_reconnect';

export const INVALIDATION_KINDS: readonly InvalidationKind[] = [
  'role_grant',
  'role_revoke',
  'structural_link',
  'structural_unlink',
  'model',
  'cursor_reset',
  'redis_reconnect',
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

export class VersionKeys {
  constructor(
    readonly structure: HierarchyStructure,
    private readonly buckets = 1024,
  ) {}

  /** The key whose version changes whenever a tuple on `object` changes. */
  objectKey(object: string): string {
    const type = typeOf(object);
    if (this.structure.nodeTypes.has(type)) return object;
    return `#b|${type}|${fnv1a(object) % this.buckets}`;
  }

  /** The key whose version changes whenever a structural tuple pointing at `object` changes. */
  childrenKey(object: string): string {
    return `#c|${object}`;
  }

  isStructural(t: TupleKey): boolean {
    return this.structure.parentRelations.get(typeOf(t.object))?.includes(t.relation) ?? false;
  }
}

export interface Bumps {
  /** Version keys to increment (deduplicated). */
  keys: string[];
  /** What the change was, for metrics: one count per changed tuple. */
  kinds: InvalidationKind[];
}

/**
 * Every version a tuple change must bump. The soundness argument (see
 * ./soundness.ts) rests on rule 1; rule 2 keeps hierarchy listings fresh.
 *   1. the object of every written or deleted tuple: its object-key;
 *   2. a structural tuple also bumps the children-key of the parent it names
 *      (a write names the new parent, a delete the old one: a move does both).
 */
export function bumpsFor(change: TupleChange, keys: VersionKeys): Bumps {
  const out = new Set<string>();
  const kinds: InvalidationKind[] = [];
  const visit = (t: TupleKey, write: boolean) => {
    out.add(keys.objectKey(t.object));
    if (keys.isStructural(t)) {
      out.add(keys.childrenKey(objectPart(t.user)));
      kinds.push(write ? 'structural_link' : 'structural_unlink');
    } else {
      kinds.push(write ? 'role_grant' : 'role_revoke');
    }
  };
  for (const t of change.writes) visit(t, true);
  for (const t of change.deletes) visit(t, false);
  return { keys: [...out], kinds };
}
