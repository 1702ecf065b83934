// Raw relationship tuples for platform admins (`platform:root#can_manage_tuples`):
// atomic batches of up to 100 changes, idempotent, restricted to role relations
// on nodes that exist. Structural links are refused by the schema's allow-list.
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { PLATFORM_OBJECT } from '../../fga/bootstrap.js';
import type { GatewayEnv, TupleKey } from '../../gateway/types.js';
import { mutation, reader, type AdminRuntime } from '../action.js';
import { unprocessable } from '../errors.js';
import { TupleBatchBody, TupleBatchResult, TupleReadQuery, TupleReadResult, type NodeKind, type TupleInput } from '../schemas.js';
import { ancestorPath, getNodes, splitRef } from '../store.js';
import { allFieldsHook, ERROR_RESPONSES } from '../validation.js';
import type { InvalidParam } from '../../shared/problem.js';

type AdminApp = OpenAPIHono<GatewayEnv>;
const TAG = 'Tuples';
const json = <T>(schema: T) => ({ 'application/json': { schema } });

/** Tuples on nodes that do not exist would disagree with PostgreSQL: refused, per field. */
async function unknownObjects(rt: AdminRuntime, batch: { writes: TupleInput[]; deletes: TupleInput[] }): Promise<InvalidParam[]> {
  const wanted = new Map<NodeKind, Set<string>>();
  for (const t of [...batch.writes, ...batch.deletes]) {
    const [type, id = ''] = splitRef(t.object);
    if (type === 'platform') continue;
    const set = wanted.get(type as NodeKind) ?? new Set<string>();
    set.add(id);
    wanted.set(type as NodeKind, set);
  }
  const known = new Set<string>();
  for (const [type, ids] of wanted) for (const n of await getNodes(rt.db, type, [...ids])) known.add(`${type}:${n.id}`);
  const out: InvalidParam[] = [];
  for (const key of ['writes', 'deletes'] as const) {
    batch[key].forEach((t, i) => {
      const [type, id] = splitRef(t.object);
      if (type === 'platform' ? id !== 'root' : !known.has(t.object)) out.push({ name: `body.${key}[${i}].object`, reason: `${t.object} does not exist` });
    });
  }
  return out;
}

export function registerTupleRoutes(app: AdminApp, rt: AdminRuntime): void {
  const write = createRoute({
    method: 'post',
    path: '/tuples',
    tags: [TAG],
    summary: 'Write and delete role tuples in one atomic batch (≤ 100 changes; can_manage_tuples)',
    request: { body: { content: json(TupleBatchBody), required: true } },
    responses: { 200: { description: 'Applied (idempotent: duplicates and missing deletes are ignored)', content: json(TupleBatchResult) }, ...ERROR_RESPONSES },
  });
  app.openapi(
    write,
    async (c) => {
      const batch = c.req.valid('json');
      return mutation(rt, c, { action: 'tuples.write', target: PLATFORM_OBJECT, scope: async () => [PLATFORM_OBJECT] }, async (a) => {
        await a.authorize('can_manage_tuples', PLATFORM_OBJECT);
        const unknown = await unknownObjects(rt, batch);
        if (unknown.length > 0) throw unprocessable('tuples may only name existing nodes', unknown);
        const key = (t: TupleInput) => ({ user: t.user, relation: t.relation, object: t.object });
        const change = { writes: batch.writes.map(key), deletes: batch.deletes.map(key) };
        // One platform-level entry for the batch, and one per tuple scoped to its node,
        // so each node's admins see what changed there and nothing of other organizations.
        await a.writeThrough(change, async (tx) => {
          const extra = [];
          for (const [action, list] of [['tuple.write', change.writes], ['tuple.delete', change.deletes]] as const) {
            for (const t of list) {
              extra.push({ action, target: t.object, scope: await ancestorPath(tx, t.object), ...(action === 'tuple.write' ? { after: t } : { before: t }) });
            }
          }
          return { result: undefined, after: change, extra };
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
    summary: 'Read tuples by object (or object type + user), optionally relation (can_manage_tuples)',
    request: { query: TupleReadQuery },
    responses: { 200: { description: 'One page of OpenFGA Read', content: json(TupleReadResult) }, ...ERROR_RESPONSES },
  });
  app.openapi(
    read,
    async (c) => {
      const q = c.req.valid('query');
      await reader(rt, c, { action: 'tuples.read', target: PLATFORM_OBJECT, scope: async () => [PLATFORM_OBJECT] }).authorize(
        'can_manage_tuples',
        PLATFORM_OBJECT,
      );
      const filter: Partial<TupleKey> = { object: q.object! };
      if (q.relation) filter.relation = q.relation;
      if (q.user) filter.user = q.user;
      const page = await rt.engine.readPage(filter, q.limit, q.cursor);
      return c.json({ items: page.tuples, nextCursor: page.cursor ?? null }, 200);
    },
    allFieldsHook(read),
  );
}
