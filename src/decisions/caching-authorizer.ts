// CachingAuthorizer: an Authorizer in front of another (the engine), with
//   L1  a bounded in-process LRU, served only while the version copy is trusted;
//   L2  Redis shared by replicas, validated against the current versions;
//   coalescing of identical in-flight checks, in process and, through a fill lease in
//   Redis, across replicas;
// and never an answer made up from an error: engine failures reject and are not cached.
//
// A cached decision records the version keys it depends on and their versions, read
// before the engine was asked (see ./soundness.ts for why that set is enough): the
// global epoch, the structure-version of every node its answer can depend on, and the
// principal's role-version. Its life (TTL) counts from that read. In process, the first
// two are one list per path and versions, shared by every principal's entries on it.
import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import type { Authorizer, CheckRequest, Decision } from '../authz/types.js';
import { objectPart, typeOf, type HierarchyResolver } from '../fga/hierarchy.js';
import { SpanKind, startSpan, type Span } from '../shared/tracing.js';
import { decisionKey } from './decision-key.js';
import { unexpiredStored, type FillLease, type SharedDecisions, type SharedLook } from './shared-decisions.js';
import type { DecisionMetrics } from './decision-metrics.js';
import { GLOBAL_KEY, plainSubject, ROLE_KEY_PREFIX } from './version-keys.js';
import type { ParentQuestions } from './parent-questions.js';
import type { VersionStore } from './version-store.js';

/**
 * An in-process entry: one small object per decision, so every field counts (five, each a
 * pointer or a small integer; see docs/decision-cache.md for the bytes per decision).
 */
class L1Entry {
  /** The VersionStore generation the versions were read in, times two, plus one when allowed. */
  readonly state: number;
  /** The principal's role-version: a small integer is kept as one, not as a boxed double. */
  readonly roleVersion: number;

  constructor(
    allowed: boolean,
    generation: number,
    /** The path's keys and their versions: shared lists (DependencyInterner), never mutated. */
    readonly deps: readonly string[],
    readonly versions: readonly number[],
    /** The principal's role-version key (undefined for a subject that is not plain). */
    readonly roleKey: string | undefined,
    roleVersion: number,
  ) {
    this.state = generation * 2 + (allowed ? 1 : 0);
    // Versions read from a list that holds a large one (the global epoch) come as doubles;
    // stored as they are, the field would box every entry's value.
    const small = roleVersion | 0;
    this.roleVersion = small === roleVersion ? small : roleVersion;
  }

  get allowed(): boolean {
    return (this.state & 1) === 1;
  }

  /** Whether the versions were read in `generation`. */
  readIn(generation: number): boolean {
    return Math.floor(this.state / 2) === generation;
  }
}

interface Flight {
  promise: Promise<{ allowed: boolean; layer: 'redis' | 'openfga' }>;
  /** VersionStore.seq when the flight started: later checks join only if nothing changed since. */
  seq: number;
}

export interface CachingAuthorizerOptions {
  engine: Authorizer;
  storeId: string;
  /** The pinned model id (part of every key); a getter so a re-pinned model changes keys at once. */
  modelId: () => string;
  versions: VersionStore;
  hierarchy: HierarchyResolver;
  /** The shared layer; absent without Redis. */
  shared?: SharedDecisions;
  /** Is Redis reachable right now (skip L2 without waiting when not). */
  sharedUp?: () => boolean;
  l1Enabled: boolean;
  l1MaxEntries: number;
  allowTtlMs: number;
  denyTtlMs: number;
  /** Fraction of the TTL added at random (0..1). */
  ttlJitter: number;
  metrics: DecisionMetrics;
  /**
   * Ask a resource's inherited permission of its contextual parent first, and cache that
   * (./parent-questions.ts); absent = every check is asked as it is.
   */
  parentQuestions?: ParentQuestions;
  /**
   * With the in-process layer on and no fill leases (fillWaitMs 0): ask the engine alongside
   * the Redis lookup, without waiting for it, while few lookups find an answer there
   * (default true; see `racing`).
   */
  raceLookups?: boolean;
  /**
   * With Redis: how long a miss waits for the answer of another replica that holds the
   * key's fill lease (is asking the engine the same question), and how long a lease lasts;
   * 0 = no leases, every replica asks for itself (default 0; CACHE_FILL_WAIT_MS).
   */
  fillWaitMs?: number;
  /**
   * Ask the engine with HIGHER_CONSISTENCY when filling the cache (default true):
   * an entry lives for minutes, so it must not come from OpenFGA's own cache.
   */
  strongFills?: boolean;
  random?: () => number;
}

/**
 * Race the engine against Redis while fewer than this share of recent Redis lookups
 * found an answer: each lookup that hits during a race is an engine call made for
 * nothing, so a race costs at most about this share more engine calls.
 */
export const RACE_BELOW_HIT_SHARE = 0.1;
/** Weight of the latest lookup in the running hit share (about the last 32 lookups count). */
const HIT_SHARE_WEIGHT = 1 / 32;

/** First pause of a miss waiting for another replica's fill; doubled after each look, up to the next. */
const FIRST_FILL_POLL_MS = 2;
const MAX_FILL_POLL_MS = 25;

const REDIS_SPAN_ATTRIBUTES = { 'db.system.name': 'redis', 'db.operation.name': 'GET' };
/** With fill leases the lookup is a script (GET, else take the lease). */
const REDIS_LEASE_SPAN_ATTRIBUTES = { 'db.system.name': 'redis', 'db.operation.name': 'EVALSHA' };

function endLookupSpan(span: Span, answer: boolean | undefined): void {
  span.setAttribute('tiergate.redis.hit', answer !== undefined);
  span.end();
}

export class CachingAuthorizer implements Authorizer {
  private readonly engine: Authorizer;
  private readonly storeId: string;
  private readonly modelId: () => string;
  private readonly versions: VersionStore;
  private readonly hierarchy: HierarchyResolver;
  private readonly shared: SharedDecisions | undefined;
  private readonly sharedUp: () => boolean;
  private readonly l1: LRUCache<string, L1Entry> | undefined;
  private readonly inflight = new Map<string, Flight>();
  private readonly opts: CachingAuthorizerOptions;
  private readonly counts: DecisionMetrics['counts'];
  private readonly strongFills: boolean;
  private readonly random: () => number;
  private readonly parentQuestions: ParentQuestions | undefined;
  private readonly raceLookups: boolean;
  private readonly fillWaitMs: number;
  /**
   * Share of recent Redis lookups that found a valid answer (moving average; kept only
   * while racing is possible). It starts at 1: a replica races only once Redis has been
   * seen not to hold its answers (about 70 misses in a row from the start), so replicas
   * that find each other's decisions there do not race.
   */
  private redisHitShare = 1;
  /** One copy of each dependency key and version list in process, shared by the entries naming it. */
  private readonly interned: DependencyInterner;

  constructor(opts: CachingAuthorizerOptions) {
    this.opts = opts;
    this.engine = opts.engine;
    this.storeId = opts.storeId;
    this.modelId = opts.modelId;
    this.versions = opts.versions;
    this.hierarchy = opts.hierarchy;
    this.shared = opts.shared;
    this.sharedUp = opts.sharedUp ?? (() => true);
    this.counts = opts.metrics.counts;
    this.strongFills = opts.strongFills ?? true;
    this.random = opts.random ?? Math.random;
    this.parentQuestions = opts.parentQuestions;
    this.fillWaitMs = opts.fillWaitMs ?? 0;
    // Room for a list per entry the in-process layer can hold: past that, sharing is lost.
    this.interned = new DependencyInterner(undefined, Math.max(DEFAULT_INTERNED_LISTS, opts.l1MaxEntries));
    // A race asks the engine before its lookup has said whether another replica is asking
    // already: with fill leases on, that is an engine call the lease exists to save, so
    // misses then always wait for their lookup (`racing`).
    this.raceLookups = (opts.raceLookups ?? true) && opts.l1Enabled && opts.shared !== undefined && this.fillWaitMs === 0;
    // ttlResolution 0: lru-cache otherwise caches "now" for 1 ms with a new timer each
    // time it reads the clock, i.e. a setTimeout on nearly every lookup under load.
    this.l1 = opts.l1Enabled
      ? new LRUCache<string, L1Entry>({ max: opts.l1MaxEntries, ttl: opts.allowTtlMs, ttlAutopurge: false, ttlResolution: 0 })
      : undefined;
  }

  /** Entries held in process. */
  get l1Size(): number {
    return this.l1?.size ?? 0;
  }

  /** Drop every in-process entry (resync after missed messages). */
  clearL1(): void {
    this.l1?.clear();
  }

  /** Not async: a decision the in-process layer holds is answered at once, without a promise. */
  check(req: CheckRequest): Decision | Promise<Decision> {
    const started = performance.now();
    if (this.parentQuestions !== undefined && req.consistency !== 'strong') {
      // A parent's allow is the resource's allow; its "no" decides nothing (./parent-questions.ts).
      const questions = this.parentQuestions.for(req);
      for (let i = 0; i < questions.length; i++) {
        const answer = this.decide(questions[i]!, started);
        if (answer instanceof Promise) return this.afterParents(answer, questions, i, req, started);
        if (answer.allowed) {
          this.counts.parent.allowed++;
          return answer;
        }
        this.counts.parent.denied++;
      }
    }
    return this.decide(req, started);
  }

  /** check, from the parent question `i` on, once its answer must be awaited. */
  private async afterParents(pending: Promise<Decision>, questions: readonly CheckRequest[], i: number, req: CheckRequest, started: number): Promise<Decision> {
    for (let answer: Decision | Promise<Decision> = pending; ; ) {
      const d = answer instanceof Promise ? await answer : answer;
      if (d.allowed) {
        this.counts.parent.allowed++;
        return d;
      }
      this.counts.parent.denied++;
      if (++i === questions.length) return this.decide(req, started);
      answer = this.decide(questions[i]!, started);
    }
  }

  /**
   * The answer to one question: straight from the in-process layer when it holds a valid
   * entry (no promise of its own: a warm parent question costs no extra await), else a
   * promise of the layers below.
   */
  private decide(req: CheckRequest, started: number): Decision | Promise<Decision> {
    if (req.consistency === 'strong') {
      // Right after a write, or a route that must not be cached: OpenFGA, HIGHER_CONSISTENCY.
      this.counts.strong++;
      return this.fromEngine(req, started);
    }
    const key = decisionKey(this.storeId, this.modelId(), req);
    if (key === undefined) {
      this.counts.uncached++;
      return this.fromEngine(req, started);
    }

    const l1 = this.l1;
    if (l1 !== undefined) {
      if (this.versions.trusted()) {
        const e = l1.get(key);
        if (e === undefined) this.counts.l1.miss++;
        else if (
          e.readIn(this.versions.generation) &&
          this.versions.matches(e.deps, e.versions) &&
          (e.roleKey === undefined || this.versions.matchesKey(e.roleKey, e.roleVersion))
        ) {
          this.counts.l1.hit++;
          return { allowed: e.allowed, layer: 'l1', durationMs: performance.now() - started };
        } else {
          this.counts.l1.stale++;
          l1.delete(key);
        }
      } else {
        this.counts.l1.bypass++;
      }
    }
    return this.belowL1(key, req, started);
  }

  private async fromEngine(req: CheckRequest, started: number): Promise<Decision> {
    const d = await this.engine.check(req);
    return { allowed: d.allowed, layer: 'openfga', durationMs: performance.now() - started };
  }

  /** Joins an identical check in flight, or resolves from Redis or the engine. */
  private async belowL1(key: string, req: CheckRequest, started: number): Promise<Decision> {
    const seq = this.versions.seq;
    const flying = this.inflight.get(key);
    if (flying !== undefined && flying.seq === seq) {
      this.counts.coalesced++;
      const r = await flying.promise;
      return { allowed: r.allowed, layer: 'coalesced', durationMs: performance.now() - started };
    }
    const flight: Flight = { promise: this.resolve(key, req), seq };
    this.inflight.set(key, flight);
    try {
      const r = await flight.promise;
      return { allowed: r.allowed, layer: r.layer, durationMs: performance.now() - started };
    } finally {
      if (this.inflight.get(key) === flight) this.inflight.delete(key);
    }
  }

  private ttlMs(allowed: boolean): number {
    const base = allowed ? this.opts.allowTtlMs : this.opts.denyTtlMs;
    return base * (1 + this.opts.ttlJitter * this.random());
  }

  /** The longest TTL an entry for `allowed` can be given. */
  private maxTtlMs(allowed: boolean): number {
    return (allowed ? this.opts.allowTtlMs : this.opts.denyTtlMs) * (1 + this.opts.ttlJitter);
  }

  private remember(key: string, e: L1Entry, ttlMs: number): void {
    // Only while trusted and in the generation the versions were read in: otherwise
    // the entry may predate a drop and could validate against reset counters.
    if (this.l1 && ttlMs > 0 && this.versions.trusted() && e.readIn(this.versions.generation)) {
      this.l1.set(key, e, { ttl: Math.max(1, Math.round(ttlMs)) });
    }
  }

  private async resolve(key: string, req: CheckRequest): Promise<{ allowed: boolean; layer: 'redis' | 'openfga' }> {
    const generation = this.versions.generation;
    // The entry's life counts from here, before any version is read, so no entry outlives
    // its TTL after its versions were read (without Redis, role-versions are forgotten some
    // time after that: ./local-version-store.ts).
    const depsAt = performance.now();

    // What the decision depends on, as far as this process knows the hierarchy. With the
    // in-process layer on, a Redis lookup mostly misses too (this replica would hold a fresh
    // entry itself), so these reads start alongside it: Redis gets both in one round trip.
    // With it off, every check is a Redis lookup that mostly hits: they wait for a miss.
    const early = this.l1 !== undefined && this.shared !== undefined ? this.knownDependencies(req).catch(() => undefined) : undefined;
    let lease: FillLease | undefined;
    if (this.shared) {
      const racing = early !== undefined && this.racing();
      const span = startSpan('tiergate.redis.lookup', SpanKind.CLIENT, this.fillWaitMs > 0 ? REDIS_LEASE_SPAN_ATTRIBUTES : REDIS_SPAN_ATTRIBUTES);
      const lookup = this.lookupShared(key, req, generation);
      // lookupShared never rejects: a failed lookup is a miss.
      if (span) void lookup.then((found) => endLookupSpan(span, found.allowed));
      if (racing) {
        // No fill leases (racing needs them off): nothing to release afterwards.
        const race: Race = { redisAnswered: false };
        return this.race(race, lookup.then((found) => found.allowed), this.fill({ key, req, generation, depsAt, known: early, race }));
      }
      const found = await lookup;
      if (found.allowed !== undefined) return { allowed: found.allowed, layer: 'redis' };
      lease = found.lease;
    }
    return this.fill({ key, req, generation, depsAt, known: early ?? this.knownDependencies(req).catch(() => undefined), lease });
  }

  /**
   * Race the engine against the Redis lookup? While Redis rarely holds the answer (one
   * replica, or decisions no other replica asked lately), waiting for its "no" before
   * asking the engine only adds a round trip to every miss. The running share of lookups
   * that hit still counts during races, so racing stops when Redis starts answering.
   * Never with fill leases on: a miss must know whether another replica is asking before
   * it asks itself (leaseOrWait), and only its lookup tells.
   */
  private racing(): boolean {
    return this.raceLookups && this.redisHitShare < RACE_BELOW_HIT_SHARE;
  }

  /** Moves the running share of Redis lookups that found a valid answer (`racing`). */
  private sawLookup(hit: boolean): void {
    this.redisHitShare += ((hit ? 1 : 0) - this.redisHitShare) * HIT_SHARE_WEIGHT;
  }

  /**
   * The first answer of the two: Redis' when it holds a valid one, the engine's otherwise.
   * The engine's error stands only if Redis has no answer either. Soundness is unchanged:
   * the engine is still asked only after the fill's versions were read (`fill`).
   */
  private async race(
    race: Race,
    lookup: Promise<boolean | undefined>,
    engine: Promise<{ allowed: boolean; layer: 'openfga' }>,
  ): Promise<{ allowed: boolean; layer: 'redis' | 'openfga' }> {
    // Redis' "no answer" is a loss, so Promise.any settles on the first real answer.
    const fromRedis = lookup.then((allowed) => {
      if (allowed === undefined) throw NO_ANSWER;
      race.redisAnswered = true;
      return { allowed, layer: 'redis' as const };
    });
    let first: { allowed: boolean; layer: 'redis' | 'openfga' };
    try {
      first = await Promise.any([fromRedis, engine]);
    } catch (err) {
      // Both lost: Redis had no answer, so the engine's error is the one to report.
      throw (err as AggregateError).errors[1];
    }
    this.counts.race[first.layer]++;
    return first;
  }

  /**
   * `askAndStore`, then the key's fill lease given up if this miss holds it: whether the
   * engine answered or failed, so replicas waiting for it look no longer than needed. The
   * entry's write is issued first, on the same connection, so it lands before the release.
   */
  private fill(miss: Miss): Promise<{ allowed: boolean; layer: 'openfga' }> {
    const filled = this.askAndStore(miss);
    const held = miss.lease;
    if (held !== undefined) {
      const release = () => this.releaseLease(held);
      filled.then(release, release);
    }
    return filled;
  }

  private releaseLease(lease: FillLease): void {
    this.shared!.release(lease).catch(() => this.opts.metrics.redisError('l2_release'));
  }

  /**
   * Reads the versions (`deps`), asks the engine, and caches its answer when it can be
   * validated later (in Redis too, unless Redis answered the race: it holds an answer).
   */
  private async askAndStore(miss: Miss): Promise<{ allowed: boolean; layer: 'openfga' }> {
    const { key, req, generation, depsAt, race } = miss;
    let deps: Dependencies | undefined = await miss.known;
    if (deps !== undefined && deps.openNodes) {
      // A hierarchy node whose parents this process never read (a first request under
      // it): resolve the whole closure before asking, the plain sequential way.
      deps = await this.dependencies(req).catch(() => undefined);
    }
    if (deps === undefined) {
      // Versions or structure unavailable (Redis or OpenFGA trouble; counted there):
      // the answer is still the engine's, it just isn't cached (nothing to validate it by).
      this.counts.uncached++;
    }

    // Every version the entry records has been read: ask the engine. Resources whose stored
    // parents are not cached (a new object: normally none) are read meanwhile; the entry
    // is kept only if they name no node outside the set whose versions were read.
    const settled = deps?.pending.length ? this.pendingClosed(deps) : undefined;
    let allowed: boolean;
    try {
      const d = await this.engine.check(this.strongFills ? { ...req, consistency: 'strong' } : req);
      allowed = d.allowed;
    } catch (err) {
      this.counts.engine.error++;
      settled?.catch(() => {});
      throw err;
    }
    if (allowed) this.counts.engine.allowed++;
    else this.counts.engine.denied++;
    if (deps !== undefined && settled !== undefined && !(await settled)) {
      this.counts.uncached++;
      deps = undefined;
    }

    const ttlMs = this.ttlMs(allowed) - (performance.now() - depsAt);
    if (deps && ttlMs >= 1) {
      const { keys, versions, roleKey, roleVersion } = deps;
      this.remember(key, new L1Entry(allowed, generation, keys, versions, roleKey, roleVersion), ttlMs);
      if (this.shared && this.sharedUp() && race?.redisAnswered !== true) {
        // One flat list in Redis, the role key last (lookupShared requires it there).
        const stored =
          roleKey === undefined
            ? { allowed, deps: keys.slice(), versions: versions.slice(), expiresAt: Date.now() + ttlMs }
            : { allowed, deps: [...keys, roleKey], versions: [...versions, roleVersion], expiresAt: Date.now() + ttlMs };
        this.shared.set(key, stored, ttlMs).catch(() => this.opts.metrics.redisError('l2_set'));
      }
    }
    return { allowed, layer: 'openfga' };
  }

  /**
   * Whether the pending resources' stored parents all lie in the set whose versions were
   * read (then that set is the closure, read before the engine was asked). False when they
   * name another node, or could not be read.
   */
  private async pendingClosed(deps: Dependencies): Promise<boolean> {
    try {
      const lists = await Promise.all(deps.pending.map((p) => this.hierarchy.parentsAt(p.object, p.version)));
      return lists.every((list) => list.every((parent) => deps.nodes.has(parent)));
    } catch {
      return false;
    }
  }

  /**
   * The answer from Redis if present and still valid; else, with fill leases on, the key's
   * lease for this miss, or the answer of the replica that holds it (`leaseOrWait`).
   */
  private async lookupShared(key: string, req: CheckRequest, generation: number): Promise<SharedLookup> {
    if (!this.sharedUp()) {
      this.counts.redis.bypass++;
      return NOT_FOUND;
    }
    let seen: SharedLook;
    try {
      seen = this.fillWaitMs > 0 ? await this.shared!.look(key, this.fillWaitMs) : { raw: await this.shared!.get(key), lease: undefined };
      if (seen.raw === undefined) {
        this.counts.redis.miss++;
      } else {
        const found = await this.validated(key, req, seen.raw, generation);
        if (typeof found === 'boolean') {
          this.counts.redis.hit++;
          this.sawLookup(true);
          return { allowed: found };
        }
        this.counts.redis[found]++;
      }
    } catch {
      // Slow or down Redis: straight to the engine (counted; the status shows why).
      this.counts.redis.error++;
      return NOT_FOUND;
    }
    if (this.fillWaitMs === 0) {
      this.sawLookup(false);
      return NOT_FOUND;
    }
    // With leases on, no miss races: the running share is not needed.
    return this.leaseOrWait(key, req, generation, seen);
  }

  /**
   * After a lookup found no valid answer (`seen`): the key's fill lease, taken for this miss
   * (which then asks the engine for every replica), or the answer of the replica holding it,
   * polled for with growing pauses while it holds the lease, at most fillWaitMs, and
   * validated like any entry (./soundness.ts, section 5). Nothing — ask the engine without
   * the lease — once the wait is over, or on Redis trouble: a lease never fails a check.
   */
  private async leaseOrWait(key: string, req: CheckRequest, generation: number, seen: SharedLook): Promise<SharedLookup> {
    const leases = this.counts.lease;
    const deadline = performance.now() + this.fillWaitMs;
    let pause = FIRST_FILL_POLL_MS;
    let waited = false;
    // The entry last found at the key and not valid: the next look takes the lease past it.
    let unusable = seen.raw;
    try {
      for (;;) {
        if (seen.lease === 'held') {
          const left = deadline - performance.now();
          if (left <= 0 || !this.sharedUp()) {
            leases.waited_filled++;
            return NOT_FOUND;
          }
          waited = true;
          await sleep(Math.min(pause, left));
          pause = Math.min(2 * pause, MAX_FILL_POLL_MS);
        } else if (seen.lease !== undefined) {
          leases[waited ? 'waited_filled' : 'acquired']++;
          return { lease: seen.lease };
        } else if (seen.raw !== undefined && seen.raw !== unusable) {
          // A new entry: the lease holder's answer, or another fill's.
          const found = await this.validated(key, req, seen.raw, generation);
          if (typeof found === 'boolean') {
            leases.waited_served++;
            return { allowed: found };
          }
          unusable = seen.raw;
          if (performance.now() >= deadline) {
            if (waited) leases.waited_filled++;
            return NOT_FOUND;
          }
        }
        seen = await this.shared!.look(key, this.fillWaitMs, unusable);
      }
    } catch {
      this.opts.metrics.redisError('l2_lease');
      if (waited) leases.waited_filled++;
      return NOT_FOUND;
    }
  }

  /**
   * The answer of a stored entry if it is well-formed, unexpired and its recorded versions
   * are the current ones (then it is kept in process too); else why not. An entry for a
   * plain subject must name that subject's role key last: one recorded under another
   * version scheme (per-node role keys, which nothing bumps any more) is never believed.
   */
  private async validated(key: string, req: CheckRequest, raw: string, generation: number): Promise<boolean | 'miss' | 'stale'> {
    const stored = unexpiredStored(raw);
    if (stored === undefined) return 'miss';
    const roleKey = this.roleKeyOf(req);
    const last = stored.deps.length - 1;
    if (roleKey === undefined ? stored.deps.some((k) => k.startsWith(ROLE_KEY_PREFIX)) : stored.deps[last] !== roleKey) return 'stale';
    const current = await this.versions.read(stored.deps);
    for (let i = 0; i < current.length; i++) {
      if (current[i] !== stored.versions[i]) return 'stale';
    }
    // `expiresAt` is the writer's clock: capped, so a skewed clock can't stretch an entry's life.
    const ttlMs = Math.min(stored.expiresAt - Date.now(), this.maxTtlMs(stored.allowed));
    const own = roleKey === undefined ? stored.deps.length : last;
    this.remember(
      key,
      new L1Entry(
        stored.allowed,
        generation,
        this.interned.list(stored.deps.slice(0, own)),
        this.interned.versions(stored.versions.slice(0, own)),
        roleKey,
        roleKey === undefined ? 0 : stored.versions[last]!,
      ),
      ttlMs,
    );
    return stored.allowed;
  }

  /**
   * Version keys of everything the answer to `req` can depend on (./soundness.ts):
   *   - the global epoch;
   *   - the principal's role-version when it is a plain object (read with the epoch: it
   *     does not depend on the path);
   *   - Reach: the object, every object named in a contextual tuple (and the scope), and
   *     everything above them through stored structural tuples — each node's
   *     structure-version, read (by the closure) before that node's structural tuples;
   *   - for a subject that is not a plain object (a wildcard, a userset), each node's
   *     any-version too.
   */
  private async dependencies(req: CheckRequest): Promise<Dependencies> {
    const roleKey = this.roleKeyOf(req);
    const head = await this.versions.read(roleKey === undefined ? GLOBAL_ONLY : [GLOBAL_KEY, roleKey]);
    const closure = await this.hierarchy.closure(rootsOf(req));
    return this.withNodeVersions(head, roleKey, closure.objects, closure.versions, []);
  }

  /**
   * The same, as far as the parent lists cached in process reach (no OpenFGA read). A node
   * whose stored parents are not cached is `pending` when it is a resource (it is checked
   * while the engine answers: ./soundness.ts, section 2) and sets `openNodes` when it is a
   * hierarchy node (then the caller resolves the closure first).
   */
  private async knownDependencies(req: CheckRequest): Promise<Dependencies> {
    const roleKey = this.roleKeyOf(req);
    const head = await this.versions.read(roleKey === undefined ? GLOBAL_ONLY : [GLOBAL_KEY, roleKey]);
    const closure = await this.hierarchy.knownClosure(rootsOf(req));
    const nodeTypes = this.hierarchy.structure.nodeTypes;
    const pending: Array<{ object: string; version: number }> = [];
    let openNodes = false;
    for (const i of closure.open) {
      const object = closure.objects[i]!;
      if (nodeTypes.has(typeOf(object))) openNodes = true;
      else pending.push({ object, version: closure.versions[i]! });
    }
    const deps = await this.withNodeVersions(head, roleKey, closure.objects, closure.versions, pending);
    deps.openNodes = openNodes;
    return deps;
  }

  /** The principal's role-version key; undefined for a subject that is not a plain object. */
  private roleKeyOf(req: CheckRequest): string | undefined {
    return plainSubject(req.user) ? this.versions.keys.roleKey(req.user) : undefined;
  }

  /** `head`: the versions of the global epoch and of `roleKey`, when there is one. */
  private async withNodeVersions(
    head: readonly number[],
    roleKey: string | undefined,
    objects: readonly string[],
    structureVersions: readonly number[],
    pending: Dependencies['pending'],
  ): Promise<Dependencies> {
    const vkeys = this.versions.keys;
    // Several objects can share a bucket; keep the oldest version read for its key
    // (the conservative one: it stops validating as soon as anything newer is seen).
    const byKey = new Map<string, number>([[GLOBAL_KEY, head[0]!]]);
    const slots = new Set<string>();
    objects.forEach((o, i) => {
      const slot = vkeys.slot(o);
      slots.add(slot);
      const k = vkeys.structureKeyOfSlot(slot);
      const v = structureVersions[i]!;
      const cur = byKey.get(k);
      if (cur === undefined || v < cur) byKey.set(k, v);
    });
    if (roleKey === undefined) {
      const any = [...slots];
      const anyVersions = await this.versions.read(any);
      any.forEach((k, i) => byKey.set(k, anyVersions[i]!));
    }
    return {
      keys: this.interned.list([...byKey.keys()]),
      versions: this.interned.versions([...byKey.values()]),
      roleKey,
      roleVersion: roleKey === undefined ? 0 : head[1]!,
      nodes: new Set(objects),
      pending,
      openNodes: false,
    };
  }
}

/** What the Redis lookup of a miss came to (CachingAuthorizer.lookupShared). */
interface SharedLookup {
  /** A valid answer, found there or written there by the replica that held the key's lease. */
  allowed?: boolean;
  /** The key's fill lease, taken for this miss: given up once its fill is done. */
  lease?: FillLease;
}

const NOT_FOUND: SharedLookup = {};
const GLOBAL_ONLY = [GLOBAL_KEY];

/** Redis' side of a race when it holds no valid answer (never reported: see CachingAuthorizer.race). */
const NO_ANSWER = Symbol('no answer in Redis');

/** A miss on its way to the engine (CachingAuthorizer.fill). */
interface Miss {
  key: string;
  req: CheckRequest;
  /** The version store's generation when the miss began. */
  generation: number;
  /** performance.now() before any version was read: the entry's life counts from here. */
  depsAt: number;
  /** Its dependencies, being read. */
  known: Promise<Dependencies | undefined>;
  /** The race against the Redis lookup this fill runs in, if any. */
  race?: Race;
  /** The key's fill lease, if this miss took it. */
  lease?: FillLease | undefined;
}

/** One race of the engine against a Redis lookup (CachingAuthorizer.race). */
interface Race {
  /** Redis held a valid answer (then the engine's need not be written there). */
  redisAnswered: boolean;
}

/** What a fill records, and what it still has to confirm. */
interface Dependencies {
  /** The path's keys (shared: never mutated) and their versions. */
  keys: readonly string[];
  versions: readonly number[];
  /** The principal's role-version key (undefined for a subject that is not plain) and its version. */
  roleKey: string | undefined;
  roleVersion: number;
  /** The objects whose versions were read (the closure, once `pending` is confirmed). */
  nodes: ReadonlySet<string>;
  /** Resources whose stored parents are still to be read, with the structure-version read for each. */
  pending: Array<{ object: string; version: number }>;
  /** A hierarchy node's parents were not cached: the closure is incomplete. */
  openNodes: boolean;
}

/** Lists the interner keeps at least (CachingAuthorizer sizes it to its in-process layer). */
const DEFAULT_INTERNED_LISTS = 20_000;

/**
 * Shares what in-process entries repeat: a path's key list (the global epoch and its
 * nodes' structure-versions) is one array however many principals' decisions name it,
 * each key in it one string whatever list it is in, and equal version lists are one
 * array. The lists are never mutated. A list is found by a hash of its content and
 * compared in full, so the interner keeps no text of its own per list; two lists that
 * collide are both correct, only the later one is not shared. Bounded, in two
 * generations (what is used moves to the newer one; the older is forgotten when the newer
 * is full), so lists still in use stay shared; entries keep the copies they have.
 */
export class DependencyInterner {
  private readonly strings: Generations<string, string>;
  private readonly lists: Generations<number, readonly string[]>;
  private readonly versionLists: Generations<number, readonly number[]>;

  constructor(maxStrings = 200_000, maxLists = DEFAULT_INTERNED_LISTS) {
    this.strings = new Generations(maxStrings);
    this.lists = new Generations(maxLists);
    this.versionLists = new Generations(maxLists);
  }

  /** The shared array equal to `keys`, each key the shared copy. */
  list(keys: string[]): readonly string[] {
    const hash = hashKeys(keys);
    const shared = this.lists.get(hash);
    if (shared !== undefined && sameItems(shared, keys)) return shared;
    const list = this.keys(keys);
    if (shared === undefined) this.lists.set(hash, list);
    return list;
  }

  /** The same keys, each the shared copy. */
  keys(keys: string[]): string[] {
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const shared = this.strings.get(k);
      if (shared === undefined) this.strings.set(k, k);
      else keys[i] = shared;
    }
    return keys;
  }

  /** The shared array equal to `versions`. */
  versions(versions: number[]): readonly number[] {
    const hash = hashVersions(versions);
    const shared = this.versionLists.get(hash);
    if (shared !== undefined && sameItems(shared, versions)) return shared;
    if (shared === undefined) this.versionLists.set(hash, versions);
    return versions;
  }
}

/** A map of at most about `max` entries in two halves: a hit moves to the newer one, the older is dropped when the newer fills. */
class Generations<K, V> {
  private cur = new Map<K, V>();
  private prev = new Map<K, V>();
  private readonly half: number;

  constructor(max: number) {
    this.half = Math.max(1, Math.floor(max / 2));
  }

  get(k: K): V | undefined {
    const v = this.cur.get(k);
    if (v !== undefined) return v;
    const old = this.prev.get(k);
    if (old !== undefined) {
      this.prev.delete(k);
      this.set(k, old);
    }
    return old;
  }

  set(k: K, v: V): void {
    this.cur.set(k, v);
    if (this.cur.size >= this.half) {
      this.prev = this.cur;
      this.cur = new Map();
    }
  }
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** FNV-1a over each key's length and characters (length first: ['ab', 'c'] and ['a', 'bc'] differ). */
function hashKeys(keys: readonly string[]): number {
  let h = 0x811c9dc5;
  for (const k of keys) {
    h = Math.imul(h ^ k.length, 0x01000193);
    for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193);
  }
  return h >>> 0;
}

/** FNV-1a over each version's two 32-bit halves (versions are non-negative integers; the epoch exceeds 2^32). */
function hashVersions(versions: readonly number[]): number {
  let h = 0x811c9dc5 ^ versions.length;
  for (const v of versions) {
    h = Math.imul(h ^ (v % 0x1_0000_0000), 0x01000193);
    h = Math.imul(h ^ Math.floor(v / 0x1_0000_0000), 0x01000193);
  }
  return h >>> 0;
}

/** The object, every object a contextual tuple names, and the scope node. */
function rootsOf(req: CheckRequest): string[] {
  const roots = [req.object];
  for (const t of req.contextualTuples) roots.push(t.object, objectPart(t.user));
  if (req.scope) roots.push(`${req.scope.type}:${req.scope.id}`);
  return roots;
}
