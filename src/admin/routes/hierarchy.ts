// Organizations, divisions (nested) and tenants: create, read, rename, delete, move.
// Names live in PostgreSQL, links in OpenFGA; every change goes through
// AdminAction.writeThrough so the two never disagree.
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { PLATFORM_OBJECT } from '../../fga/bootstrap.js';
import type { Queryable } from '../../db/index.js';
import type { RequestEnv, TupleKey } from '../../authz/types.js';
import { mutation, reader, type AdminAction, type AdminRuntime } from '../action.js';
import { Problem } from '../../shared/problem.js';
import { conflict, idRetired, notFound, unprocessable } from '../errors.js';
import {
  CreatedNodes,
  CreateNodeBody,
  CreateOrganizationBody,
  CreateTenantsBody,
  DeleteResult,
  DivisionParams,
  MAX_TUPLES_PER_WRITE,
  MoveBody,
  MutationResult,
  NodeParams,
  NodeSchema,
  OrganizationParams,
  RenameBody,
  type NodeKind,
  type NodeView,
} from '../schemas.js';
import {
  ancestorPath,
  childCounts,
  claimNodeId,
  deleteNode,
  divisionChain,
  getNode,
  getNodes,
  insertDivision,
  insertOrganization,
  insertTenant,
  insertTenants,
  PLATFORM_LOCK,
  renameNode,
  retireNodeId,
  setDivisionParent,
  setTenantDivision,
  splitRef,
} from '../store.js';
import { allFieldsHook, CONFLICT, ERROR_RESPONSES, NOT_FOUND } from '../validation.js';
import { deleteDocument } from '../../settings/store.js';
import type { SettingsRegistry } from '../../settings/registry.js';
import { checkAllocationsAfterMove } from './settings.js';

type AdminApp = OpenAPIHono<RequestEnv>;

const json = <T>(schema: T) => ({ 'application/json': { schema } });
const PATH: Record<NodeKind, string> = { organization: 'organizations', division: 'divisions', tenant: 'tenants' };
const PARAM: Record<NodeKind, string> = { organization: 'organizationId', division: 'divisionId', tenant: 'tenantId' };
const TAG = 'Hierarchy';

/**
 * Takes a new node's id in the registry, under the create's locks. An id is
 * taken while its node lives and retired for good once it was deleted, so a new
 * node never inherits an old one's grants, data, audit or cached decisions.
 */
async function claimId(tx: Queryable, kind: NodeKind, id: string, organizationId: string): Promise<void> {
  const claim = await claimNodeId(tx, kind, id, organizationId);
  if (claim === 'taken') throw conflict(`${kind} id ${id} is taken (ids are unique per kind across all organizations)`);
  if (claim === 'retired') throw idRetired(kind, id);
}

async function mustGet(q: Queryable, kind: NodeKind, id: string): Promise<NodeView> {
  const node = await getNode(q, kind, id);
  if (!node) throw notFound(`${kind}:${id}`);
  return node;
}

export function registerHierarchyRoutes(app: AdminApp, rt: AdminRuntime, registry: SettingsRegistry): void {
  // ------------------------------------------------------------ create
  const createOrganization = createRoute({
    method: 'post',
    path: '/organizations',
    tags: [TAG],
    summary: 'Create an organization and name its first admins (platform admins only)',
    request: { body: { content: json(CreateOrganizationBody), required: true } },
    responses: { 201: { description: 'Created', content: json(NodeSchema) }, ...ERROR_RESPONSES, ...CONFLICT },
  });
  app.openapi(
    createOrganization,
    async (c) => {
      const body = c.req.valid('json');
      const ref = `organization:${body.id}`;
      return mutation(rt, c, { action: 'organization.create', target: ref, scope: async () => [PLATFORM_OBJECT, ref] }, async (a) => {
        await a.authorize('can_create_organization', PLATFORM_OBJECT);
        const admins = [...new Set(body.admins ?? [])];
        // The platform names an organization's first admins; it never takes a role
        // inside one itself, so the creator may not be among them.
        const self = (body.admins ?? []).indexOf(a.actor);
        if (self >= 0) {
          throw new Problem(403, 'forbidden', 'Forbidden', {
            detail: 'an organization is created for others: the caller may not name itself as its admin',
            'invalid-params': [{ name: `body.admins[${self}]`, reason: 'must not be the caller' }],
          });
        }
        const writes: TupleKey[] = [
          { user: PLATFORM_OBJECT, relation: 'platform', object: ref },
          ...admins.map((user) => ({ user, relation: 'admin', object: ref })),
        ];
        const node = await a.writeLocked([PLATFORM_LOCK, ref], async (tx) => {
          await claimId(tx, 'organization', body.id, body.id);
          await insertOrganization(tx, body.id, body.name);
          return { change: { writes, deletes: [] }, result: await mustGet(tx, 'organization', body.id), after: { name: body.name, admins } };
        });
        return c.json(node, 201);
      });
    },
    allFieldsHook(createOrganization),
  );

  const createTopDivision = createRoute({
    method: 'post',
    path: '/organizations/{organizationId}/divisions',
    tags: [TAG],
    summary: 'Create a top-level division (can_create_division on the organization)',
    request: { params: OrganizationParams, body: { content: json(CreateNodeBody), required: true } },
    responses: { 201: { description: 'Created', content: json(NodeSchema) }, ...ERROR_RESPONSES, ...NOT_FOUND, ...CONFLICT },
  });
  app.openapi(
    createTopDivision,
    async (c) => {
      const { organizationId } = c.req.valid('param');
      const body = c.req.valid('json');
      const parentRef = `organization:${organizationId}`;
      const ref = `division:${body.id}`;
      return mutation(rt, c, { action: 'division.create', target: ref, scope: async () => [parentRef, ref] }, async (a) => {
        await a.authorize('can_create_division', parentRef);
        const writes = [{ user: parentRef, relation: 'organization', object: ref }];
        const node = await a.writeLocked([parentRef, ref], async (tx) => {
          await mustGet(tx, 'organization', organizationId);
          await claimId(tx, 'division', body.id, organizationId);
          await insertDivision(tx, body.id, body.name, organizationId, null);
          return { change: { writes, deletes: [] }, result: await mustGet(tx, 'division', body.id), after: { name: body.name, parent: parentRef } };
        });
        return c.json(node, 201);
      });
    },
    allFieldsHook(createTopDivision),
  );

  const createSubDivision = createRoute({
    method: 'post',
    path: '/divisions/{divisionId}/divisions',
    tags: [TAG],
    summary: 'Create a sub-division (can_create_division on the parent division)',
    request: { params: DivisionParams, body: { content: json(CreateNodeBody), required: true } },
    responses: { 201: { description: 'Created', content: json(NodeSchema) }, ...ERROR_RESPONSES, ...NOT_FOUND, ...CONFLICT },
  });
  app.openapi(
    createSubDivision,
    async (c) => {
      const { divisionId } = c.req.valid('param');
      const body = c.req.valid('json');
      const parentRef = `division:${divisionId}`;
      const ref = `division:${body.id}`;
      const scope = async (q: Queryable) => [...(await ancestorPath(q, parentRef)), ref];
      return mutation(rt, c, { action: 'division.create', target: ref, scope }, async (a) => {
        await a.authorize('can_create_division', parentRef);
        const node = await a.writeLocked([parentRef, ref], async (tx) => {
          const parent = await mustGet(tx, 'division', divisionId);
          await claimId(tx, 'division', body.id, parent.organizationId);
          await insertDivision(tx, body.id, body.name, parent.organizationId, divisionId);
          // Every division carries its organization link as well as its parent link (see model.fga).
          const writes = [
            { user: `organization:${parent.organizationId}`, relation: 'organization', object: ref },
            { user: parentRef, relation: 'parent', object: ref },
          ];
          return { change: { writes, deletes: [] }, result: await mustGet(tx, 'division', body.id), after: { name: body.name, parent: parentRef } };
        });
        return c.json(node, 201);
      });
    },
    allFieldsHook(createSubDivision),
  );

  const createTenant = createRoute({
    method: 'post',
    path: '/divisions/{divisionId}/tenants',
    tags: [TAG],
    summary: 'Create a tenant (can_create_tenant on the division)',
    request: { params: DivisionParams, body: { content: json(CreateNodeBody), required: true } },
    responses: { 201: { description: 'Created', content: json(NodeSchema) }, ...ERROR_RESPONSES, ...NOT_FOUND, ...CONFLICT },
  });
  app.openapi(
    createTenant,
    async (c) => {
      const { divisionId } = c.req.valid('param');
      const body = c.req.valid('json');
      const parentRef = `division:${divisionId}`;
      const ref = `tenant:${body.id}`;
      const scope = async (q: Queryable) => [...(await ancestorPath(q, parentRef)), ref];
      return mutation(rt, c, { action: 'tenant.create', target: ref, scope }, async (a) => {
        await a.authorize('can_create_tenant', parentRef);
        const writes = [{ user: parentRef, relation: 'division', object: ref }];
        const node = await a.writeLocked([parentRef, ref], async (tx) => {
          const parent = await mustGet(tx, 'division', divisionId);
          await claimId(tx, 'tenant', body.id, parent.organizationId);
          await insertTenant(tx, body.id, body.name, divisionId);
          return { change: { writes, deletes: [] }, result: await mustGet(tx, 'tenant', body.id), after: { name: body.name, parent: parentRef } };
        });
        return c.json(node, 201);
      });
    },
    allFieldsHook(createTenant),
  );

  // Operators provisioning many tenants at once: up to MAX_TUPLES_PER_WRITE tenants of one
  // division per call, each exactly as POST …/tenants makes it (id claimed, row, structural
  // tuple, one tenant.create audit entry), in one transaction and ONE atomic OpenFGA write:
  // all of the batch or none of it.
  const createTenants = createRoute({
    method: 'post',
    path: '/divisions/{divisionId}/tenants/batch',
    tags: [TAG],
    summary: `Create up to ${MAX_TUPLES_PER_WRITE} tenants of one division at once, all or none (can_create_tenant on the division)`,
    request: { params: DivisionParams, body: { content: json(CreateTenantsBody), required: true } },
    responses: { 201: { description: 'Created, in the order given', content: json(CreatedNodes) }, ...ERROR_RESPONSES, ...NOT_FOUND, ...CONFLICT },
  });
  app.openapi(
    createTenants,
    async (c) => {
      const { divisionId } = c.req.valid('param');
      const { tenants } = c.req.valid('json');
      const parentRef = `division:${divisionId}`;
      const refs = tenants.map((t) => `tenant:${t.id}`);
      const scope = async (q: Queryable) => [...(await ancestorPath(q, parentRef)), ...refs];
      return mutation(rt, c, { action: 'tenant.create-batch', target: parentRef, scope }, async (a) => {
        await a.authorize('can_create_tenant', parentRef);
        const writes = refs.map((ref) => ({ user: parentRef, relation: 'division', object: ref }));
        const items = await a.writeLocked([parentRef, ...refs], async (tx) => {
          const parent = await mustGet(tx, 'division', divisionId);
          const path = await ancestorPath(tx, parentRef);
          for (const t of tenants) await claimId(tx, 'tenant', t.id, parent.organizationId);
          await insertTenants(tx, divisionId, tenants);
          const byId = new Map((await getNodes(tx, 'tenant', tenants.map((t) => t.id))).map((n) => [n.id, n]));
          return {
            change: { writes, deletes: [] },
            result: tenants.map((t) => byId.get(t.id)!),
            scope: [...path, ...refs],
            detail: { tenants: refs },
            // Each tenant's own entry, the one POST …/tenants writes.
            extra: tenants.map((t) => ({
              action: 'tenant.create',
              target: `tenant:${t.id}`,
              scope: [...path, `tenant:${t.id}`],
              after: { name: t.name, parent: parentRef },
            })),
          };
        });
        return c.json({ items }, 201);
      });
    },
    allFieldsHook(createTenants),
  );

  // ------------------------------------------------------------ read, rename, delete
  for (const kind of ['organization', 'division', 'tenant'] as const) registerNodeRoutes(app, rt, kind);

  // ------------------------------------------------------------ move
  for (const kind of ['division', 'tenant'] as const) registerMoveRoute(app, rt, registry, kind);
}

function registerNodeRoutes(app: AdminApp, rt: AdminRuntime, kind: NodeKind): void {
  const path = `/${PATH[kind]}/{${PARAM[kind]}}`;
  const params = NodeParams[kind];
  const idOf = (p: unknown) => (p as Record<string, string>)[PARAM[kind]]!;

  const get = createRoute({
    method: 'get',
    path,
    tags: [TAG],
    summary: `Read a ${kind} (can_view)`,
    request: { params },
    responses: { 200: { description: 'The node', content: json(NodeSchema) }, ...ERROR_RESPONSES, ...NOT_FOUND },
  });
  app.openapi(
    get,
    async (c) => {
      const id = idOf(c.req.valid('param'));
      const ref = `${kind}:${id}`;
      // Permission first, existence second: an unknown id answers 403 like a hidden one.
      await reader(rt, c, { action: `${kind}.read`, target: ref }).authorize('can_view', ref);
      return c.json(await mustGet(rt.db, kind, id), 200);
    },
    allFieldsHook(get),
  );

  const rename = createRoute({
    method: 'patch',
    path,
    tags: [TAG],
    summary: `Rename a ${kind} (can_rename)`,
    request: { params, body: { content: json(RenameBody), required: true } },
    responses: { 200: { description: 'Renamed (or already so named)', content: json(MutationResult) }, ...ERROR_RESPONSES, ...NOT_FOUND },
  });
  app.openapi(
    rename,
    async (c) => {
      const id = idOf(c.req.valid('param'));
      const { name } = c.req.valid('json');
      const ref = `${kind}:${id}`;
      return mutation(rt, c, { action: `${kind}.rename`, target: ref }, async (a) => {
        await a.authorize('can_rename', ref);
        const out = await a.writeLocked([ref], async (tx) => {
          const before = await mustGet(tx, kind, id);
          if (before.name === name) return { unchanged: true, result: { changed: false, node: before } };
          await renameNode(tx, kind, id, name);
          return { result: { changed: true, node: await mustGet(tx, kind, id) }, before: { name: before.name }, after: { name } };
        });
        return c.json(out, 200);
      });
    },
    allFieldsHook(rename),
  );

  const del = createRoute({
    method: 'delete',
    path,
    tags: [TAG],
    summary: `Delete a ${kind} without children (can_delete)`,
    request: { params },
    responses: { 200: { description: 'Deleted', content: json(DeleteResult) }, ...ERROR_RESPONSES, ...NOT_FOUND, ...CONFLICT },
  });
  app.openapi(
    del,
    async (c) => {
      const id = idOf(c.req.valid('param'));
      const ref = `${kind}:${id}`;
      // Organizations are deleted by the platform: their entry sits at platform level too.
      const scope = kind === 'organization' ? async () => [PLATFORM_OBJECT, ref] : undefined;
      return mutation(rt, c, { action: `${kind}.delete`, target: ref, ...(scope ? { scope } : {}) }, async (a) => {
        await a.authorize('can_delete', ref);
        await deleteWithTuples(rt, a, kind, id);
        return c.json({ deleted: ref }, 200);
      });
    },
    allFieldsHook(del),
  );
}

async function deleteWithTuples(rt: AdminRuntime, a: AdminAction, kind: NodeKind, id: string): Promise<void> {
  const ref = `${kind}:${id}`;
  // The parent is locked too; what it is was seen before the lock, and everything
  // that decides the delete is read again under it.
  const seen = await mustGet(rt.db, kind, id);
  await a.writeLocked([ref, ...(seen.parent ? [seen.parent] : [])], async (tx) => {
    const node = await mustGet(tx, kind, id);
    const children = await childCounts(tx, kind, id);
    if (children.divisions + children.tenants > 0) {
      throw conflict(`${ref} still has ${children.divisions} division(s) and ${children.tenants} tenant(s); delete or move them first`);
    }
    // Every tuple on the node goes with it (structural links and role grants),
    // read under the lock, so no grant can land between this read and the delete.
    const tuples = await rt.engine.readAll({ object: ref });
    const structural = tuples.filter((t) => t.relation !== 'admin' && t.relation !== 'member');
    let grants = tuples.filter((t) => t.relation === 'admin' || t.relation === 'member');
    // More grants than one atomic write holds: revoke the surplus first. Revoking
    // is fail-safe — if a later step fails the node stays, with fewer grants.
    while (structural.length + grants.length > MAX_TUPLES_PER_WRITE) {
      const chunk = grants.slice(0, MAX_TUPLES_PER_WRITE);
      grants = grants.slice(MAX_TUPLES_PER_WRITE);
      const revoke = { writes: [], deletes: chunk };
      const announced = await rt.invalidator.announce(revoke);
      await rt.engine.write(revoke);
      await rt.invalidator.tuplesChanged(revoke, announced);
    }
    const scope = kind === 'organization' ? [PLATFORM_OBJECT, ref] : await ancestorPath(tx, ref);
    await deleteNode(tx, kind, id);
    await deleteDocument(tx, ref);
    // The id is retired for good: no later node can take it and inherit anything of this one.
    await retireNodeId(tx, kind, id, node.organizationId);
    return {
      change: { writes: [], deletes: [...structural, ...grants] },
      result: undefined,
      scope,
      before: { name: node.name, parent: node.parent, grants: tuples.filter((t) => !structural.includes(t)) },
    };
  });
}

/** A move saw the node under one parent and found it under another once locked. */
class MovedMeanwhile extends Problem {
  constructor(ref: string) {
    super(409, 'conflict', 'Conflict', { detail: `${ref} was moved by a concurrent request; retry` });
  }
}

function registerMoveRoute(app: AdminApp, rt: AdminRuntime, registry: SettingsRegistry, kind: 'division' | 'tenant'): void {
  const route = createRoute({
    method: 'post',
    path: `/${PATH[kind]}/{${PARAM[kind]}}/move`,
    tags: [TAG],
    summary: `Move a ${kind} within its organization (can_move on it, and can_create_${kind} on the new parent); allocations that no longer fit → 409 allocation-exceeded`,
    request: { params: NodeParams[kind], body: { content: json(MoveBody), required: true } },
    responses: {
      200: { description: 'Moved (or already there)', content: json(MutationResult) },
      ...ERROR_RESPONSES,
      ...NOT_FOUND,
      ...CONFLICT,
    },
  });
  app.openapi(
    route,
    async (c) => {
      const id = (c.req.valid('param') as Record<string, string>)[PARAM[kind]]!;
      const { parent } = c.req.valid('json');
      const ref = `${kind}:${id}`;
      return mutation(rt, c, { action: `${kind}.move`, target: ref }, async (a) => {
        const [parentType, parentId = ''] = splitRef(parent);
        if (kind === 'tenant' && parentType !== 'division') {
          throw unprocessable('a tenant lives under a division', [{ name: 'body.parent', reason: 'must be division:<id> for a tenant' }]);
        }
        // Admin of the old parent (can_move = manager) and of the new one.
        await a.authorize('can_move', ref);
        await a.authorize(kind === 'division' ? 'can_create_division' : 'can_create_tenant', parent);
        // Locks: the node, its old and new parent, and its organization, so two
        // moves in one organization never build a cycle together. The old parent
        // is seen before the lock; a move in between is retried with the new one.
        for (let attempt = 1; ; attempt += 1) {
          const seen = await mustGet(rt.db, kind, id);
          const locks = [ref, seen.parent!, parent, `organization:${seen.organizationId}`];
          try {
            const out = await a.writeLocked(locks, async (tx) => {
              const node = await mustGet(tx, kind, id);
              if (node.parent !== seen.parent) throw new MovedMeanwhile(ref);
              if (node.parent === parent) return { unchanged: true, result: { changed: false, node } };
              const target = await mustGet(tx, parentType as NodeKind, parentId);
              if (target.organizationId !== node.organizationId) {
                throw unprocessable(`moves stay within organization:${node.organizationId}; ${parent} belongs to organization:${target.organizationId}`, [
                  { name: 'body.parent', reason: 'is in another organization' },
                ]);
              }
              if (kind === 'division' && parentType === 'division') {
                const chain = await divisionChain(tx, parentId);
                if (chain.includes(id)) {
                  throw unprocessable(`${parent} is ${ref} itself or lies beneath it; a division cannot move under its own subtree`, [
                    { name: 'body.parent', reason: 'would create a cycle' },
                  ]);
                }
              }
              const oldScope = await ancestorPath(tx, ref);
              if (kind === 'division') await setDivisionParent(tx, id, parentType === 'division' ? parentId : null);
              else await setTenantDivision(tx, id, parentId);
              const newScope = await ancestorPath(tx, ref);
              // Allocations (quota.agents) the subtree carries must fit under its new ancestors.
              await checkAllocationsAfterMove(tx, registry, node.organizationId, ref);
              // Admins of both the old and the new place see the move.
              return {
                change: moveChange(kind, ref, node.parent!, parent),
                result: { changed: true, node: await mustGet(tx, kind, id) },
                scope: [...oldScope, ...newScope],
                before: { parent: node.parent },
                after: { parent },
              };
            });
            return c.json(out, 200);
          } catch (err) {
            if (err instanceof MovedMeanwhile && attempt < 3) continue;
            throw err;
          }
        }
      });
    },
    allFieldsHook(route),
  );
}

/** The structural tuples a move deletes and writes — sent as ONE atomic OpenFGA write. */
function moveChange(kind: 'division' | 'tenant', ref: string, from: string, to: string): { writes: TupleKey[]; deletes: TupleKey[] } {
  if (kind === 'tenant') {
    return { writes: [{ user: to, relation: 'division', object: ref }], deletes: [{ user: from, relation: 'division', object: ref }] };
  }
  // A division's organization link never changes (moves stay inside it); only `parent` does.
  const link = (p: string) => (p.startsWith('division:') ? [{ user: p, relation: 'parent', object: ref }] : []);
  return { writes: link(to), deletes: link(from) };
}
