/**
 * Why a cached decision is never served after a write that changed it — and the
 * model shape that argument needs, checked at start (`assertDecisionModel`).
 *
 * ## Setting
 * A decision answers Check(user P, relation R, object O, contextual tuples C,
 * context X) against store S and model M. Its cache key covers all of
 * (S, M-id, P, R, O, C, X) (./decision-key.ts), so the only thing that can change the answer
 * for one key is the set of stored tuples (or the model behind the id, see 4).
 * Terms (./version-keys.ts): a *plain* subject is an object `type:id` — no `#relation`, not
 * the wildcard `type:*`; a *structural* tuple is one on a relation some rewrite follows
 * (`X from rel`, a tupleset); a *role* tuple is one on a relation M defines on the
 * object's type and does not follow, whose user is plain. Objects map to slots: a
 * hierarchy node is its own slot, other objects share buckets.
 *
 * ## 1. What a decision can depend on (the model-shape lemma)
 * If M has the shape checked below — no userset subjects (`[group#member]`) anywhere, no
 * wildcard on a structural relation, structural relations directly assignable only — then
 * the answer is a function of C and of the stored tuples t with t.object in
 *     Reach = closure of Roots under stored structural tuples, upwards,
 * where Roots = {O} ∪ {every object named in C, as object or as subject} ∪ {scope},
 * and of those, when P is plain, only the ones where
 *     (a) t is structural, or (b) t.user = P, or (c) t.user is not plain.
 * In particular a role tuple for another plain subject Q ≠ P never matters.
 * Proof, by induction over the evaluation of the rewrite on (object Y, relation r), Y
 * starting at O. Direct assignment `[types]` holds iff there is a tuple (Y, r, P), or
 * (Y, r, type(P):*) (wildcard: (c)), or (Y, r, Z#s) with P in Z#s — a userset subject,
 * which the shape rules out (and which is (c) anyway). So it consults tuples on Y with
 * user P or not plain: (b) or (c); never one for a plain Q ≠ P, the test is equality.
 * A computed userset evaluates another relation on the same Y. A tuple-to-userset
 * `s from ts` consults the tupleset tuples (Y, ts, ·) — structural, (a) — and evaluates s
 * on each object Z they name: Z is a structural parent of Y, so in Reach (a contextual
 * edge lands on a Root, a stored edge from a node of Reach stays in Reach). Union,
 * intersection and exclusion combine those; a condition is evaluated on a tuple already
 * consulted, with X. So every tuple consulted is on an object of Reach and of kind (a),
 * (b) or (c). ∎  (What OpenFGA happens to read while evaluating doesn't matter: the
 * lemma is about what the answer is a function of. For a P that is not plain, the
 * lemma is used without the filter: any tuple on Reach.)
 *
 * ## 2. What a cached decision records
 * The fill reads the global epoch `#g` and, when P is plain, P's *role-version* `#p|P`
 * (one per principal, whatever the path); computes Reach with HierarchyResolver.closure —
 * reading each node's *structure-version* before reading that node's structural tuples —
 * then, when P is not plain, reads every slot N of Reach's *any-version*; only then does
 * it ask the engine (with HIGHER_CONSISTENCY, bypassing OpenFGA's own cache). The entry
 * stores those keys and versions, and lives at most max TTL (allow or deny, with jitter)
 * counted from the first of those reads (./caching-authorizer.ts; an in-process copy of a
 * Redis entry gets at most max TTL from the moment it was validated). In process, the
 * epoch and structure part is one list shared by every entry on the same path; that
 * changes how it is stored, not what is recorded.
 * One ordering is relaxed, for speed, without changing what is recorded: a *resource*
 * (an object of a type that is no hierarchy node) whose stored parents this process has
 * not cached at its just-read structure-version is read while the engine answers. Its
 * version, and every other recorded version, were read before the engine was asked; the
 * entry is recorded only if those stored parents all lie in the set whose versions were
 * read (normally there are none: the gateway passes resource links as contextual tuples).
 * Then that set is closed under the stored structural tuples as read — each read after its
 * node's version — so it is Reach exactly as the sequential fill computes it; otherwise
 * the answer is returned but not recorded. A hierarchy node whose parents are not cached
 * makes the fill resolve the whole closure first (./caching-authorizer.ts, resolve).
 * Without fill leases, a fill may also ask the engine before the Redis lookup of its key has
 * answered (./caching-authorizer.ts, racing). That changes which valid answer is returned
 * first, not what is recorded: the engine is still asked after every recorded version was
 * read, and a Redis entry is still served only once validated against the current versions
 * (section 5).
 *
 * ## 3. Invariant W (the write rule, ./version-keys.ts bumpsFor)
 * Every tuple t written or deleted, on an object of slot N:
 *   - bumps N's any-version;
 *   - if t is a role tuple, sets the role-version of t.user to the role counter `#p`'s
 *     new value (the same bump increments it);
 *   - otherwise (structural; a wildcard or userset user; a relation this process's model
 *     doesn't define on the type) bumps N's structure-version — and, if structural, the
 *     children-version of the parent it names.
 * So every tuple of kind (a), (b) or (c) on N (section 1) bumps a version a decision
 * for P that has N in Reach recorded: (a) and (c) the structure-version; (b) the
 * role-version of P if t is a role tuple, else the structure-version; and every tuple on
 * N bumps the any-version (for a P that is not plain). The role-version of P is a
 * superset of what section 1 needs — it also moves for P's role tuples outside Reach, so
 * P's decisions elsewhere are asked again for nothing — but never for another subject's:
 * a role tuple for Q ≠ P bumps only Q's role-version, N's any-version and the counter,
 * none of which P's decisions record: they stay warm.
 * Writes through tiergate bump before the DecisionInvalidator resolves; writes made
 * elsewhere are bumped by the ReadChanges poller within one poll interval. Both go through
 * bumpsFor. The poller leaves out only a change that tiergate's writer announced and then
 * bumped, on every replica, after the change was made (./own-writes.ts): the same bump.
 * Values (./version-store.ts): any-, structure-, children-versions, `#p` and `#g` only
 * increase (INCR). A role-version is only ever set to the counter's new value, and the
 * counter is never forgotten, so each non-zero value it takes is larger than all its
 * earlier ones (one counter for every principal: a per-node counter would not do, as
 * values set from two nodes' counters could repeat). In Redis no version expires. Without
 * Redis (one process, the in-process map is the truth) a role-version is forgotten — reads
 * 0 again — roleTtlMs after its last bump (monotonic clock), and DecisionCache refuses a
 * roleTtlMs not above max TTL + 1 minute.
 *
 * Lemma V. If a fill read value x of key k at time t₀, a bump of k completed at
 * t₁ > t₀, and the entry is looked up at t₂ > t₁ while it still exists, then k reads
 * ≠ x at t₂. For every key but a forgotten role key: it reads a value ≥ the one set at
 * t₁, which is > every earlier value (so ≠ x; for a role key x = 0 is earlier too).
 * A role key read as 0 after t₁ was forgotten at t₂ ≥ t₁ + roleTtlMs > t₀ + max TTL,
 * when an entry whose versions were read at t₀ is gone (no Redis: in-process entries
 * only, each living at most max TTL from its fill's version read). ∎
 *
 * ## 4. Theorem
 * If an entry's recorded versions all equal the current ones, its answer equals the
 * engine's answer on the state made of the fill-time tuples plus every write whose bump
 * has completed (later writes are in their propagation window). Proof: first, Reach is
 * unchanged: by induction up the closure, for a node N of Reach(fill) take any structural
 * write on N whose bump completed. If it completed before the fill read N's
 * structure-version, it precedes the fill's read of N's structural tuples, which include
 * it; otherwise (W, V) N's structure-version differs now and the entry does not
 * validate. So the structural tuples of Reach, and Reach itself, are as the fill saw
 * them. Next take any write w whose bump completed before the lookup. If w's tuple is on
 * no node of Reach, or is a role tuple for Q ≠ P, the answer does not depend on it (1).
 * Otherwise it is of kind (a)–(c) on a node N of Reach and bumps a key k the entry
 * recorded (3). If that bump completed before the fill read k, w happened before the
 * engine was asked, so the answer includes w; otherwise k reads differently now (V) and
 * the entry does not validate. ∎  Consequently, per kind of write (each has a test):
 *   - role grant/revoke for user U on platform, organization, division, nested division,
 *     tenant: bumps the role-version of U, which every decision of U recorded (those
 *     beneath the node need it; the others are asked again needlessly); other users'
 *     decisions stay warm;
 *   - structural link/unlink (organization#platform, division#organization,
 *     division#parent, tenant#division, <resource>#tenant): the child's structure-version,
 *     and every decision that could follow the link has the child in Reach;
 *   - move of a division or a tenant (delete + write on the moved node): bumps the moved
 *     node's structure-version, so every decision beneath it re-resolves with the new
 *     chain — for the old and the new parent's admins alike, and everyone else. The old and
 *     new parents' children-versions are bumped too (`#c|…`), which is what "tenants under
 *     D" listings depend on; no decision depends on a node's children, so the parents'
 *     decisions stay warm;
 *   - a wildcard grant (`user:*`, were M to allow one on a role relation) or a tuple on a
 *     relation M doesn't know: the node's structure-version, i.e. every decision beneath;
 *   - platform changes: platform:root is in Reach of everything under an organization;
 *   - a new model: a new model id changes every key, and modelChanged() bumps `#g`,
 *     which every entry depends on.
 *
 * ## 5. Replicas and failures
 * - L2 (Redis) entries are validated against the current versions: Redis', or the
 *   in-process copy's while it is trusted (below).
 * - A fill lease (./caching-authorizer.ts, leaseOrWait) decides only who asks the engine.
 *   A replica waiting for the lease holder's answer serves it as an L2 hit: read from
 *   Redis after the wait began, and validated against the current versions exactly as
 *   above, so the theorem of section 4 applies to it unchanged; a write whose bump
 *   completed while the holder was asking makes it fail to validate, and the waiter asks
 *   the engine itself. Lost, expired or never released leases cost engine calls, not answers.
 * - The in-process copy (./redis-version-store.ts) is bounded: it forgets the versions not used for a
 *   while (two generations), and a forgotten version is unknown — an entry depending on it
 *   does not validate in process; the next read fetches it from Redis. Claim: once a bump
 *   of k has been applied locally, the local value of k, while known, is a value k had in
 *   Redis at or after that bump. Applying merges by max (in Redis every version only
 *   grows); a read inserts a key it doesn't find only if no
 *   generation was forgotten or nothing was applied since the read began — then the key
 *   was unknown when the read began and no bump of it was applied since, so the fetch
 *   came after every applied bump of k. Without Redis the in-process map is the truth:
 *   only bumps store values, unknown reads 0, and role keys are swept roleTtlMs after
 *   their last bump (Lemma V).
 * - L1 entries are validated against that copy, updated by pub/sub.
 *   DecisionInvalidator.tuplesChanged resolves only after every subscribed replica
 *   acknowledged applying the bump, or after ackTimeoutMs; a replica that has not applied
 *   it by then has also not received a heartbeat of its own published in the last
 *   fenceMs ≤ ackTimeoutMs (Redis delivers in order), so it serves no L1 hit.
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
 *   volatile-*): versions — role-versions included — and the cursor have none. (That is
 *   also why role-versions are not expired in Redis: under volatile-* a key with a TTL
 *   may be evicted early, and a role-version read as 0 again too early breaks V.)
 * - Replicas sharing a Redis must all run this version scheme: a replica from before
 *   principal-scoped versions bumps only any-versions for a role change, and one from
 *   before per-principal role-versions bumps per-node role keys (`#r|…`), which no
 *   decision records now, and not `#p|P`. A Redis entry for a plain P is believed only
 *   if its last key is `#p|P`, so the entries recorded under per-node role keys, which
 *   nothing bumps any more, never validate.
 * - Errors, timeouts and "resolution too complex" reject and are never stored.
 *
 * ## 6. Asking the parent first (./parent-questions.ts)
 * A check of R on O with contextual tuples C may first be asked as S on P, with C' = the
 * tuples of C whose object is of a hierarchy node type, when (O, t, P) is in C, P is plain
 * and of a type t accepts that defines S, and `S from t` is R's rewrite or one branch of
 * its top-level union. Lemma: if S on P with C' is allowed, so is R on O with C.
 * Proof: a union holds when a branch does; `S from t` evaluates S on every object the
 * (O, t, ·) tuples name, stored or contextual, so on P. Evaluating S on P consults tuples
 * on objects of Reach(P) only (section 1, with P as the root), and every object of Reach(P)
 * is P or the target of a structural tuple: of a node type. So the tuples of C on other
 * objects are never consulted, and S on P with C' is S on P with C. ∎ A denial on P is
 * not used (O may have other parents or branches): R on O is then asked as it is. Each
 * question is cached under its own key with its own dependencies, so sections 2–5 hold
 * for the parent's entry as for any other, and a resource answered through it records
 * nothing about the resource: no structural tuple on O can turn the parent's allow into
 * a denial of R on O.
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
