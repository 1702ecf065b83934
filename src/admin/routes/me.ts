// GET /me/{organizations|divisions|tenants}: every node the caller may see
// (`can_view`), complete and paged. OpenFGA's ListObjects over thousands of nodes
// outlasts any request deadline (and silently stops at its max-results), so the
// listing walks the stored hierarchy instead: the caller's direct grants (an
// OpenFGA Read by user) give the roots, the admin database expands their subtrees
// and pages them by id, and only the page's candidates are confirmed by the model
// (one BatchCheck of at most a page), so a page never shows what the model denies.
//
// Each listing answers with a Server-Timing header: the time spent finding the roots, reading
// candidates from the database, confirming them with OpenFGA, and counting them.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { setMetric, timing } from 'hono/timing';
import type { RequestEnv } from '../../authz/types.js';
import type { AdminRuntime } from '../action.js';
import { MeList, MeListQuery, MePermissions, MePermissionsQuery, MeResult, type NodeKind, type NodeView } from '../schemas.js';
import { candidatePage, countCandidates, divisionParents, type VisibleRoots } from '../store.js';
import { ListingProof, type Hop } from '../listing-proof.js';
import type { ModelTypes } from '../../fga/hierarchy.js';
import { PLATFORM_OBJECT } from '../../fga/bootstrap.js';
import { allFieldsHook, ERROR_RESPONSES } from '../validation.js';

type AdminApp = OpenAPIHono<RequestEnv>;
const TAG = 'Me';
const json = <T>(schema: T) => ({ 'application/json': { schema } });
const PLURAL: Record<NodeKind, string> = { organization: 'organizations', division: 'divisions', tenant: 'tenants' };

/** Candidates confirmed per BatchCheck (the SDK sends them as two calls of 50, in parallel). */
const CONFIRM_BATCH = 100;

/** The nodes where the subject holds a role directly: where its `can_view` can reach from. */
export async function visibleRoots(rt: AdminRuntime, subject: string, kind: NodeKind): Promise<VisibleRoots> {
  const types = kind === 'organization' ? ['platform', 'organization'] : kind === 'division' ? ['organization', 'division'] : ['organization', 'division', 'tenant'];
  const read = await Promise.all(types.map(async (t) => [t, await rt.engine.readAll({ user: subject, object: `${t}:` })] as const));
  const byType = new Map(read);
  const idsWith = (type: string, relations: string[]) =>
    (byType.get(type) ?? []).filter((t) => relations.includes(t.relation)).map((t) => t.object.slice(t.object.indexOf(':') + 1));
  return {
    allOrganizations: idsWith('platform', ['admin']).length > 0,
    organizations: idsWith('organization', ['admin']),
    divisions: idsWith('division', ['admin']),
    tenants: idsWith('tenant', ['admin', 'member']),
  };
}

/**
 * One page of the visible nodes after `cursor`: candidates from the database in id
 * order, each confirmed by the model; a refused candidate is skipped and the page
 * filled from the next ones. `nextCursor` is the last candidate examined.
 */
export async function visiblePage(
  rt: AdminRuntime,
  subject: string,
  kind: NodeKind,
  roots: VisibleRoots,
  cursor: string | undefined,
  limit: number,
  spent: PageTimes = newPageTimes(),
): Promise<{ items: NodeView[]; nextCursor: string | null }> {
  const items: NodeView[] = [];
  let after = cursor;
  for (;;) {
    // At most CONFIRM_BATCH candidates per round: a page of 1,000 is confirmed in rounds whose
    // calls each fit OPENFGA_TIMEOUT_MS on a busy OpenFGA, rather than 20 parallel calls at once.
    const want = Math.min(limit - items.length, CONFIRM_BATCH);
    // One more than needed tells whether anything follows the page.
    const t0 = performance.now();
    const rows = await candidatePage(rt.db, kind, roots, after, want + 1);
    const batch = rows.slice(0, want);
    const t1 = performance.now();
    const allowed = await confirm(rt, subject, kind, roots, batch, spent);
    spent.candidatesMs += t1 - t0;
    spent.confirmMs += performance.now() - t1;
    spent.rounds++;
    items.push(...batch.filter((_, i) => allowed[i]));
    if (rows.length <= want) return { items, nextCursor: null };
    after = batch[batch.length - 1]!.id;
    if (items.length === limit) return { items, nextCursor: after };
  }
}

/** Where a page's time went (the listing's Server-Timing header). */
export interface PageTimes {
  candidatesMs: number;
  confirmMs: number;
  /** Candidate reads and confirmations, one each per round. */
  rounds: number;
  /** One-lookup checks of roles and links asked (./listing-proof.ts). */
  facts: number;
  /** Candidates confirmed by their facts. */
  placed: number;
  /** Candidates that needed a full can_view Check. */
  asked: number;
}

const newPageTimes = (): PageTimes => ({ candidatesMs: 0, confirmMs: 0, rounds: 0, facts: 0, placed: 0, asked: 0 });

const proofs = new WeakMap<ModelTypes, ListingProof>();

/** Deduplicated one-lookup checks, each asked once for the whole round. */
class Facts {
  readonly list: Array<{ user: string; relation: string; object: string }> = [];
  private readonly index = new Map<string, number>();
  add(user: string, relation: string, object: string): number {
    const key = `${object}#${relation}@${user}`;
    let i = this.index.get(key);
    if (i === undefined) {
      i = this.list.push({ user, relation, object }) - 1;
      this.index.set(key, i);
    }
    return i;
  }
}

/**
 * Whether the model lets `subject` view each candidate: the full Check's answer, found
 * for most candidates from the stored facts that place them under one of the subject's
 * roles (./listing-proof.ts), and by a full can_view Check for the rest.
 */
async function confirm(rt: AdminRuntime, subject: string, kind: NodeKind, roots: VisibleRoots, batch: NodeView[], spent: PageTimes): Promise<boolean[]> {
  if (batch.length === 0) return [];
  const model = await rt.engine.model();
  let proof = proofs.get(model);
  if (!proof) proofs.set(model, (proof = new ListingProof(model)));
  const orgRoots = new Set(roots.organizations);
  const divisionRoots = new Set(roots.divisions);
  // Where a candidate is reached only through a division role, the database's division paths.
  const starts = divisionRoots.size === 0 ? [] : batch.filter((n) => !orgRoots.has(n.organizationId)).map((n) => (kind === 'division' ? n.id : idOf(n.parent)));
  const parents = kind === 'organization' ? new Map<string, string | null>() : await divisionParents(rt.db, [...new Set(starts)]);

  const facts = new Facts();
  const plans = batch.map((node): number[] | undefined => {
    const hops: Hop[] = [];
    const links: Array<[user: string, relation: string, object: string]> = [];
    // The plan's facts, asked only where the model makes them prove the candidate.
    const root = (type: string, id: string) =>
      proof.proves(kind, 'can_view', hops, 'admin') ? [...links.map((l) => facts.add(...l)), facts.add(subject, 'admin', `${type}:${id}`)] : undefined;
    const link = (childType: string, child: string, tupleset: string, parentType: string, parent: string) => {
      hops.push({ childType, tupleset, parentType });
      links.push([`${parentType}:${parent}`, tupleset, `${childType}:${child}`]);
    };
    if (kind === 'organization') {
      if (orgRoots.has(node.id)) return root('organization', node.id);
      if (!roots.allOrganizations) return undefined;
      link('organization', node.id, 'platform', 'platform', PLATFORM_OBJECT.slice('platform:'.length));
      return root('platform', PLATFORM_OBJECT.slice('platform:'.length));
    }
    let division = node.id;
    if (kind === 'tenant') {
      division = idOf(node.parent);
      link('tenant', node.id, 'division', 'division', division);
    } else if (divisionRoots.has(node.id)) {
      return root('division', node.id);
    }
    if (orgRoots.has(node.organizationId)) {
      link('division', division, 'organization', 'organization', node.organizationId);
      return root('organization', node.organizationId);
    }
    for (let depth = 0; depth <= MAX_DIVISION_DEPTH; depth++) {
      if (kind === 'tenant' && depth === 0 && divisionRoots.has(division)) return root('division', division);
      const parent = parents.get(division);
      if (!parent) return undefined;
      link('division', division, 'parent', 'division', parent);
      if (divisionRoots.has(parent)) return root('division', parent);
      division = parent;
    }
    return undefined;
  });

  const known = facts.list.length > 0 ? await rt.engine.checkMany(facts.list, { errorAsFalse: true }) : [];
  const allowed = plans.map((plan) => plan !== undefined && plan.every((i) => known[i] === true));
  const open = batch.map((_, i) => i).filter((i) => !allowed[i]);
  if (open.length > 0) {
    const asked = await rt.engine.checkMany(open.map((i) => ({ user: subject, relation: 'can_view', object: `${kind}:${batch[i]!.id}` })));
    open.forEach((i, k) => (allowed[i] = asked[k]!));
  }
  spent.facts += facts.list.length;
  spent.placed += batch.length - open.length;
  spent.asked += open.length;
  return allowed;
}

/** `division:d1` -> `d1`. */
const idOf = (ref: string | null): string => (ref ? ref.slice(ref.indexOf(':') + 1) : '');

/** Deeper than the database's own recursion bound (store.ts) is never walked. */
const MAX_DIVISION_DEPTH = 64;

export function registerMeRoutes(app: AdminApp, rt: AdminRuntime): void {
  const me = createRoute({
    method: 'get',
    path: '/me',
    tags: [TAG],
    summary: 'Who the caller is, as OpenFGA knows the subject',
    request: { query: z.strictObject({}) },
    responses: { 200: { description: 'The caller', content: json(MeResult) }, ...ERROR_RESPONSES },
  });
  app.openapi(me, (c) => c.json({ subject: c.get('principal').subject }, 200), allFieldsHook(me));

  const permissions = createRoute({
    method: 'get',
    path: '/me/permissions',
    tags: [TAG],
    summary: "The caller's own node permissions (can_*) on one node, as the model answers them: what the console offers",
    request: { query: MePermissionsQuery },
    responses: { 200: { description: 'Each can_* relation of the node type, allowed or not', content: json(MePermissions) }, ...ERROR_RESPONSES },
  });
  app.openapi(
    permissions,
    async (c) => {
      const { object } = c.req.valid('query');
      const type = object.slice(0, object.indexOf(':'));
      // Only the caller's own permissions: nothing about other users, and the answer for a
      // node that does not exist is the same as for one the caller has no role on.
      const relations = [...((await rt.engine.relationsByType()).get(type) ?? [])].filter((r) => r.startsWith('can_')).sort();
      const subject = c.get('principal').subject;
      const allowed = await rt.engine.checkMany(relations.map((relation) => ({ user: subject, relation, object })));
      return c.json({ object, permissions: Object.fromEntries(relations.map((r, i) => [r, allowed[i] === true])) }, 200);
    },
    allFieldsHook(permissions),
  );

  for (const kind of ['organization', 'division', 'tenant'] as const) {
    const route = createRoute({
      method: 'get',
      path: `/me/${PLURAL[kind]}`,
      tags: [TAG],
      summary: `Every ${kind} the caller may see (can_view), sorted by id, paged`,
      request: { query: MeListQuery },
      responses: { 200: { description: 'One page of the complete list', content: json(MeList) }, ...ERROR_RESPONSES },
    });
    app.use(`/me/${PLURAL[kind]}`, timing({ total: true }));
    app.openapi(
      route,
      async (c) => {
        const { limit, cursor } = c.req.valid('query');
        const subject = c.get('principal').subject;
        const t0 = performance.now();
        const roots = await visibleRoots(rt, subject, kind);
        const t1 = performance.now();
        const spent = newPageTimes();
        let countMs = 0;
        const [page, total] = await Promise.all([
          visiblePage(rt, subject, kind, roots, cursor, limit, spent),
          countCandidates(rt.db, kind, roots).finally(() => (countMs = performance.now() - t1)),
        ]);
        setMetric(c, 'roots', t1 - t0, 'direct grants (OpenFGA Read)');
        setMetric(c, 'candidates', spent.candidatesMs, `database pages: ${spent.rounds}`);
        setMetric(c, 'confirm', spent.confirmMs, `rounds: ${spent.rounds} / placed by stored facts: ${spent.placed} (${spent.facts} one-lookup checks) / full can_view checks: ${spent.asked}`);
        setMetric(c, 'count', countMs, 'candidates counted alongside');
        return c.json({ ...page, source: 'hierarchy-walk' as const, total }, 200);
      },
      allFieldsHook(route),
    );
  }
}
