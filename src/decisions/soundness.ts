/**
 * Why a cached decision is never served after a write that changed it — and the
 * model shape that argument needs, checked at start (`assertDecisionModel`).
 *
 * ## Setting
 * A decision answers Check(user U, relation R, object O, contextual tuples C,
 * context X) against store S and model M. Its cache key covers all of
 * (S, M-id, U, R, O, C, X) (./key.ts), so the only thing that can change the answer
 * for one key is the set of stored tuples (or the model behind the id, see 5).
 *
 * ## 1. What a decision can read (the model-shape lemma)
 * If M has the shape checked below — no userset subjects (`[group#member]`) and no
 * wildcard parents — then resolving the check reads only tuples whose object is in
 *     Reach = closure of Roots under stored structural tuples, upwards,
 * where Roots = {O} ∪ {every object named in C, as object or as subject} ∪ {scope}
 * and a structural tuple is one on a relation some rewrite follows (`X from rel`).
 * Proof: a rewrite is built from direct assignment (reads tuples on the current
 * object; the subjects are plain users, so resolution never jumps to them), computed
 * usersets (same object, another relation), tuple-to-userset (reads the tupleset
 * tuples on the current object, then continues on each subject object it names —
 * a structural parent), and union/intersection/exclusion of those. So every object
 * visited is reached from O by a path of structural edges, each edge a tuple on an
 * object already visited. A contextual edge lands on a Root; a stored edge from a
 * node of Reach stays in Reach. ∎
 *
 * ## 2. What a cached decision records
 * The fill computes Reach with HierarchyResolver.closure, reading each node's version
 * before reading that node's structural tuples, adds the global epoch `#g`, and only
 * then asks the engine (with HIGHER_CONSISTENCY, bypassing OpenFGA's own cache).
 * The entry stores those version keys and versions.
 *
 * ## 3. Invariant W (the write rule, ./nodes.ts bumpsFor)
 * Every tuple written or deleted bumps the version key of its object (the node itself
 * for hierarchy types, a bucket for other types). Writes through tiergate bump before
 * the DecisionInvalidator resolves; writes made elsewhere are bumped by the ReadChanges
 * poller within one poll interval. Versions only increase (Redis INCR).
 *
 * ## 4. Theorem
 * If an entry's recorded versions all equal the current ones, its answer equals the
 * engine's answer on the state made of the fill-time tuples plus every write whose bump
 * has completed (later writes are in their propagation window). Proof: take any write w on
 * object Y whose bump completed before the lookup. If the bump happened before the fill
 * read Y's version, w happened before the engine was asked, so the answer includes w.
 * Otherwise, if Y ∈ Reach(fill), Y's version changed after it was recorded, so the entry
 * does not validate. If Y ∉ Reach(fill): by induction up the closure, every node of
 * Reach(fill) kept its version, so (W) none of its tuples changed, so its structural
 * tuples — and hence Reach itself — are unchanged, and by the lemma w cannot be read
 * by this check. ∎  Consequently, per kind of write (each has a test):
 *   - role grant/revoke on platform, organization, division, nested division, tenant:
 *     the tuple's object is that node, and every decision beneath it has the node in Reach;
 *   - structural link/unlink (organization#platform, division#organization,
 *     division#parent, tenant#division, <resource>#tenant): the child is the object, and
 *     every decision that could follow the link has the child in Reach;
 *   - move of a division or a tenant (delete + write on the moved node): bumps the moved
 *     node, so decisions beneath it re-resolve with the new chain — for the old and the
 *     new parent's admins alike. The old and new parents' children-versions are bumped
 *     too (`#c|…`), which is what "tenants under D" listings depend on; no decision
 *     depends on a node's children, so the parents' decisions stay warm;
 *   - platform changes: platform:root is in Reach of everything under an organization;
 *   - a new model: a new model id changes every key, and modelChanged() bumps `#g`,
 *     which every entry depends on.
 *
 * ## 5. Replicas and failures
 * - L2 (Redis) entries are validated against Redis' current versions: exact.
 * - L1 entries are validated against the in-process copy of versions, updated by
 *   pub/sub. DecisionInvalidator.tuplesChanged resolves only after every subscribed
 *   replica acknowledged applying the bump, or after ackTimeoutMs; a replica that has
 *   not applied it by then has also not received a heartbeat of its own published in
 *   the last fenceMs ≤ ackTimeoutMs (Redis delivers in order), so it serves no L1 hit.
 * - A replica that is not subscribed serves no L1 hits; when it subscribes again it
 *   drops its whole L1 and its version copy first (it may have missed messages).
 * - Redis losing its data recreates `#g` at a value it never had (time-based), so
 *   entries recorded before cannot validate.
 * - Redis unreachable but keeping its data (a partition, a restart from persisted data):
 *   a bump that failed meanwhile is missing there (the admin API answered
 *   invalidation-failed, and (W) holds only once the poller reads the write). So a
 *   replica whose Redis connection closed serves no cached decision, in process or from
 *   Redis, until it has bumped `#g` after reconnecting; every entry recorded before that
 *   bump then fails to validate, on every replica. A replica that never lost its own
 *   connection while another one did learns of that one's failed write from the
 *   poller (within READCHANGES_POLL_MS, or the poll lease's expiry if the cut-off
 *   replica held it) or from that replica's `#g` bump, whichever comes first.
 * - Redis must not evict keys without a TTL (maxmemory-policy noeviction or
 *   volatile-*): versions and the cursor have none.
 * - Errors, timeouts and "resolution too complex" reject and are never stored.
 */
import type { ModelTypes } from '../fga/hierarchy.js';
import { tuplesetsOf } from '../fga/hierarchy.js';

/** The shape section 1 needs; returns one sentence per violation (empty = fine). */
export function decisionModelProblems(model: ModelTypes): string[] {
  const problems: string[] = [];
  for (const td of model.type_definitions) {
    const structural = new Set(Object.values(td.relations ?? {}).flatMap((rewrite) => tuplesetsOf(rewrite)));
    for (const [relation, meta] of Object.entries(td.metadata?.relations ?? {})) {
      for (const ref of meta.directly_related_user_types ?? []) {
        if (ref.relation) {
          problems.push(`${td.type}#${relation} accepts userset subjects (${ref.type}#${ref.relation}): decisions would depend on tuples outside the hierarchy chain`);
        }
        if (structural.has(relation) && ref.wildcard !== undefined) {
          problems.push(`${td.type}#${relation} is structural but accepts a wildcard parent (${ref.type}:*)`);
        }
      }
    }
    for (const relation of structural) {
      const rewrite = td.relations?.[relation];
      if (!rewrite || rewrite.this === undefined || Object.keys(rewrite).some((k) => k !== 'this')) {
        problems.push(`${td.type}#${relation} is followed by a rewrite but is not directly assignable only`);
      }
    }
  }
  return problems;
}

export class UnsupportedModelError extends Error {
  override name = 'UnsupportedModelError';
}

/** Refuse to cache decisions for a model the soundness argument does not cover. */
export function assertDecisionModel(model: ModelTypes): void {
  const problems = decisionModelProblems(model);
  if (problems.length > 0) throw new UnsupportedModelError(`the decision cache cannot be used with this model:\n  - ${problems.join('\n  - ')}`);
}
