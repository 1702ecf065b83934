// Role tuples in atomic batches (≤ 100 changes, idempotent), authorised tuple by
// tuple exactly like the roles API: each write and each delete needs
// `can_assign_<relation>` on the tuple's object (one BatchCheck for the batch).
// So a platform admin changes platform roles only, an organization admin grants in
// bulk inside its organization, and a write naming the caller is refused: nobody
// grants themself a role here. Structural links are refused by the schema's
// allow-list, and tuples may only name nodes that exist.
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { PLATFORM_OBJECT } from '../../fga/bootstrap.js';
import type { Queryable } from '../../db/index.js';
import type { RequestEnv, TupleKey } from '../../authz/types.js';
import { mutation, reader, type AdminRuntime } from '../action.js';
import { Problem } from '../../shared/problem.js';
import { conflict, unprocessable } from '../errors.js';
import { TupleBatchBody, TupleBatchResult, TupleReadQuery, TupleReadResult, type NodeKind, type TupleInput } from '../schemas.js';
import { ancestorPath, getNodes, splitRef } from '../store.js';
import { allFieldsHook, CONFLICT, ERROR_RESPONSES } from '../validation.js';
import type { InvalidParam } from '../../shared/problem.js';

type AdminApp = OpenAPIHono<RequestEnv>;
type Batch = { writes: TupleInput[]; deletes: TupleInput[] };
const TAG = 'Tuples';
const json = <T>(schema: T) => ({ 'application/json': { schema } });
const KEYS = ['writes', 'deletes'] as const;

/** Every tuple of the batch with its field name, writes first: `body.writes[2]`. */
function entries(batch: Batch): { name: string; key: (typeof KEYS)[number]; tuple: TupleInput }[] {
  return KEYS.flatMap((key) => batch[key].map((tuple, i) => ({ name: `body.${key}[${i}]`, key, tuple })));
}

/**
 * The tuples the caller may not change, by field: writes naming the caller, then
 * every tuple on whose object the caller lacks `can_assign_<relation>`.
 */
async function refusals(rt: AdminRuntime, actor: string, batch: Batch): Promise<InvalidParam[]> {
  const all = entries(batch);
  const permissionOf = (t: TupleInput) => `can_assign_${t.relation}`;
  const pairs = [...new Map(all.map(({ tuple: t }) => [`${permissionOf(t)} ${t.object}`, { relation: permissionOf(t), object: t.object }])).entries()];
  const answers = await rt.engine.checkMany(pairs.map(([, p]) => ({ user: actor, ...p })));
  const allowed = new Map(pairs.map(([k], i) => [k, answers[i]]));
  const out: InvalidParam[] = [];
  for (const { name, key, tuple: t } of all) {
    if (key === 'writes' && t.user === actor) out.push({ name, reason: 'a caller cannot grant itself a role' });
    else if (!allowed.get(`${permissionOf(t)} ${t.object}`)) out.push({ name, reason: `the caller lacks ${permissionOf(t)} on ${t.object}` });
  }
  return out;
}

/** Tuples on nodes that do not exist would disagree with PostgreSQL: refused, per field. */
async function unknownObjects(q: Queryable, batch: Batch): Promise<InvalidParam[]> {
  const wanted = new Map<NodeKind, Set<string>>();
  for (const t of [...batch.writes, ...batch.deletes]) {
    const [type, id = ''] = splitRef(t.object);
    if (type === 'platform') continue;
    const set = wanted.get(type as NodeKind) ?? new Set<string>();
    set.add(id);
    wanted.set(type as NodeKind, set);
  }
  const known = new Set<string>();
  for (const [type, ids] of wanted) for (const n of await getNodes(q, type, [...ids])) known.add(`${type}:${n.id}`);
  return entries(batch)
    .filter(({ tuple: t }) => (splitRef(t.object)[0] === 'platform' ? t.object !== PLATFORM_OBJECT : !known.has(t.object)))
    .map(({ name, tuple: t }) => ({ name: `${name}.object`, reason: `${t.object} does not exist` }));
}

/** The same rule as the roles API: an organization is never left without an admin. */
async function lastAdminRemoved(rt: AdminRuntime, change: { writes: TupleKey[]; deletes: TupleKey[] }): Promise<void> {
  const isOrgAdmin = (t: TupleKey) => t.relation === 'admin' && splitRef(t.object)[0] === 'organization';
  for (const object of new Set(change.deletes.filter(isOrgAdmin).map((t) => t.object))) {
    const removed = new Set(change.deletes.filter((t) => isOrgAdmin(t) && t.object === object).map((t) => t.user));
    const added = change.writes.filter((t) => isOrgAdmin(t) && t.object === object).map((t) => t.user);
    const current = (await rt.engine.readAll({ object, relation: 'admin' })).map((t) => t.user);
    if (![...current, ...added].some((u) => !removed.has(u))) {
      throw conflict(`the batch would leave ${object} without an admin; grant another admin first`);
    }
  }
}

/**
 * Where the batch's own entry is visible. Its target is the deepest node every tuple
 * lies beneath, and its scope that node's path, so its readers administer all of the
 * batch; a batch across organizations (or platform and organization) has no such
 * node and is scoped to each top node it touches.
 */
function batchPlace(paths: string[][]): { target: string; scope: string[] } {
  const common: string[] = [];
  for (let i = 0; paths.every((p) => p[i] !== undefined && p[i] === paths[0]![i]); i++) common.push(paths[0]![i]!);
  if (common.length > 0) return { target: common.at(-1)!, scope: common };
  return { target: 'tuples', scope: [...new Set(paths.map((p) => p[0]!))] };
}

/** A refused batch: one `denied` entry naming every refused tuple, then 403 by field. */
function refusedBatch(refused: InvalidParam[]): Problem {
  return new Problem(403, 'forbidden', 'Forbidden', {
    detail: `${refused.length} tuple${refused.length === 1 ? '' : 's'} refused: each needs can_assign_<relation> on its object, and no write may name the caller; nothing was changed`,
    'invalid-params': refused,
  });
}

export function registerTupleRoutes(app: AdminApp, rt: AdminRuntime): void {
  const write = createRoute({
    method: 'post',
    path: '/tuples',
    tags: [TAG],
    summary: 'Write and delete role tuples in one atomic batch (≤ 100 changes; each needs can_assign_<relation> on its object; never for the caller)',
    request: { body: { content: json(TupleBatchBody), required: true } },
    responses: {
      200: { description: 'Applied (idempotent: duplicates and missing deletes are ignored)', content: json(TupleBatchResult) },
      ...ERROR_RESPONSES,
      ...CONFLICT,
    },
  });
  app.openapi(
    write,
    async (c) => {
      const batch = c.req.valid('json');
      const key = (t: TupleInput) => ({ user: t.user, relation: t.relation, object: t.object });
      const change = { writes: batch.writes.map(key), deletes: batch.deletes.map(key) };
      const objects = [...new Set([...change.writes, ...change.deletes].map((t) => t.object))];
      const { target, scope } = batchPlace(await Promise.all(objects.map((o) => ancestorPath(rt.db, o))));
      return mutation(rt, c, { action: 'tuples.write', target, scope: async () => scope }, async (a) => {
        const refused = await refusals(rt, a.actor, batch);
        if (refused.length > 0) await a.refuse(refusedBatch(refused), { refused });
        // The batch's own entry counts the changes; one entry per tuple, scoped to its
        // node, says what changed there, so each node's admins see only their part.
        // Under the objects' node locks, no delete or revocation interleaves between
        // the existence and last-admin reads and the write.
        await a.writeLocked(objects, async (tx) => {
          const unknown = await unknownObjects(tx, batch);
          if (unknown.length > 0) throw unprocessable('tuples may only name existing nodes', unknown);
          await lastAdminRemoved(rt, change);
          const extra = [];
          for (const [action, list] of [['tuple.write', change.writes], ['tuple.delete', change.deletes]] as const) {
            for (const t of list) {
              extra.push({ action, target: t.object, scope: await ancestorPath(tx, t.object), ...(action === 'tuple.write' ? { after: t } : { before: t }) });
            }
          }
          return { result: undefined, change, after: { writes: change.writes.length, deletes: change.deletes.length }, extra };
        });
        return c.json({ written: change.writes, deleted: change.deletes }, 200);
      });
    },
    allFieldsHook(write),
  );

  const read = createRoute({
    method: 'get',
    path: '/tuples',
    tags: [TAG],
    summary:
      'Read tuples by object (can_assign_admin on it), or by object type + user (only tuples on objects where the caller holds can_assign_admin), optionally by relation',
    request: { query: TupleReadQuery },
    responses: { 200: { description: 'One page of OpenFGA Read, narrowed to what the caller administers', content: json(TupleReadResult) }, ...ERROR_RESPONSES },
  });
  app.openapi(
    read,
    async (c) => {
      const q = c.req.valid('query');
      const object = q.object!;
      const typeOnly = object.endsWith(':');
      // Reading an object's tuples is listing its roles: the roles API's rule.
      if (!typeOnly) {
        await reader(rt, c, { action: 'tuples.read', target: object, scope: (db) => ancestorPath(db, object) }).authorize('can_assign_admin', object);
      }
      const filter: Partial<TupleKey> = { object };
      if (q.relation) filter.relation = q.relation;
      if (q.user) filter.user = q.user;
      const page = await rt.engine.readPage(filter, q.limit, q.cursor);
      let items = page.tuples;
      if (typeOnly) {
        // Across a type, only the objects the caller administers; a page may hold fewer than `limit`.
        const objects = [...new Set(items.map((t) => t.object))];
        const answers = await rt.engine.checkMany(objects.map((o) => ({ user: c.get('principal').subject, relation: 'can_assign_admin', object: o })));
        const visible = new Set(objects.filter((_, i) => answers[i]));
        items = items.filter((t) => visible.has(t.object));
      }
      return c.json({ items, nextCursor: page.cursor ?? null }, 200);
    },
    allFieldsHook(read),
  );
}
