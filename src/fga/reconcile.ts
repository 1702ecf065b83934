// The database and OpenFGA must tell the same hierarchy. The admin tables are the
// source of the structure: every node's structural links (organization#platform,
// division#organization, division#parent, tenant#division) follow from its row. Roles
// (admin, member) live only in OpenFGA and cannot be derived from the database; what
// can be said of them is that none may sit on a node the database does not have.
//
// Pure: database rows and OpenFGA tuples in, differences and the repair out. Reading
// both sides and writing the repair is ./agreement.ts.
import type { FgaTuple } from './request-client.js';

/** The platform object every organization hangs from (PLATFORM_OBJECT in ./bootstrap.ts). */
const PLATFORM = 'platform:root';

export interface HierarchyRows {
  organizations: ReadonlyArray<{ id: string }>;
  divisions: ReadonlyArray<{ id: string; organizationId: string; parentDivisionId: string | null }>;
  tenants: ReadonlyArray<{ id: string; divisionId: string }>;
}

export type NodeType = 'organization' | 'division' | 'tenant';
const NODE_TYPES: readonly NodeType[] = ['organization', 'division', 'tenant'];

/** Relations tiergate writes itself, per node type, from the database's parent columns. */
export const STRUCTURAL_RELATIONS: Readonly<Record<NodeType, readonly string[]>> = {
  organization: ['platform'],
  division: ['organization', 'parent'],
  tenant: ['division'],
};

export type Difference =
  /** The database says the link exists; OpenFGA lacks it. Repair: write it. */
  | { kind: 'missing_link'; tuple: FgaTuple }
  /** A structural tuple on a node the database has, but not the link its row gives. Repair: delete it. */
  | { kind: 'wrong_link'; tuple: FgaTuple }
  /** A structural tuple on a node the database does not have. Repair: delete it. */
  | { kind: 'orphan_link'; tuple: FgaTuple }
  /** A role tuple (or any other) on a node the database does not have. Repair: delete it. */
  | { kind: 'orphan_grant'; tuple: FgaTuple };

export interface Comparison {
  differences: Difference[];
  /** Nodes the database has. */
  nodes: number;
  /** Tuples OpenFGA holds on organization, division and tenant objects. */
  nodeTuples: number;
}

export const tupleKey = (t: FgaTuple): string => `${t.object}#${t.relation}@${t.user}`;

function nodeTypeOf(object: string): NodeType | undefined {
  const type = object.slice(0, object.indexOf(':'));
  return (NODE_TYPES as readonly string[]).includes(type) ? (type as NodeType) : undefined;
}

/** The structural tuples the database's rows call for, one per link. */
export function expectedLinks(rows: HierarchyRows): FgaTuple[] {
  const links: FgaTuple[] = [];
  for (const o of rows.organizations) links.push({ object: `organization:${o.id}`, relation: 'platform', user: PLATFORM });
  for (const d of rows.divisions) {
    links.push({ object: `division:${d.id}`, relation: 'organization', user: `organization:${d.organizationId}` });
    if (d.parentDivisionId !== null) links.push({ object: `division:${d.id}`, relation: 'parent', user: `division:${d.parentDivisionId}` });
  }
  for (const t of rows.tenants) links.push({ object: `tenant:${t.id}`, relation: 'division', user: `division:${t.divisionId}` });
  return links;
}

/**
 * Every way OpenFGA's tuples on organization, division and tenant objects disagree with
 * the database. Tuples on other types (the platform's admins, resources) are not
 * compared. Order: missing links, then wrong links, orphan links, orphan grants, each
 * sorted by tuple, so the same disagreement always reads the same.
 */
export function compareHierarchy(rows: HierarchyRows, tuples: Iterable<FgaTuple>): Comparison {
  const nodes = new Set<string>([
    ...rows.organizations.map((o) => `organization:${o.id}`),
    ...rows.divisions.map((d) => `division:${d.id}`),
    ...rows.tenants.map((t) => `tenant:${t.id}`),
  ]);
  const expected = new Map(expectedLinks(rows).map((t) => [tupleKey(t), t]));
  const seen = new Set<string>();
  const wrong: Difference[] = [];
  const orphanLinks: Difference[] = [];
  const orphanGrants: Difference[] = [];
  let nodeTuples = 0;
  for (const t of tuples) {
    const type = nodeTypeOf(t.object);
    if (type === undefined) continue;
    nodeTuples += 1;
    const key = tupleKey(t);
    if (expected.has(key)) {
      seen.add(key);
      continue;
    }
    const structural = STRUCTURAL_RELATIONS[type].includes(t.relation);
    const tuple = { user: t.user, relation: t.relation, object: t.object };
    if (!nodes.has(t.object)) (structural ? orphanLinks : orphanGrants).push({ kind: structural ? 'orphan_link' : 'orphan_grant', tuple });
    else if (structural) wrong.push({ kind: 'wrong_link', tuple });
    // A role on a node the database has is the roles' own business: not derivable, not compared.
  }
  const missing: Difference[] = [];
  for (const [key, tuple] of expected) if (!seen.has(key)) missing.push({ kind: 'missing_link', tuple });
  const byTuple = (a: Difference, b: Difference) => (tupleKey(a.tuple) < tupleKey(b.tuple) ? -1 : tupleKey(a.tuple) > tupleKey(b.tuple) ? 1 : 0);
  return {
    differences: [...missing.sort(byTuple), ...wrong.sort(byTuple), ...orphanLinks.sort(byTuple), ...orphanGrants.sort(byTuple)],
    nodes: nodes.size,
    nodeTuples,
  };
}

export interface RepairBatch {
  writes: FgaTuple[];
  deletes: FgaTuple[];
}

/** OpenFGA's limit on the tuples of one Write (writes and deletes together). */
export const MAX_BATCH = 100;

/**
 * The repair as atomic batches of at most `max` tuples (writes and deletes together).
 * One object's changes stay in one batch, so a node moved back to its database parent
 * is never seen with two parents or none.
 */
export function repairBatches(differences: readonly Difference[], max = MAX_BATCH): RepairBatch[] {
  const byObject = new Map<string, RepairBatch>();
  for (const d of differences) {
    let group = byObject.get(d.tuple.object);
    if (!group) byObject.set(d.tuple.object, (group = { writes: [], deletes: [] }));
    (d.kind === 'missing_link' ? group.writes : group.deletes).push(d.tuple);
  }
  const batches: RepairBatch[] = [];
  let current: RepairBatch = { writes: [], deletes: [] };
  const size = (b: RepairBatch) => b.writes.length + b.deletes.length;
  for (const group of byObject.values()) {
    if (size(current) > 0 && size(current) + size(group) > max) {
      batches.push(current);
      current = { writes: [], deletes: [] };
    }
    // An object never has more than a handful of tuples of its own, but a single
    // object with more than `max` (grants piled on a deleted node) is split.
    for (const [list, target] of [
      [group.deletes, 'deletes'],
      [group.writes, 'writes'],
    ] as const) {
      for (const t of list) {
        if (size(current) >= max) {
          batches.push(current);
          current = { writes: [], deletes: [] };
        }
        current[target].push(t);
      }
    }
  }
  if (size(current) > 0) batches.push(current);
  return batches;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const show = (t: FgaTuple) => `${t.object}#${t.relation}@${t.user}`;

/** One line per difference, saying what `--apply` does about it. */
export function describeDifference(d: Difference): string {
  switch (d.kind) {
    case 'missing_link':
      return `+ write  ${show(d.tuple)}  (the database has this link; OpenFGA lacks it)`;
    case 'wrong_link':
      return `- delete ${show(d.tuple)}  (the database links ${d.tuple.object} otherwise)`;
    case 'orphan_link':
      return `- delete ${show(d.tuple)}  (the database has no ${d.tuple.object})`;
    case 'orphan_grant':
      return `- delete ${show(d.tuple)}  (a grant on ${d.tuple.object}, which the database does not have)`;
  }
}

export interface DisagreementContext {
  storeName: string;
  /** The store did not exist and was created empty at this start. */
  createdStore?: boolean;
}

/**
 * The one sentence tiergate refuses to start with; undefined when both sides agree.
 * When OpenFGA holds nothing for a database that has nodes, it says that roles are
 * lost, since no repair can bring them back.
 */
export function disagreementSentence(c: Comparison, ctx: DisagreementContext): string | undefined {
  if (c.differences.length === 0) return undefined;
  const count = (kind: Difference['kind']) => c.differences.filter((d) => d.kind === kind);
  const parts: string[] = [];
  const missing = count('missing_link');
  const wrong = count('wrong_link');
  const orphanLinks = count('orphan_link');
  const grants = count('orphan_grant');
  const first = (ds: Difference[]) => ` (first: ${show(ds[0]!.tuple)})`;
  if (missing.length > 0) parts.push(`lacks ${plural(missing.length, 'structural link')} the database has${first(missing)}`);
  if (wrong.length > 0) parts.push(`holds ${plural(wrong.length, 'structural link')} the database does not${first(wrong)}`);
  if (orphanLinks.length > 0) parts.push(`holds ${plural(orphanLinks.length, 'structural link')} of nodes the database does not have${first(orphanLinks)}`);
  if (grants.length > 0) parts.push(`holds ${plural(grants.length, 'grant')} on nodes the database does not have${first(grants)}`);
  const said = parts.length === 1 ? parts[0]! : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]!}`;
  const store = ctx.createdStore ? `OpenFGA store ${ctx.storeName} did not exist (it was created empty now) and` : `OpenFGA store ${ctx.storeName}`;
  const lost =
    c.nodeTuples === 0 && c.nodes > 0
      ? `; OpenFGA holds nothing for the database's ${plural(c.nodes, 'node')}, so its role grants are lost: reconcile restores the structure, not the roles (they are not in the database), which must be granted again`
      : '';
  return `${store} ${said}${lost}: run \`npm run reconcile\` to see the repair, then \`npm run reconcile -- --apply\``;
}
