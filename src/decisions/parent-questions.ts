// Answering a resource's permission from its parent's decision.
//
// Resource permissions in the model are inherited (`agent#can_read: can_read_operational
// from tenant`), and the gateway names the parent in a contextual tuple. When the
// principal holds the parent's permission the resource's follows: a union is an OR,
// and the tuple-to-userset evaluates the parent's relation on every parent, the
// contextual one included. So the allow can be cached once per (principal, parent)
// instead of once per resource: a new agent, queue or call record is then a cache hit,
// and needs no read of its stored parents. A "no" from the parent proves nothing (the
// resource may have other parents, or other branches), so then the resource's own
// question is asked. Why the parent's question may drop the resource's contextual
// tuple: ./soundness.ts, section 6.
import type { Userset } from '@openfga/sdk';
import { typeOf, type HierarchyStructure, type ModelTypes } from '../fga/hierarchy.js';
import type { CheckRequest } from '../authz/types.js';
import { plainSubject } from './version-keys.js';

/** `relation from tupleset`, and the parent types whose `relation` it may follow. */
interface InheritedFrom {
  tupleset: string;
  relation: string;
  parentTypes: ReadonlySet<string>;
}

const NONE: readonly CheckRequest[] = Object.freeze([]);

/** Tuple-to-usersets that make up `rewrite`'s top-level union (or are the whole rewrite). */
function unionedTupleToUsersets(rewrite: Userset, out: Array<{ tupleset: string; relation: string }> = []) {
  const ttu = rewrite.tupleToUserset;
  if (ttu?.tupleset.relation && ttu.computedUserset.relation) out.push({ tupleset: ttu.tupleset.relation, relation: ttu.computedUserset.relation });
  // Only a union's children may stand for the whole; an intersection's or an exclusion's may not.
  for (const child of rewrite.union?.child ?? []) unionedTupleToUsersets(child, out);
  return out;
}

export class ParentQuestions {
  /** `type#relation` -> the parent relations whose allow implies it. */
  private readonly rules = new Map<string, readonly InheritedFrom[]>();
  private readonly nodeTypes: ReadonlySet<string>;

  constructor(model: ModelTypes, structure: HierarchyStructure) {
    this.nodeTypes = structure.nodeTypes;
    for (const td of model.type_definitions) {
      for (const [relation, rewrite] of Object.entries(td.relations ?? {})) {
        const rules: InheritedFrom[] = [];
        for (const { tupleset, relation: inherited } of unionedTupleToUsersets(rewrite)) {
          // Plain parents only (no userset or wildcard), of a type that defines the relation:
          // OpenFGA skips a parent whose type lacks it, so asking it there would be an error.
          const parentTypes = new Set(
            (td.metadata?.relations?.[tupleset]?.directly_related_user_types ?? [])
              .filter((ref) => !ref.relation && ref.wildcard === undefined && structure.relations.get(ref.type)?.has(inherited))
              .map((ref) => ref.type),
          );
          if (parentTypes.size > 0) rules.push({ tupleset, relation: inherited, parentTypes });
        }
        if (rules.length > 0) this.rules.set(`${td.type}#${relation}`, rules);
      }
    }
  }

  /**
   * The questions about `req.object`'s contextual parents whose "allowed" answers `req`
   * too, in the order the contextual tuples name them; empty when there are none.
   */
  for(req: CheckRequest): readonly CheckRequest[] {
    const rules = this.rules.get(`${typeOf(req.object)}#${req.relation}`);
    if (rules === undefined) return NONE;
    let out: CheckRequest[] | undefined;
    for (const t of req.contextualTuples) {
      if (t.object !== req.object || !plainSubject(t.user)) continue;
      const rule = rules.find((r) => r.tupleset === t.relation && r.parentTypes.has(typeOf(t.user)));
      if (rule === undefined) continue;
      const question: CheckRequest = {
        user: req.user,
        relation: rule.relation,
        object: t.user,
        // Evaluating a relation on a hierarchy node never visits an object of a type no
        // structural relation points at, so tuples on such objects cannot change the answer;
        // dropping them lets every resource of the parent share one decision.
        contextualTuples: req.contextualTuples.filter((c) => this.nodeTypes.has(typeOf(c.object))),
      };
      if (req.context !== undefined) question.context = req.context;
      if (req.scope !== undefined) question.scope = req.scope;
      (out ??= []).push(question);
    }
    return out ?? NONE;
  }
}
