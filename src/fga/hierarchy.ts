// The account hierarchy as OpenFGA stores it: structural tuples (tenant#division,
// division#parent, division#organization, organization#platform, <resource>#tenant).
//
// - `structureOf(model)` derives which relations are structural from the model itself:
//   a relation is structural when some rewrite follows it (`X from <relation>`).
// - `HierarchyResolver` answers "which nodes are above this one" (the ancestor
//   chain a decision depends on) and "which tenants are below this one", reading
//   structural tuples from OpenFGA (every page) and caching what it read in process.
//
// Cached entries carry the version of the node they were read at, and are used only
// while that version is still current. Versions come from the decision cache: a
// structural write bumps the structure-version of the node holding the tuple (the moved
// node) and the children-version of its old and new parent, so it invalidates exactly
// the cached structure it changed; role grants and revocations bump neither.
import type { AuthorizationModel, Userset } from '@openfga/sdk';
import { LRUCache } from 'lru-cache';
import type { FgaRequestClient } from './request-client.js';

export interface ChildLink {
  /** Type of the child object holding the structural tuple. */
  type: string;
  /** Structural relation on the child that points at the parent. */
  relation: string;
}

export interface HierarchyStructure {
  /** Type -> its structural relations (the tuplesets its rewrites follow), in model order. */
  readonly parentRelations: ReadonlyMap<string, readonly string[]>;
  /** Parent type -> the (child type, relation) pairs that can point at it. */
  readonly childLinks: ReadonlyMap<string, readonly ChildLink[]>;
  /** Types that can be the target of a structural relation: the hierarchy's nodes. */
  readonly nodeTypes: ReadonlySet<string>;
  /** Types that occur in the model at all. */
  readonly types: ReadonlySet<string>;
  /** Type -> every relation the model defines on it (structural or not). */
  readonly relations: ReadonlyMap<string, ReadonlySet<string>>;
}

export type ModelTypes = Pick<AuthorizationModel, 'type_definitions'>;

/** Tupleset relations a rewrite follows, in the order they appear. */
export function tuplesetsOf(rewrite: Userset | undefined, out: string[] = []): string[] {
  if (!rewrite) return out;
  if (rewrite.tupleToUserset) {
    const r = rewrite.tupleToUserset.tupleset.relation;
    if (r && !out.includes(r)) out.push(r);
  }
  for (const child of rewrite.union?.child ?? []) tuplesetsOf(child, out);
  for (const child of rewrite.intersection?.child ?? []) tuplesetsOf(child, out);
  if (rewrite.difference) {
    tuplesetsOf(rewrite.difference.base, out);
    tuplesetsOf(rewrite.difference.subtract, out);
  }
  return out;
}

export function structureOf(model: ModelTypes): HierarchyStructure {
  const parentRelations = new Map<string, string[]>();
  const childLinks = new Map<string, ChildLink[]>();
  const nodeTypes = new Set<string>();
  const types = new Set<string>();
  const relations = new Map<string, Set<string>>();
  for (const td of model.type_definitions) {
    types.add(td.type);
    relations.set(td.type, new Set(Object.keys(td.relations ?? {})));
    const structural: string[] = [];
    for (const rewrite of Object.values(td.relations ?? {})) tuplesetsOf(rewrite, structural);
    if (structural.length === 0) continue;
    parentRelations.set(td.type, structural);
    for (const relation of structural) {
      for (const ref of td.metadata?.relations?.[relation]?.directly_related_user_types ?? []) {
        nodeTypes.add(ref.type);
        const links = childLinks.get(ref.type) ?? [];
        if (!links.some((l) => l.type === td.type && l.relation === relation)) links.push({ type: td.type, relation });
        childLinks.set(ref.type, links);
      }
    }
  }
  return { parentRelations, childLinks, nodeTypes, types, relations };
}

export function typeOf(object: string): string {
  const i = object.indexOf(':');
  return i < 0 ? object : object.slice(0, i);
}

/** `division:d1#member` -> `division:d1`; plain objects unchanged. */
export function objectPart(subject: string): string {
  const i = subject.indexOf('#');
  return i < 0 ? subject : subject.slice(0, i);
}

/** Where structural tuples come from: OpenFGA in production, a table in unit tests. */
export interface StructureSource {
  /** Objects the given structural relations of `object` point at (stored tuples only). */
  parents(object: string, relations: readonly string[]): Promise<string[]>;
  /** Objects whose given structural relations point at `parent`. */
  children(parent: string, links: readonly ChildLink[]): Promise<string[]>;
}

/** Reads structural tuples from OpenFGA with HIGHER_CONSISTENCY, following every page. */
export class FgaStructureSource implements StructureSource {
  constructor(
    private readonly api: FgaRequestClient,
    private readonly pageSize = 100,
  ) {}

  private async readAll(filter: { user?: string; relation: string; object: string }, pick: 'user' | 'object'): Promise<string[]> {
    const out: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await this.api.read(filter, {
        pageSize: this.pageSize,
        consistency: 'strong',
        ...(continuationToken ? { continuationToken } : {}),
      });
      for (const t of page.tuples) out.push(objectPart(t[pick]));
      continuationToken = page.continuationToken;
    } while (continuationToken);
    return out;
  }

  async parents(object: string, relations: readonly string[]): Promise<string[]> {
    const lists = await Promise.all(relations.map((relation) => this.readAll({ relation, object }, 'user')));
    return lists.flat();
  }

  async children(parent: string, links: readonly ChildLink[]): Promise<string[]> {
    const lists = await Promise.all(links.map((l) => this.readAll({ user: parent, relation: l.relation, object: `${l.type}:` }, 'object')));
    return lists.flat();
  }
}

/** Versions the hierarchy cache is validated against (the decision cache's version store). */
export interface NodeVersions {
  /**
   * Changes whenever a structural tuple whose object is `object` is written or deleted
   * (and, conservatively, more often). Rejects when unknown.
   */
  structureVersions(objects: readonly string[]): Promise<readonly number[]>;
  /** Changes whenever a structural tuple pointing at `object` (as parent) changes. */
  childVersions(objects: readonly string[]): Promise<readonly number[]>;
}

const NO_PARENTS: readonly string[] = Object.freeze([]);

export class HierarchyTooLargeError extends Error {
  override name = 'HierarchyTooLargeError';
}

/** A set of nodes plus the structure-version each was read at (read before its structural tuples). */
export interface Closure {
  objects: string[];
  versions: number[];
}

interface CachedList {
  version: number;
  list: readonly string[];
}

export interface HierarchyResolverOptions {
  source: StructureSource;
  structure: HierarchyStructure;
  versions: NodeVersions;
  /** Cached parent/child lists kept in process. */
  maxEntries?: number;
  /** Refuse closures/descendant sets larger than this (a cycle or a runaway graph). */
  maxNodes?: number;
}

export class HierarchyResolver {
  readonly structure: HierarchyStructure;
  private readonly source: StructureSource;
  private readonly versions: NodeVersions;
  private readonly parentsCache: LRUCache<string, CachedList>;
  private readonly childrenCache: LRUCache<string, CachedList>;
  private readonly inflight = new Map<string, Promise<readonly string[]>>();
  private readonly maxNodes: number;
  private readonly linkMemo = new Map<string, readonly ChildLink[]>();

  constructor(opts: HierarchyResolverOptions) {
    this.source = opts.source;
    this.structure = opts.structure;
    this.versions = opts.versions;
    this.parentsCache = new LRUCache({ max: opts.maxEntries ?? 50_000 });
    this.childrenCache = new LRUCache({ max: opts.maxEntries ?? 50_000 });
    this.maxNodes = opts.maxNodes ?? 256;
  }

  /** Drop everything cached (after a resync: versions may have been lost). */
  clear(): void {
    this.parentsCache.clear();
    this.childrenCache.clear();
  }

  private cachedRead(
    cache: LRUCache<string, CachedList>,
    tag: string,
    object: string,
    version: number,
    read: () => Promise<string[]>,
  ): Promise<readonly string[]> {
    const hit = cache.get(object);
    if (hit && hit.version === version) return Promise.resolve(hit.list);
    // Concurrent readers of the same node at the same version share one read.
    const flightKey = `${tag}${version}|${object}`;
    const flying = this.inflight.get(flightKey);
    if (flying) return flying;
    const p = read()
      .then((list) => {
        // `version` was read before the tuples, so the list is at least that new:
        // caching it under `version` can only make it look older than it is, never newer.
        const cur = cache.get(object);
        if (!cur || cur.version <= version) cache.set(object, { version, list });
        return list;
      })
      .finally(() => this.inflight.delete(flightKey));
    this.inflight.set(flightKey, p);
    return p;
  }

  /** Stored structural parents of `object`, valid at `version` (its current structure-version). */
  parentsAt(object: string, version: number): Promise<readonly string[]> {
    const relations = this.structure.parentRelations.get(typeOf(object));
    if (!relations) return Promise.resolve([]);
    return this.cachedRead(this.parentsCache, 'p', object, version, () => this.source.parents(object, relations));
  }

  /** Child links of `type` worth following when looking for nodes of type `target`. */
  private linksToward(type: string, target: string | undefined): readonly ChildLink[] {
    const links = this.structure.childLinks.get(type) ?? [];
    if (target === undefined) return links;
    const memo = `${type}>${target}`;
    let hit = this.linkMemo.get(memo);
    if (!hit) {
      // A link is useful if its child type is the target or can have target-typed descendants.
      const reaches = (t: string, seen: Set<string>): boolean =>
        t === target || (this.structure.childLinks.get(t) ?? []).some((l) => !seen.has(l.type) && reaches(l.type, new Set([...seen, l.type])));
      hit = links.filter((l) => reaches(l.type, new Set([type, l.type])));
      this.linkMemo.set(memo, hit);
    }
    return hit;
  }

  // Without versions (Redis unreachable) nothing cached can be trusted, and nothing
  // read can be cached: listings for the admin API and the forward stage read OpenFGA
  // directly. (closure(), which the decision cache uses, rejects instead: an answer
  // without versions is simply not cached.)
  private parentsUncached(object: string): Promise<readonly string[]> {
    const relations = this.structure.parentRelations.get(typeOf(object));
    return relations ? this.source.parents(object, relations) : Promise.resolve([]);
  }

  private childrenUncached(object: string, target: string | undefined): Promise<readonly string[]> {
    const links = this.linksToward(typeOf(object), target);
    return links.length > 0 ? this.source.children(object, links) : Promise.resolve([]);
  }

  private childrenAt(object: string, version: number, target: string | undefined): Promise<readonly string[]> {
    const links = this.linksToward(typeOf(object), target);
    if (links.length === 0) return Promise.resolve([]);
    return this.cachedRead(this.childrenCache, `c${target ?? '*'}|`, `${target ?? '*'}|${object}`, version, () => this.source.children(object, links));
  }

  /**
   * closure() as far as the parent lists cached in process reach, without reading
   * OpenFGA: every node reached, with the structure-version it was read at, and `open`,
   * the indices of nodes whose stored parents are not cached at that version (nothing
   * above an open node was followed). With no open node it equals closure(roots).
   */
  async knownClosure(roots: readonly string[]): Promise<Closure & { open: number[] }> {
    const openObjects = new Set<string>();
    const closure = await this.walkUp(roots, (frontier, vs) =>
      frontier.map((o, i) => {
        const parents = this.cachedParents(o, vs[i]!);
        if (parents === undefined) openObjects.add(o);
        return parents ?? NO_PARENTS;
      }),
    );
    const open: number[] = [];
    closure.objects.forEach((o, i) => openObjects.has(o) && open.push(i));
    return { ...closure, open };
  }

  /** The stored parents of `object` cached at `version`; undefined when not cached at it. */
  private cachedParents(object: string, version: number): readonly string[] | undefined {
    if (!this.structure.parentRelations.has(typeOf(object))) return NO_PARENTS;
    const hit = this.parentsCache.get(object);
    return hit !== undefined && hit.version === version ? hit.list : undefined;
  }

  /**
   * `roots` and every node above them, each with the structure-version it was read at.
   * A node's version is always read before its structural tuples (so a write racing
   * with this call either shows in the tuples or changes the version afterwards).
   */
  async closure(roots: readonly string[]): Promise<Closure> {
    return this.walkUp(roots, (frontier, vs) => Promise.all(frontier.map((o, i) => this.parentsAt(o, vs[i]!))));
  }

  /**
   * Level by level upwards from `roots`: each level's structure-versions are read, then
   * `parentsOf` gives each node's parents at the version just read.
   */
  private async walkUp(
    roots: readonly string[],
    parentsOf: (frontier: readonly string[], versions: readonly number[]) => Promise<ReadonlyArray<readonly string[]>> | ReadonlyArray<readonly string[]>,
  ): Promise<Closure> {
    const objects: string[] = [];
    const versions: number[] = [];
    const seen = new Set<string>();
    let frontier = roots.filter((r) => (seen.has(r) ? false : (seen.add(r), true)));
    while (frontier.length > 0) {
      if (seen.size > this.maxNodes) throw new HierarchyTooLargeError(`more than ${this.maxNodes} nodes above ${roots.join(', ')}`);
      const vs = await this.versions.structureVersions(frontier);
      const parentLists = await parentsOf(frontier, vs);
      const next: string[] = [];
      frontier.forEach((o, i) => {
        objects.push(o);
        versions.push(vs[i]!);
        for (const p of parentLists[i]!) {
          if (!seen.has(p)) {
            seen.add(p);
            next.push(p);
          }
        }
      });
      frontier = next;
    }
    return { objects, versions };
  }

  /**
   * The nodes above `node`, nearest first: same-type parents are followed before
   * others, so a tenant gives tenant's division, its parent divisions, then the
   * organization, then the platform.
   */
  async ancestors(node: string): Promise<string[]> {
    const parentsOf = new Map<string, readonly string[]>();
    let frontier = [node];
    const seen = new Set(frontier);
    while (frontier.length > 0) {
      if (seen.size > this.maxNodes) throw new HierarchyTooLargeError(`more than ${this.maxNodes} nodes above ${node}`);
      const vs = await this.versions.structureVersions(frontier).catch(() => undefined);
      const lists = await Promise.all(frontier.map((o, i) => (vs ? this.parentsAt(o, vs[i]!) : this.parentsUncached(o))));
      const next: string[] = [];
      frontier.forEach((o, i) => {
        parentsOf.set(o, lists[i]!);
        for (const p of lists[i]!) {
          if (seen.has(p)) continue;
          seen.add(p);
          next.push(p);
        }
      });
      frontier = next;
    }
    // Order: depth-first, same-type parents first, then by depth of discovery.
    const out: string[] = [];
    const placed = new Set<string>([node]);
    const visit = (o: string) => {
      const ps = [...(parentsOf.get(o) ?? [])].sort((a, b) => Number(typeOf(b) === typeOf(o)) - Number(typeOf(a) === typeOf(o)));
      const deferred: string[] = [];
      for (const p of ps) {
        if (placed.has(p)) continue;
        if (typeOf(p) === typeOf(o)) {
          placed.add(p);
          out.push(p);
          visit(p);
        } else deferred.push(p);
      }
      for (const p of deferred) {
        if (placed.has(p)) continue;
        placed.add(p);
        out.push(p);
        visit(p);
      }
    };
    visit(node);
    return out;
  }

  /** Every node below `node` (through nested divisions), optionally only of `type`. */
  async descendants(node: string, type?: string): Promise<string[]> {
    const out: string[] = [];
    const seen = new Set<string>([node]);
    let frontier = [node];
    while (frontier.length > 0) {
      const vs = await this.versions.childVersions(frontier).catch(() => undefined);
      const lists = await Promise.all(frontier.map((o, i) => (vs ? this.childrenAt(o, vs[i]!, type) : this.childrenUncached(o, type))));
      const next: string[] = [];
      for (const list of lists) {
        for (const c of list) {
          if (seen.has(c)) continue;
          seen.add(c);
          if (seen.size > this.maxNodes * 1000) throw new HierarchyTooLargeError(`more than ${this.maxNodes * 1000} nodes below ${node}`);
          if (type === undefined || typeOf(c) === type) out.push(c);
          next.push(c);
        }
      }
      frontier = next;
    }
    return out;
  }

  /** The tenants under a division (through sub-divisions) or an organization. */
  tenantsUnder(node: string): Promise<string[]> {
    return this.descendants(node, 'tenant');
  }
}
