// Confirming a listing's candidates by what places them under the caller's role, rather
// than by a full Check each.
//
// A full `can_view` Check on a tenant four divisions deep walks every level of the
// hierarchy again, and a page of them repeats the same walk a hundred times. But the
// answer is already implied by facts that are each one stored tuple: the caller's role
// at a root (organization:acme#admin@user:olivia), and the structural links from the
// candidate up to that root (tenant:t#division@division:d, division:d#organization@
// organization:acme). When the model's rewrites make `can_view` on the candidate a
// union that contains the root's role through exactly those links, every such fact
// being present proves the Check true:
//   - a union holds when any of its children holds, and a computed userset `admin` in
//     it holds when `admin` holds on the same object;
//   - `r from ts` holds when a tuple (object, ts, parent) is stored and r holds on that
//     parent; the tupleset `ts` is a plain direct relation, so asking OpenFGA whether the
//     parent is related by `ts` is asking whether that tuple is stored.
// Intersections and exclusions are never followed: a child of one proves nothing. The
// facts are themselves asked of OpenFGA (one BatchCheck of one-lookup checks, fresh),
// never taken from the database, so the listing still shows only what the model allows.
// A candidate whose facts do not all hold is not refused on that account: it gets the
// full Check. So the answer is always the full Check's answer; only its cost changes.
import type { RelationReference, Userset } from '@openfga/sdk';
import type { ModelTypes } from '../fga/hierarchy.js';

/** One step up the hierarchy: the child's structural relation `tupleset` names a parent of `parentType`. */
export interface Hop {
  childType: string;
  tupleset: string;
  parentType: string;
}

interface Terms {
  /** Relations of the same object whose holders hold this one (computed usersets in a union). */
  computed: string[];
  /** `relation from tupleset` in a union. */
  inherited: Array<{ tupleset: string; relation: string }>;
}

/** The union-position terms of a rewrite; an intersection or exclusion contributes none. */
function unionTerms(rewrite: Userset | undefined, out: Terms = { computed: [], inherited: [] }): Terms {
  if (!rewrite) return out;
  if (rewrite.computedUserset?.relation) out.computed.push(rewrite.computedUserset.relation);
  const ttu = rewrite.tupleToUserset;
  if (ttu?.tupleset.relation && ttu.computedUserset.relation) out.inherited.push({ tupleset: ttu.tupleset.relation, relation: ttu.computedUserset.relation });
  for (const child of rewrite.union?.child ?? []) unionTerms(child, out);
  return out;
}

/** A direct relation that holds only plain parents of `parentType` (no userset, wildcard or condition). */
function isPlainLink(rewrite: Userset | undefined, refs: readonly RelationReference[] | undefined, parentType: string): boolean {
  if (!rewrite || Object.keys(rewrite).length !== 1 || rewrite.this === undefined) return false;
  const ofType = (refs ?? []).filter((r) => r.type === parentType);
  return ofType.length > 0 && ofType.every((r) => !r.relation && r.wildcard === undefined && !r.condition);
}

export class ListingProof {
  private readonly rewrites = new Map<string, Record<string, Userset>>();
  private readonly refs = new Map<string, Record<string, { directly_related_user_types?: RelationReference[] }>>();
  private readonly memo = new Map<string, boolean>();

  constructor(model: ModelTypes) {
    for (const td of model.type_definitions) {
      this.rewrites.set(td.type, td.relations ?? {});
      this.refs.set(td.type, (td.metadata?.relations ?? {}) as Record<string, { directly_related_user_types?: RelationReference[] }>);
    }
  }

  /** `relation` and every relation of the same type whose holders hold it, through unions. */
  private closure(type: string, relations: Iterable<string>): Set<string> {
    const defined = this.rewrites.get(type) ?? {};
    const seen = new Set<string>();
    const todo = [...relations].filter((r) => r in defined);
    while (todo.length > 0) {
      const r = todo.pop()!;
      if (seen.has(r)) continue;
      seen.add(r);
      for (const c of unionTerms(defined[r]).computed) if (c in defined && !seen.has(c)) todo.push(c);
    }
    return seen;
  }

  /**
   * Whether anyone holding `rootRelation` on the node reached from an object of `startType`
   * by `hops` (each hop's link stored) holds `startRelation` on that object.
   */
  proves(startType: string, startRelation: string, hops: readonly Hop[], rootRelation: string): boolean {
    const key = `${startType}#${startRelation}|${hops.map((h) => `${h.childType}.${h.tupleset}>${h.parentType}`).join('|')}|${rootRelation}`;
    let answer = this.memo.get(key);
    if (answer === undefined) {
      answer = this.search(startType, startRelation, hops, rootRelation);
      this.memo.set(key, answer);
    }
    return answer;
  }

  private search(startType: string, startRelation: string, hops: readonly Hop[], rootRelation: string): boolean {
    let type = startType;
    let relations = this.closure(type, [startRelation]);
    for (const hop of hops) {
      if (hop.childType !== type) return false;
      const defined = this.rewrites.get(type) ?? {};
      if (!isPlainLink(defined[hop.tupleset], this.refs.get(type)?.[hop.tupleset]?.directly_related_user_types, hop.parentType)) return false;
      const next: string[] = [];
      for (const r of relations) for (const t of unionTerms(defined[r]).inherited) if (t.tupleset === hop.tupleset) next.push(t.relation);
      type = hop.parentType;
      relations = this.closure(type, next);
      if (relations.size === 0) return false;
    }
    return relations.has(rootRelation);
  }
}
