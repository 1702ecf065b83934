// Pure unit tests of the cache logic: no Redis, a fake engine (a table of answers)
// and an in-memory hierarchy. Semantics against the real OpenFGA live in
// tests/integration/decisions-*.test.ts.
import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { DecisionCache } from '../../src/decisions/index.js';
import type { ChildLink, StructureSource } from '../../src/fga/hierarchy.js';
import { AuthorizerUnavailableError } from '../../src/fga/authorizer.js';
import type { Authorizer, CheckRequest, Decision } from '../../src/authz/types.js';
import { MODEL, resourceCheck } from '../support/decisions-fixture.js';
import { timersStartedBy } from '../support/timers.js';
import { LocalVersionStore } from '../../src/decisions/local-version-store.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

/** Answers from a table; optionally holds every call until release(). */
class TableEngine implements Authorizer {
  calls: CheckRequest[] = [];
  answers = new Map<string, boolean | Error>();
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  set(user: string, relation: string, object: string, v: boolean | Error): void {
    this.answers.set(`${user} ${relation} ${object}`, v);
  }
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  async check(req: CheckRequest): Promise<Decision> {
    this.calls.push(req);
    if (this.gate) await this.gate;
    const v = this.answers.get(`${req.user} ${req.relation} ${req.object}`) ?? false;
    if (v instanceof Error) throw v;
    return { allowed: v, layer: 'openfga', durationMs: 0 };
  }
}

/** platform:root > organization:o1 > division:d1 > division:d2 > tenant:tA, tenant:tB */
class TableStructure implements StructureSource {
  parentsOf = new Map<string, string[]>([
    ['organization:o1', ['platform:root']],
    ['division:d1', ['organization:o1']],
    ['division:d2', ['division:d1', 'organization:o1']],
    ['tenant:tA', ['division:d2']],
    ['tenant:tB', ['division:d2']],
  ]);
  reads = 0;
  /** Every object whose parents were read, in order. */
  parentsRead: string[] = [];
  /** Reads of this object wait until release(). */
  held: { object: string; gate: Promise<void>; release: () => void } | undefined;
  holdReadsOf(object: string): void {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    this.held = { object, gate, release };
  }
  async parents(object: string): Promise<string[]> {
    this.reads++;
    this.parentsRead.push(object);
    if (this.held?.object === object) await this.held.gate;
    return this.parentsOf.get(object) ?? [];
  }
  async children(parent: string, links: readonly ChildLink[]): Promise<string[]> {
    const types = new Set(links.map((l) => l.type));
    return [...this.parentsOf].filter(([c, ps]) => ps.includes(parent) && types.has(c.split(':')[0]!)).map(([c]) => c);
  }
}

/**
 * The table engine answers each object as set, not as the model would, so the parent is
 * asked first (./parent-questions.ts) only where a test says so.
 */
function setup(opts: { parentQuestions?: boolean } = {}) {
  const engine = new TableEngine();
  const structure = new TableStructure();
  const registry = new Registry();
  const cache = new DecisionCache({
    engine,
    storeId: 'store1',
    modelId: () => 'model1',
    model: MODEL,
    registry,
    redisTimeoutMs: 5,
    l1Enabled: true,
    l1MaxEntries: 1000,
    allowTtlS: 300,
    denyTtlS: 30,
    ttlJitter: 0.1,
    pollMs: 1000,
    poller: false,
    structureSource: structure,
    parentQuestions: opts.parentQuestions ?? false,
  });
  const check = (user: string, relation: string, object: string, extra: Partial<CheckRequest> = {}) =>
    cache.authorizer.check({ user, relation, object, contextualTuples: [], ...extra });
  const agent = (tenant: string, user: string, id = '1'): CheckRequest => resourceCheck(user, tenant, 'agent', id);
  return { engine, structure, cache, check, agent, registry };
}

describe('CachingAuthorizer (in-process only)', () => {
  it('serves a repeated check from L1, allow and deny alike', async () => {
    const { engine, cache, check } = setup();
    engine.set('user:a', 'can_view', 'tenant:tA', true);
    expect(await check('user:a', 'can_view', 'tenant:tA')).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(await check('user:a', 'can_view', 'tenant:tA')).toMatchObject({ allowed: true, layer: 'l1' });
    expect(await check('user:b', 'can_view', 'tenant:tA')).toMatchObject({ allowed: false, layer: 'openfga' });
    expect(await check('user:b', 'can_view', 'tenant:tA')).toMatchObject({ allowed: false, layer: 'l1' });
    expect(engine.calls).toHaveLength(2);
    expect(cache.metrics.counts.l1.hit).toBe(2);
    expect(cache.status()).toMatchObject({ redis: 'disabled', subscriber: 'disabled', l1: 'serving', l1Entries: 2 });
  });

  it('serves an in-process hit without starting a timer', async () => {
    const { engine, check } = setup();
    engine.set('user:a', 'can_view', 'tenant:tA', true);
    await check('user:a', 'can_view', 'tenant:tA');
    expect(await timersStartedBy(() => check('user:a', 'can_view', 'tenant:tA'), 5)).toBe(0);
    expect(engine.calls).toHaveLength(1);
  });

  it('fills with strong consistency, and a strong check bypasses the cache', async () => {
    const { engine, check } = setup();
    engine.set('user:a', 'can_view', 'tenant:tA', true);
    await check('user:a', 'can_view', 'tenant:tA');
    expect(engine.calls[0]!.consistency).toBe('strong');
    expect(await check('user:a', 'can_view', 'tenant:tA', { consistency: 'strong' })).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(engine.calls).toHaveLength(2);
  });

  it('never caches an error, and never turns one into an answer', async () => {
    const { engine, cache, check } = setup();
    engine.set('user:a', 'can_view', 'tenant:tA', new AuthorizerUnavailableError('timeout', 'boom'));
    await expect(check('user:a', 'can_view', 'tenant:tA')).rejects.toBeInstanceOf(AuthorizerUnavailableError);
    await expect(check('user:a', 'can_view', 'tenant:tA')).rejects.toBeInstanceOf(AuthorizerUnavailableError);
    expect(engine.calls).toHaveLength(2);
    expect(cache.authorizer.l1Size).toBe(0);
    engine.set('user:a', 'can_view', 'tenant:tA', true);
    expect(await check('user:a', 'can_view', 'tenant:tA')).toMatchObject({ allowed: true, layer: 'openfga' });
  });

  it('coalesces concurrent identical checks into one engine call, errors included', async () => {
    const { engine, cache, check } = setup();
    engine.set('user:a', 'can_view', 'tenant:tA', true);
    engine.hold();
    const all = Array.from({ length: 20 }, () => check('user:a', 'can_view', 'tenant:tA'));
    await new Promise((r) => setTimeout(r, 5));
    engine.release();
    const results = await Promise.all(all);
    expect(engine.calls).toHaveLength(1);
    expect(results.every((d) => d.allowed)).toBe(true);
    expect(results.filter((d) => d.layer === 'coalesced')).toHaveLength(19);
    expect(cache.metrics.counts.coalesced).toBe(19);

    engine.set('user:e', 'can_view', 'tenant:tA', new AuthorizerUnavailableError('unreachable', 'down'));
    engine.hold();
    const failing = Array.from({ length: 5 }, () => check('user:e', 'can_view', 'tenant:tA'));
    engine.release();
    const settled = await Promise.allSettled(failing);
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
    expect(engine.calls).toHaveLength(2);
  });

  it('does not let a check started after an invalidation join a flight from before it', async () => {
    const { engine, cache, check } = setup();
    engine.set('user:a', 'can_view', 'tenant:tA', true);
    engine.hold();
    const before = check('user:a', 'can_view', 'tenant:tA');
    await new Promise((r) => setTimeout(r, 1));
    engine.set('user:a', 'can_view', 'tenant:tA', false);
    await cache.invalidator.tuplesChanged({ writes: [], deletes: [{ user: 'user:a', relation: 'admin', object: 'tenant:tA' }] });
    const after = check('user:a', 'can_view', 'tenant:tA');
    engine.release();
    await before; // concurrent with the write: either answer is acceptable for it
    expect(await after).toMatchObject({ allowed: false, layer: 'openfga' });
    expect(engine.calls).toHaveLength(2);
    // and the entry the older flight stored is not served
    expect(await check('user:a', 'can_view', 'tenant:tA')).toMatchObject({ allowed: false });
  });

  it("a grant for a user in tenant A invalidates that user's decisions in every tenant, never another user's", async () => {
    // One role-version per principal: a grant or revocation anywhere re-asks all of its
    // decisions (the price of one shared key list per path), and only its own.
    const { engine, cache, agent } = setup();
    for (const u of ['user:x', 'user:y']) for (const t of ['tA', 'tB']) engine.set(u, 'can_read', `agent:${t}/1`, true);
    const asks = (u: string) => [agent('tA', u), agent('tB', u)];
    const layers = async (u: string) => Promise.all(asks(u).map(async (r) => (await cache.authorizer.check(r)).layer));
    for (const u of ['user:x', 'user:y']) expect(await layers(u), u).toEqual(['openfga', 'openfga']);
    await cache.invalidator.tuplesChanged({ writes: [{ user: 'user:x', relation: 'admin', object: 'tenant:tA' }], deletes: [] });
    expect(await layers('user:y')).toEqual(['l1', 'l1']);
    expect(await layers('user:x')).toEqual(['openfga', 'openfga']);
    expect(await layers('user:x')).toEqual(['l1', 'l1']);
    // a revocation in the other tenant, and one on the platform (above every path), alike
    await cache.invalidator.tuplesChanged({ writes: [], deletes: [{ user: 'user:x', relation: 'member', object: 'tenant:tB' }] });
    expect(await layers('user:x')).toEqual(['openfga', 'openfga']);
    await cache.invalidator.tuplesChanged({ writes: [{ user: 'user:x', relation: 'admin', object: 'platform:root' }], deletes: [] });
    expect(await layers('user:x')).toEqual(['openfga', 'openfga']);
    expect(await layers('user:y')).toEqual(['l1', 'l1']);
  });

  it("a role change for one user invalidates that user's decisions, and nobody else's", async () => {
    const { engine, cache, agent, check } = setup();
    for (const u of ['user:u', 'user:v']) {
      for (const t of ['tA', 'tB']) engine.set(u, 'can_read', `agent:${t}/1`, true);
      engine.set(u, 'can_view', 'division:d2', true);
    }
    const asks = (u: string) => [agent('tA', u), agent('tB', u), { user: u, relation: 'can_view', object: 'division:d2', contextualTuples: [] }];
    const layers = async (u: string) => Promise.all(asks(u).map(async (r) => (await cache.authorizer.check(r)).layer));
    for (const u of ['user:u', 'user:v']) await layers(u);
    expect(await layers('user:u')).toEqual(['l1', 'l1', 'l1']);
    expect(await layers('user:v')).toEqual(['l1', 'l1', 'l1']);

    // revoke of u in tenant tA: u's tA decision re-asks (and now denies), so do u's others
    // (same answers); v stays warm everywhere
    engine.set('user:u', 'can_read', 'agent:tA/1', false);
    await cache.invalidator.tuplesChanged({ writes: [], deletes: [{ user: 'user:u', relation: 'member', object: 'tenant:tA' }] });
    expect(await cache.authorizer.check(agent('tA', 'user:u'))).toMatchObject({ allowed: false, layer: 'openfga' });
    expect(await layers('user:u')).toEqual(['l1', 'openfga', 'openfga']);
    expect(await layers('user:u')).toEqual(['l1', 'l1', 'l1']);
    expect(await layers('user:v')).toEqual(['l1', 'l1', 'l1']);

    // division admin for u on d1 (above d2): every decision of u beneath d1 re-asks; v's don't
    const before = engine.calls.length;
    await cache.invalidator.tuplesChanged({ writes: [{ user: 'user:u', relation: 'admin', object: 'division:d1' }], deletes: [] });
    expect(await layers('user:v')).toEqual(['l1', 'l1', 'l1']);
    expect(await layers('user:u')).toEqual(['openfga', 'openfga', 'openfga']);
    expect(engine.calls.length - before).toBe(3);

    // a structural change (tenant tA moved) re-asks everyone's decisions beneath the moved node only
    await cache.invalidator.tuplesChanged({
      writes: [{ user: 'division:d1', relation: 'division', object: 'tenant:tA' }],
      deletes: [{ user: 'division:d2', relation: 'division', object: 'tenant:tA' }],
    });
    for (const u of ['user:u', 'user:v']) expect(await layers(u), u).toEqual(['openfga', 'l1', 'l1']);

    // a wildcard grant on tB concerns everybody: structure-version, every decision beneath tB
    await cache.invalidator.tuplesChanged({ writes: [{ user: 'user:*', relation: 'member', object: 'tenant:tB' }], deletes: [] });
    for (const u of ['user:u', 'user:v']) expect(await layers(u), u).toEqual(['l1', 'openfga', 'l1']);
    expect((await check('user:v', 'can_view', 'division:d2')).layer).toBe('l1');
  });

  it('tells role-versions apart beyond 32 bits, and keeps allow and deny apart in process', async () => {
    const { engine, cache, check } = setup();
    engine.set('user:big', 'can_view', 'tenant:tA', true);
    // Role-versions past 2^32 (a long-lived counter), equal in their low 32 bits.
    cache.versions.apply([['#p|user:big', 2 ** 32 + 5]]);
    expect(await check('user:big', 'can_view', 'tenant:tA')).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(await check('user:big', 'can_view', 'tenant:tA')).toMatchObject({ allowed: true, layer: 'l1' });
    expect(await check('user:small', 'can_view', 'tenant:tA')).toMatchObject({ allowed: false, layer: 'openfga' });
    expect(await check('user:small', 'can_view', 'tenant:tA')).toMatchObject({ allowed: false, layer: 'l1' });
    cache.versions.apply([['#p|user:big', 2 ** 33 + 5]]);
    expect(await check('user:big', 'can_view', 'tenant:tA')).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(await check('user:big', 'can_view', 'tenant:tA')).toMatchObject({ allowed: true, layer: 'l1' });
    // A new generation (a local reset) voids every entry from before.
    cache.versions.drop();
    expect(await check('user:small', 'can_view', 'tenant:tA')).toMatchObject({ allowed: false, layer: 'openfga' });
    expect(engine.calls).toHaveLength(3 + 1);
  });

  it('a subject that is not a plain object depends on every tuple of its nodes', async () => {
    const { engine, cache, check } = setup();
    engine.set('group:g#member', 'can_view', 'tenant:tA', true);
    engine.set('user:v', 'can_view', 'tenant:tA', true);
    for (const u of ['group:g#member', 'user:v']) await check(u, 'can_view', 'tenant:tA');
    expect((await check('group:g#member', 'can_view', 'tenant:tA')).layer).toBe('l1');
    await cache.invalidator.tuplesChanged({ writes: [{ user: 'user:x', relation: 'member', object: 'tenant:tA' }], deletes: [] });
    expect((await check('group:g#member', 'can_view', 'tenant:tA')).layer).toBe('openfga');
    expect((await check('user:v', 'can_view', 'tenant:tA')).layer).toBe('l1');
  });

  it('without Redis, holds versions only for what was bumped, not for every principal checked', async () => {
    const { engine, cache, agent } = setup();
    engine.set('user:p0', 'can_read', 'agent:tA/1', true);
    for (let i = 0; i < 500; i++) await cache.authorizer.check(agent('tA', `user:p${i}`));
    expect(cache.versions.size).toBe(0);
    await cache.invalidator.tuplesChanged({ writes: [{ user: 'user:p1', relation: 'member', object: 'tenant:tA' }], deletes: [] });
    // the tenant's any-version, the role counter and p1's role-version
    expect(cache.versions.size).toBe(3);
    expect(cache.versions).toBeInstanceOf(LocalVersionStore);
    expect((cache.versions as LocalVersionStore).roleKeysHeld).toBe(1);
    expect((await cache.authorizer.check(agent('tA', 'user:p0'))).layer).toBe('l1');
    expect((await cache.authorizer.check(agent('tA', 'user:p1'))).layer).toBe('openfga');
  });

  it('refuses a role-version lifetime that a cached decision could outlive', () => {
    const base = {
      engine: new TableEngine(),
      storeId: 's',
      modelId: () => 'm',
      model: MODEL,
      redisTimeoutMs: 5,
      l1Enabled: true,
      l1MaxEntries: 10,
      allowTtlS: 300,
      denyTtlS: 30,
      ttlJitter: 0.1,
      pollMs: 1000,
      poller: false,
      structureSource: new TableStructure(),
    };
    expect(() => new DecisionCache({ ...base, registry: new Registry(), roleVersionTtlMs: 330_000 })).toThrow(/roleVersionTtlMs/);
    expect(() => new DecisionCache({ ...base, registry: new Registry(), roleVersionTtlMs: 390_000 })).not.toThrow();
  });

  it('creating a sibling tenant under the same division keeps the division subtree warm', async () => {
    const { engine, cache, agent } = setup();
    engine.set('user:tA', 'can_read', 'agent:tA/1', true);
    await cache.authorizer.check(agent('tA', 'user:tA'));
    await cache.invalidator.tuplesChanged({ writes: [{ user: 'division:d2', relation: 'division', object: 'tenant:tNew' }], deletes: [] });
    expect((await cache.authorizer.check(agent('tA', 'user:tA'))).layer).toBe('l1');
  });

  it('a model change invalidates everything', async () => {
    const { engine, cache, agent } = setup();
    engine.set('user:tA', 'can_read', 'agent:tA/1', true);
    await cache.authorizer.check(agent('tA', 'user:tA'));
    await cache.invalidator.modelChanged();
    expect((await cache.authorizer.check(agent('tA', 'user:tA'))).layer).toBe('openfga');
  });

  it('re-reads structure only when the node it belongs to changed', async () => {
    const { engine, cache, structure, agent } = setup();
    engine.set('user:tA', 'can_read', 'agent:tA/1', true);
    await cache.authorizer.check(agent('tA', 'user:tA'));
    const reads = structure.reads;
    expect(reads).toBeGreaterThan(0);
    await cache.authorizer.check(agent('tA', 'user:other'));
    expect(structure.reads).toBe(reads);
    // move tA to a new division d9 under o1
    structure.parentsOf.set('division:d9', ['organization:o1']);
    structure.parentsOf.set('tenant:tA', ['division:d9']);
    await cache.invalidator.tuplesChanged({
      writes: [{ user: 'division:d9', relation: 'division', object: 'tenant:tA' }],
      deletes: [{ user: 'division:d2', relation: 'division', object: 'tenant:tA' }],
    });
    expect(await cache.hierarchy.ancestors('tenant:tA')).toEqual(['division:d9', 'organization:o1', 'platform:root']);
    // the moved tenant now depends on d9: a grant there invalidates its decisions
    await cache.authorizer.check(agent('tA', 'user:tA'));
    await cache.invalidator.tuplesChanged({ writes: [{ user: 'user:tA', relation: 'admin', object: 'division:d9' }], deletes: [] });
    expect((await cache.authorizer.check(agent('tA', 'user:tA'))).layer).toBe('openfga');
    // and a role change there re-reads no structure
    const reads2 = structure.reads;
    await cache.authorizer.check(agent('tA', 'user:tA'));
    expect(structure.reads).toBe(reads2);
  });

  it('orders ancestors nearest first and lists tenants through nested divisions', async () => {
    const { cache } = setup();
    expect(await cache.hierarchy.ancestors('tenant:tA')).toEqual(['division:d2', 'division:d1', 'organization:o1', 'platform:root']);
    expect((await cache.hierarchy.tenantsUnder('division:d1')).sort()).toEqual(['tenant:tA', 'tenant:tB']);
    expect((await cache.hierarchy.tenantsUnder('organization:o1')).sort()).toEqual(['tenant:tA', 'tenant:tB']);
  });

  it('sends checks it cannot key safely to the engine every time', async () => {
    const { engine, check } = setup();
    await check('user:\uD800', 'can_view', 'tenant:tA');
    await check('user:\uD800', 'can_view', 'tenant:tA');
    expect(engine.calls).toHaveLength(2);
  });
});

describe('a new resource object: its stored parents are read while the engine answers', () => {
  it('asks the engine without waiting for that read, and caches once it names no other node', async () => {
    const { engine, structure, cache, check, agent } = setup();
    engine.set('user:a', 'can_view', 'tenant:tA', true);
    engine.set('user:a', 'can_read', 'agent:tA/1', true);
    await check('user:a', 'can_view', 'tenant:tA'); // the tenant's chain is now known in process
    structure.holdReadsOf('agent:tA/1');
    const pending = cache.authorizer.check(agent('tA', 'user:a'));
    await vi.waitFor(() => expect(engine.calls.map((c) => c.object)).toContain('agent:tA/1'));
    expect(structure.held).toBeDefined(); // asked while the read of the agent's parents is still open
    structure.held!.release();
    expect(await pending).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(await cache.authorizer.check(agent('tA', 'user:a'))).toMatchObject({ allowed: true, layer: 'l1' });
    expect(cache.metrics.counts.uncached).toBe(0);
  });

  it('does not cache an answer whose object has a stored link outside the nodes read; the next fill follows the link and its revocation', async () => {
    const { engine, structure, cache, check, agent } = setup();
    // A link written straight to OpenFGA: the agent of tenant A also hangs under tenant B.
    structure.parentsOf.set('agent:tA/1', ['tenant:tB']);
    engine.set('user:a', 'can_view', 'tenant:tA', true);
    engine.set('user:b', 'can_read', 'agent:tA/1', true); // b is a member of tB, so the stored link lets b in
    await check('user:a', 'can_view', 'tenant:tA');
    expect(await cache.authorizer.check(agent('tA', 'user:b'))).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(cache.metrics.counts.uncached).toBe(1); // tenant:tB was not among the versions read before the engine
    expect(await cache.authorizer.check(agent('tA', 'user:b'))).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(await cache.authorizer.check(agent('tA', 'user:b'))).toMatchObject({ allowed: true, layer: 'l1' });
    // b loses tB: the cached allow depended on b's role-version, so it is not served again.
    engine.set('user:b', 'can_read', 'agent:tA/1', false);
    await cache.invalidator.tuplesChanged({ writes: [], deletes: [{ user: 'user:b', relation: 'member', object: 'tenant:tB' }] });
    expect(await cache.authorizer.check(agent('tA', 'user:b'))).toMatchObject({ allowed: false, layer: 'openfga' });
  });

  it('an engine failure while the read is open rejects, caches nothing, and leaves no unhandled rejection', async () => {
    const { engine, structure, cache, check, agent } = setup();
    engine.set('user:a', 'can_view', 'tenant:tA', true);
    await check('user:a', 'can_view', 'tenant:tA');
    engine.set('user:a', 'can_read', 'agent:tA/1', new AuthorizerUnavailableError('timeout', 'slow'));
    structure.parentsOf.set('agent:tA/1', ['tenant:tB']);
    await expect(cache.authorizer.check(agent('tA', 'user:a'))).rejects.toBeInstanceOf(AuthorizerUnavailableError);
    engine.set('user:a', 'can_read', 'agent:tA/1', true);
    expect(await cache.authorizer.check(agent('tA', 'user:a'))).toMatchObject({ allowed: true, layer: 'openfga' });
  });
});


describe("a resource's inherited permission is asked of its contextual parent first", () => {
  it('answers every resource of the tenant from one cached allow, without reading any resource’s parents', async () => {
    const { engine, structure, cache, agent, registry } = setup({ parentQuestions: true });
    engine.set('user:a', 'can_read_operational', 'tenant:tA', true);
    const other = agent('tA', 'user:a', '2');
    expect(await cache.authorizer.check(agent('tA', 'user:a'))).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(await cache.authorizer.check(other)).toMatchObject({ allowed: true, layer: 'l1' });
    expect(engine.calls).toEqual([
      { user: 'user:a', relation: 'can_read_operational', object: 'tenant:tA', contextualTuples: [], scope: { type: 'tenant', id: 'tA' }, consistency: 'strong' },
    ]);
    expect(structure.parentsRead).not.toContain('agent:tA/1');
    expect(structure.parentsRead).not.toContain('agent:tA/2');
    expect(cache.metrics.counts.parent).toEqual({ allowed: 2, denied: 0 });
    const exposed = await registry.metrics();
    expect(exposed).toContain('tiergate_decision_parent_answers_total{outcome="allowed"} 2');
    expect(exposed).toContain('tiergate_decision_engine_calls_total{outcome="allowed"} 1');
  });

  it("asks the resource itself when the parent says no, and caches both answers", async () => {
    const { engine, cache, agent } = setup({ parentQuestions: true });
    // b is no member of tA, but a link stored in OpenFGA hangs agent tA/1 under b's tenant too.
    engine.set('user:b', 'can_read', 'agent:tA/1', true);
    expect(await cache.authorizer.check(agent('tA', 'user:b'))).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(engine.calls.map((c) => `${c.relation} ${c.object}`)).toEqual(['can_read_operational tenant:tA', 'can_read agent:tA/1']);
    expect(await cache.authorizer.check(agent('tA', 'user:b'))).toMatchObject({ allowed: true, layer: 'l1' });
    expect(engine.calls).toHaveLength(2);
    expect(cache.metrics.counts.parent).toEqual({ allowed: 0, denied: 2 });
    // and a denial on both is a denial
    expect(await cache.authorizer.check(agent('tA', 'user:c'))).toMatchObject({ allowed: false });
  });

  it("a revocation on the tenant invalidates the parent's allow for every resource under it", async () => {
    const { engine, cache, agent } = setup({ parentQuestions: true });
    engine.set('user:a', 'can_read_operational', 'tenant:tA', true);
    expect(await cache.authorizer.check(agent('tA', 'user:a'))).toMatchObject({ allowed: true });
    engine.set('user:a', 'can_read_operational', 'tenant:tA', false);
    await cache.invalidator.tuplesChanged({ writes: [], deletes: [{ user: 'user:a', relation: 'member', object: 'tenant:tA' }] });
    const another = agent('tA', 'user:a', '9');
    expect(await cache.authorizer.check(another)).toMatchObject({ allowed: false, layer: 'openfga' });
  });

  it('a strong check asks the resource as it is, once', async () => {
    const { engine, cache, agent } = setup({ parentQuestions: true });
    engine.set('user:a', 'can_read', 'agent:tA/1', true);
    expect(await cache.authorizer.check({ ...agent('tA', 'user:a'), consistency: 'strong' })).toMatchObject({ allowed: true, layer: 'openfga' });
    expect(engine.calls.map((c) => c.object)).toEqual(['agent:tA/1']);
  });
});
