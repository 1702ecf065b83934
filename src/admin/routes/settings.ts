// Settings documents and effective values (docs/settings.md), per organization,
// division and tenant:
//   GET    /{nodes}/{id}/settings                 effective values of every key, with provenance
//   GET    /{nodes}/{id}/settings/keys/{key}      one key's
//   GET    /{nodes}/{id}/settings/document        the node's own document
//   PUT    /{nodes}/{id}/settings/document        replace it
//   PUT    /{nodes}/{id}/settings/document/{key}  set one entry
//   DELETE /{nodes}/{id}/settings/document/{key}  drop one entry (inherit again)
//   POST   /{nodes}/{id}/settings/dry-run         what a document would change below, nothing written
//   GET    /settings/registry                     the keys
// Writes lock the node's whole path (organization first), so a lock or an allocation
// checked here still holds when the change commits; every change is audited with the
// entries before and after, and bumps the node's settings-version before the answer.
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { Queryable } from '../../db/index.js';
import type { RequestEnv } from '../../authz/types.js';
import { Problem, type InvalidParam } from '../../shared/problem.js';
import { checkDocument, type SettingEntry, type SettingsDocument, type StoredEntry } from '../../settings/document.js';
import {
  allocationViolations,
  asStored,
  diffDocument,
  dryRun,
  effectiveValue,
  effectiveValues,
  lockAbove,
  type AllocationViolation,
  type ChainLevel,
  type EffectiveValue,
} from '../../settings/effective.js';
import { describeRegistry, type SettingsRegistry } from '../../settings/registry.js';
import { entriesOfKey, organizationTree, readEntries, writeDiff } from '../../settings/store.js';
import { mutation, reader, type AdminAction, type AdminRuntime } from '../action.js';
import { conflict, notFound } from '../errors.js';
import { NodeParams, type NodeKind } from '../schemas.js';
import {
  DocumentBody,
  DocumentSchema,
  DocumentWriteResult,
  DryRunSchema,
  EffectiveList,
  EffectiveSchema,
  KeyParam,
  RegistrySchema,
  SettingEntrySchema,
} from '../settings-schemas.js';
import { ancestorPath, getNode } from '../store.js';
import { allFieldsHook, CONFLICT, ERROR_RESPONSES, NOT_FOUND } from '../validation.js';

type AdminApp = OpenAPIHono<RequestEnv>;
const json = <T>(schema: T) => ({ 'application/json': { schema } });
const PATH: Record<NodeKind, string> = { organization: 'organizations', division: 'divisions', tenant: 'tenants' };
const PARAM: Record<NodeKind, string> = { organization: 'organizationId', division: 'divisionId', tenant: 'tenantId' };
const TAG = 'Settings';

const invalid = (params: InvalidParam[]) =>
  new Problem(422, 'invalid-request', 'Invalid request', {
    detail: `${params.length} invalid field${params.length === 1 ? '' : 's'}; nothing was changed`,
    'invalid-params': params,
  });

/** The node's path, root first, as it is now; 404 when the node does not exist. */
async function pathOfNode(q: Queryable, kind: NodeKind, id: string): Promise<string[]> {
  if (!(await getNode(q, kind, id))) throw notFound(`${kind}:${id}`);
  return ancestorPath(q, `${kind}:${id}`);
}

async function chainOf(q: Queryable, path: readonly string[]): Promise<ChainLevel[]> {
  const entries = await readEntries(q, path);
  return path.map((node) => ({ node, entries: entries.get(node)! }));
}

/** A proposed document checked against everything above and around it: locks, allocations. */
async function checkAgainstTree(
  q: Queryable,
  registry: SettingsRegistry,
  path: readonly string[],
  chain: readonly ChainLevel[],
  proposed: SettingsDocument,
): Promise<{ upserts: Record<string, SettingEntry>; deletes: string[] }> {
  const ref = path[path.length - 1]!;
  const current = chain[chain.length - 1]!.entries;
  const diff = diffDocument(current, proposed);
  for (const key of Object.keys(diff.upserts).sort()) {
    const by = lockAbove(key, chain, ref);
    if (by !== undefined) {
      throw new Problem(409, 'setting-locked', 'Setting locked above', {
        detail: `${key} is locked by ${by} for everything below it; nothing was changed`,
        extensions: { key, lockedBy: by },
      });
    }
  }
  const touched = [...Object.keys(diff.upserts), ...diff.deletes];
  for (const key of touched) {
    const def = registry.get(key);
    if (!def?.allocation) continue;
    const organizationId = path[0]!.slice('organization:'.length);
    const tree = await organizationTree(q, organizationId);
    const explicit = new Map<string, number>();
    for (const [node, e] of await entriesOfKey(q, key, [...tree.keys()])) if (typeof e.set === 'number') explicit.set(node, e.set);
    const next = proposed[key]?.set;
    if (typeof next === 'number') explicit.set(ref, next);
    else explicit.delete(ref);
    throwOnViolation(key, allocationViolations(def, tree, explicit, ref));
  }
  return diff;
}

function throwOnViolation(key: string, violations: readonly AllocationViolation[]): void {
  if (violations.length === 0) return;
  const v = violations[0]!;
  throw new Problem(409, 'allocation-exceeded', 'Allocation exceeded', {
    detail: `${key}: ${v.node} has ${v.allocation}, and ${v.children.map((c) => `${c.node} ${c.allocation}`).join(' + ')} = ${v.allocated} would exceed it; nothing was changed`,
    extensions: { key, node: v.node, allocation: v.allocation, allocated: v.allocated, children: v.children },
  });
}

/**
 * After `moved` was given a new parent (inside the caller's transaction, under the
 * organization's lock, which every settings write of the organization also takes):
 * refuse with 409 allocation-exceeded when the allocations the node carries, its own
 * or its descendants', no longer fit under its new ancestors.
 */
export async function checkAllocationsAfterMove(q: Queryable, registry: SettingsRegistry, organizationId: string, moved: string): Promise<void> {
  for (const def of registry.keys.values()) {
    if (!def.allocation) continue;
    const tree = await organizationTree(q, organizationId);
    const explicit = new Map<string, number>();
    for (const [node, e] of await entriesOfKey(q, def.key, [...tree.keys()])) if (typeof e.set === 'number') explicit.set(node, e.set);
    throwOnViolation(def.key, allocationViolations(def, tree, explicit, moved));
  }
}

/** Provenance as the caller may see it: authors of nodes whose settings it may not read are withheld. */
async function redact(rt: AdminRuntime, subject: string, path: readonly string[], items: EffectiveValue[]) {
  const above = path.slice(0, -1);
  const allowed = above.length === 0 ? [] : await rt.engine.checkMany(above.map((object) => ({ user: subject, relation: 'can_read_settings', object })));
  const readable = new Set([path[path.length - 1]!, ...above.filter((_, i) => allowed[i])]);
  const node = path[path.length - 1]!;
  return items.map((v) => ({
    key: v.key,
    value: v.value,
    source: v.source,
    locked: v.lockedBy === null ? null : { by: v.lockedBy, above: v.lockedBy !== node },
    chain: v.chain.map((s) => (readable.has(s.node) ? s : { ...s, author: null })),
    overridden: v.overridden.map((o) => (readable.has(o.node) ? o : { ...o, author: null })),
  }));
}

export function registerSettingsRoutes(app: AdminApp, rt: AdminRuntime, registry: SettingsRegistry): void {
  const reg = createRoute({
    method: 'get',
    path: '/settings/registry',
    tags: [TAG],
    summary: 'The settings keys: type, default, merge rule, lockable, lowest level (any signed-in caller)',
    responses: { 200: { description: 'Every key', content: json(RegistrySchema) }, ...ERROR_RESPONSES },
  });
  app.openapi(reg, (c) => c.json({ items: describeRegistry(registry) }, 200));

  for (const kind of ['organization', 'division', 'tenant'] as const) registerNodeSettings(app, rt, registry, kind);
}

function registerNodeSettings(app: AdminApp, rt: AdminRuntime, registry: SettingsRegistry, kind: NodeKind): void {
  const base = `/${PATH[kind]}/{${PARAM[kind]}}/settings`;
  const params = NodeParams[kind];
  const idOf = (p: unknown) => (p as Record<string, string>)[PARAM[kind]]!;
  const KeyParams = params.extend({ key: KeyParam });

  // ------------------------------------------------------------ effective values
  const all = createRoute({
    method: 'get',
    path: base,
    tags: [TAG],
    summary: `Effective settings of a ${kind}, each with the chain that produced it and its lock (can_read_settings)`,
    request: { params },
    responses: { 200: { description: 'Every key', content: json(EffectiveList) }, ...ERROR_RESPONSES, ...NOT_FOUND },
  });
  app.openapi(
    all,
    async (c) => {
      const id = idOf(c.req.valid('param'));
      const ref = `${kind}:${id}`;
      const a = reader(rt, c, { action: 'settings.read', target: ref });
      await a.authorize('can_read_settings', ref);
      const path = await pathOfNode(rt.db, kind, id);
      const items = effectiveValues(registry, await chainOf(rt.db, path));
      return c.json({ node: ref, path, items: await redact(rt, a.actor, path, items) }, 200);
    },
    allFieldsHook(all),
  );

  const one = createRoute({
    method: 'get',
    path: `${base}/keys/{key}`,
    tags: [TAG],
    summary: `One key's effective value at a ${kind}, with provenance (can_read_settings)`,
    request: { params: KeyParams },
    responses: { 200: { description: 'The key', content: json(EffectiveSchema) }, ...ERROR_RESPONSES, ...NOT_FOUND },
  });
  app.openapi(
    one,
    async (c) => {
      const p = c.req.valid('param');
      const id = idOf(p);
      const ref = `${kind}:${id}`;
      const a = reader(rt, c, { action: 'settings.read', target: ref });
      await a.authorize('can_read_settings', ref);
      const def = registry.get(p.key);
      if (!def) throw notFound(`setting key ${p.key}`);
      const path = await pathOfNode(rt.db, kind, id);
      const [item] = await redact(rt, a.actor, path, [effectiveValue(def, await chainOf(rt.db, path))]);
      return c.json(item!, 200);
    },
    allFieldsHook(one),
  );

  // ------------------------------------------------------------ the document
  const getDoc = createRoute({
    method: 'get',
    path: `${base}/document`,
    tags: [TAG],
    summary: `A ${kind}'s own settings document (can_read_settings)`,
    request: { params },
    responses: { 200: { description: 'The document', content: json(DocumentSchema) }, ...ERROR_RESPONSES, ...NOT_FOUND },
  });
  app.openapi(
    getDoc,
    async (c) => {
      const id = idOf(c.req.valid('param'));
      const ref = `${kind}:${id}`;
      await reader(rt, c, { action: 'settings.read', target: ref }).authorize('can_read_settings', ref);
      await pathOfNode(rt.db, kind, id);
      return c.json({ node: ref, entries: (await readEntries(rt.db, [ref])).get(ref)! }, 200);
    },
    allFieldsHook(getDoc),
  );

  /** Replaces the node's document by what `next` makes of the current one, under the path's locks. */
  const write = (c: Context<RequestEnv>, id: string, action: string, next: (current: Record<string, StoredEntry>) => SettingsDocument) => {
    const ref = `${kind}:${id}`;
    return mutation(rt, c, { action, target: ref }, async (a) => {
      await a.authorize('can_write_settings', ref);
      const out = await writeDocument(rt, registry, a, kind, id, next);
      return c.json(out, 200);
    });
  };

  const putDoc = createRoute({
    method: 'put',
    path: `${base}/document`,
    tags: [TAG],
    summary: `Replace a ${kind}'s settings document (can_write_settings); keys locked above → 409 setting-locked, allocations beyond the parent's → 409 allocation-exceeded`,
    request: { params, body: { content: json(DocumentBody), required: true } },
    responses: { 200: { description: 'Written (or already so)', content: json(DocumentWriteResult) }, ...ERROR_RESPONSES, ...NOT_FOUND, ...CONFLICT },
  });
  app.openapi(
    putDoc,
    async (c) => {
      const id = idOf(c.req.valid('param'));
      const checked = checkDocument(registry, `${kind}:${id}`, c.req.valid('json').settings);
      if (!checked.ok) throw invalid(checked.invalid);
      return write(c, id, 'settings.write', () => checked.document);
    },
    allFieldsHook(putDoc),
  );

  const putKey = createRoute({
    method: 'put',
    path: `${base}/document/{key}`,
    tags: [TAG],
    summary: `Set one entry of a ${kind}'s settings document (can_write_settings)`,
    request: { params: KeyParams, body: { content: json(SettingEntrySchema), required: true } },
    responses: { 200: { description: 'Written (or already so)', content: json(DocumentWriteResult) }, ...ERROR_RESPONSES, ...NOT_FOUND, ...CONFLICT },
  });
  app.openapi(
    putKey,
    async (c) => {
      const p = c.req.valid('param');
      const id = idOf(p);
      // The raw body: the registry, not the OpenAPI shape, decides what an entry may hold.
      const checked = checkDocument(registry, `${kind}:${id}`, { [p.key]: await c.req.json<unknown>() }, 'body');
      if (!checked.ok) {
        throw invalid(
          checked.invalid.map((i) => ({
            name: i.name === `body.${p.key}` ? (i.reason.startsWith('unknown setting key') ? 'path.key' : 'body') : i.name.replace(`body.${p.key}`, 'body'),
            reason: i.reason,
          })),
        );
      }
      return write(c, id, 'settings.write', (current) => ({ ...docOf(current), [p.key]: checked.document[p.key]! }));
    },
    allFieldsHook(putKey),
  );

  const delKey = createRoute({
    method: 'delete',
    path: `${base}/document/{key}`,
    tags: [TAG],
    summary: `Drop one entry of a ${kind}'s settings document: the key is inherited again (can_write_settings)`,
    request: { params: KeyParams },
    responses: { 200: { description: 'Dropped (or absent)', content: json(DocumentWriteResult) }, ...ERROR_RESPONSES, ...NOT_FOUND, ...CONFLICT },
  });
  app.openapi(
    delKey,
    async (c) => {
      const p = c.req.valid('param');
      if (!registry.get(p.key)) throw invalid([{ name: 'path.key', reason: 'unknown setting key (GET /settings/registry lists them)' }]);
      return write(c, idOf(p), 'settings.write', (current) => {
        const doc = docOf(current);
        delete doc[p.key];
        return doc;
      });
    },
    allFieldsHook(delKey),
  );

  // ------------------------------------------------------------ dry run
  const dry = createRoute({
    method: 'post',
    path: `${base}/dry-run`,
    tags: [TAG],
    summary: `What replacing a ${kind}'s document would change at it and below, and which own values below a new lock would override; nothing is written (can_write_settings)`,
    request: { params, body: { content: json(DocumentBody), required: true } },
    responses: { 200: { description: 'The changes', content: json(DryRunSchema) }, ...ERROR_RESPONSES, ...NOT_FOUND, ...CONFLICT },
  });
  app.openapi(
    dry,
    async (c) => {
      const id = idOf(c.req.valid('param'));
      const ref = `${kind}:${id}`;
      const a = reader(rt, c, { action: 'settings.dry-run', target: ref });
      await a.authorize('can_write_settings', ref);
      const checked = checkDocument(registry, ref, c.req.valid('json').settings);
      if (!checked.ok) throw invalid(checked.invalid);
      const result = await rt.db.transaction(async (tx) => {
        const path = await pathOfNode(tx, kind, id);
        const chain = await chainOf(tx, path);
        await checkAgainstTree(tx, registry, path, chain, checked.document);
        const tree = await organizationTree(tx, path[0]!.slice('organization:'.length));
        const entries = await readEntries(tx, [...tree.keys()]);
        const proposed = asStored(checked.document, entries.get(ref) ?? {}, a.actor, new Date().toISOString());
        return dryRun(registry, tree, entries, ref, proposed);
      });
      return c.json(result, 200);
    },
    allFieldsHook(dry),
  );
}

function docOf(current: Record<string, StoredEntry>): SettingsDocument {
  return Object.fromEntries(Object.entries(current).map(([k, s]) => [k, s.entry]));
}

async function writeDocument(
  rt: AdminRuntime,
  registry: SettingsRegistry,
  a: AdminAction,
  kind: NodeKind,
  id: string,
  next: (current: Record<string, StoredEntry>) => SettingsDocument,
) {
  const ref = `${kind}:${id}`;
  // The path as seen before the locks; read again under them. Every write of the
  // organization takes the organization's lock, so allocations and locks are decided
  // one writer at a time.
  const seen = await pathOfNode(rt.db, kind, id);
  return a.writeLocked(seen, async (tx) => {
    const path = await pathOfNode(tx, kind, id);
    if (path.join(',') !== seen.join(',')) throw conflict(`${ref} moved while this write waited; nothing was changed, retry it`);
    const chain = await chainOf(tx, path);
    const current = chain[chain.length - 1]!.entries;
    const proposed = next(current);
    const diff = await checkAgainstTree(tx, registry, path, chain, proposed);
    const changed = [...Object.keys(diff.upserts), ...diff.deletes].sort();
    if (changed.length === 0) return { unchanged: true, result: { node: ref, changed, entries: current } };
    await writeDiff(tx, ref, diff, a.actor);
    const after = (await readEntries(tx, [ref])).get(ref)!;
    const pick = (doc: Record<string, StoredEntry>) => Object.fromEntries(changed.filter((k) => k in doc).map((k) => [k, doc[k]!.entry]));
    return {
      result: { node: ref, changed, entries: after },
      scope: path,
      before: pick(current),
      after: pick(after),
      detail: { keys: changed },
      settingsChanged: [ref],
    };
  });
}
