// Tuples (authorised per tuple like the roles API), what-can-I-see lists, and check/explain, against a
// real OpenFGA store.
import { OpenAPIHono } from '@hono/zod-openapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_BASE_PATH, createAdminApp, denyReason } from '../../src/admin/app.js';
import type { RequestEnv } from '../../src/authz/types.js';
import { auditRows, createAdminFixture, expectStatus, seedTree, type AdminFixture } from '../support/admin-fixture.js';

let fx: AdminFixture;

beforeAll(async () => {
  fx = await createAdminFixture();
  await seedTree(fx);
});
afterAll(async () => {
  await fx?.close();
});

const t = (user: string, relation: string, object: string) => ({ user, relation, object });

describe('tuples', () => {
  it('writes and deletes one atomic batch, tells the caches once, and audits it per node', async () => {
    const writes = [t('user:nia', 'member', 'tenant:emea-sales'), t('user:nia', 'admin', 'tenant:apac-sales'), t('user:ola', 'admin', 'division:emea-north')];
    const deletes = [t('user:uma', 'member', 'tenant:emea-sales')];
    const auditBefore = (await auditRows(fx.db)).length;
    const res = await fx.call('olivia', 'POST', '/tuples', { writes, deletes });
    expectStatus(res, 200);
    expect(res.body).toEqual({ written: writes, deleted: deletes });
    expect(fx.invalidator.take()).toEqual([{ writes, deletes }]);
    expect((await fx.store.client.read({ user: 'user:nia', object: 'tenant:' })).tuples).toHaveLength(2);
    expect((await fx.store.client.read(deletes[0])).tuples).toEqual([]);
    const audit = (await auditRows(fx.db)).slice(auditBefore);
    // The batch's entry sits at the deepest node holding all of it; each tuple's at its node.
    expect(audit.map((e) => `${e.action} ${e.target} [${e.scope.join(',')}]`)).toEqual([
      'tuples.write organization:acme [organization:acme]',
      'tuple.write tenant:emea-sales [organization:acme,division:emea,tenant:emea-sales]',
      'tuple.write tenant:apac-sales [organization:acme,division:apac,tenant:apac-sales]',
      'tuple.write division:emea-north [organization:acme,division:emea,division:emea-north]',
      'tuple.delete tenant:emea-sales [organization:acme,division:emea,tenant:emea-sales]',
    ]);
    // Idempotent: the same batch again is accepted (duplicates and missing deletes ignored).
    expectStatus(await fx.call('olivia', 'POST', '/tuples', { writes, deletes }), 200);
    // Restore uma for the tests below.
    expectStatus(await fx.call('olivia', 'POST', '/tuples', { writes: deletes }), 200);
    fx.invalidator.take();
  });

  it('refuses structural links, roles where they do not exist, unknown nodes, and batches over 100', async () => {
    const res = await fx.call('olivia', 'POST', '/tuples', {
      writes: [
        t('division:apac', 'parent', 'division:emea'),
        t('user:x', 'member', 'division:emea'),
        t('user:x', 'admin', 'tenant:nowhere'),
        t('organization:acme', 'admin', 'tenant:emea-sales'),
      ],
    });
    expectStatus(res, 422);
    expect(res.body['invalid-params'].map((p: { name: string }) => p.name).sort()).toEqual([
      'body.writes[0].relation',
      'body.writes[0].user',
      'body.writes[1].relation',
      'body.writes[3].user',
    ]);
    // A node nobody administers is refused before its existence is looked at: a 403 says nothing about it.
    const nowhere = await fx.call('olivia', 'POST', '/tuples', { writes: [t('user:x', 'admin', 'tenant:nowhere')] });
    expectStatus(nowhere, 403);
    expect(nowhere.body['invalid-params']).toEqual([{ name: 'body.writes[0]', reason: 'the caller lacks can_assign_admin on tenant:nowhere' }]);
    // A grant left in OpenFGA on a node PostgreSQL does not have: the caller may assign there, the node does not exist.
    const ghost = t('user:olivia', 'admin', 'tenant:ghost');
    await fx.store.client.write({ writes: [ghost] });
    const unknown = await fx.call('olivia', 'POST', '/tuples', { writes: [t('user:x', 'admin', 'tenant:ghost')] });
    await fx.store.client.write({ deletes: [ghost] });
    expectStatus(unknown, 422);
    expect(unknown.body['invalid-params']).toEqual([{ name: 'body.writes[0].object', reason: 'tenant:ghost does not exist' }]);

    const big = Array.from({ length: 101 }, (_, i) => t(`user:bulk-${i}`, 'member', 'tenant:emea-sales'));
    const tooBig = await fx.call('olivia', 'POST', '/tuples', { writes: big.slice(0, 60), deletes: big.slice(60) });
    expectStatus(tooBig, 422);
    expect(tooBig.body['invalid-params']).toEqual([{ name: 'body', reason: expect.stringContaining('at most 100 writes + deletes per request') }]);
    expect((await fx.store.client.read({ user: 'user:bulk-0', relation: 'member', object: 'tenant:emea-sales' })).tuples).toEqual([]);
    expect(fx.invalidator.take()).toEqual([]);
  });

  it('needs can_assign_<relation> on every object of the batch; the refusal is audited where it was aimed', async () => {
    const before = (await auditRows(fx.db)).length;
    const res = await fx.call('tara', 'POST', '/tuples', { writes: [t('user:x', 'member', 'tenant:emea-sales'), t('user:x', 'admin', 'tenant:emea-support')] });
    expectStatus(res, 403);
    expect(res.body['invalid-params']).toEqual([{ name: 'body.writes[1]', reason: 'the caller lacks can_assign_admin on tenant:emea-support' }]);
    expect((await fx.store.client.read({ user: 'user:x', object: 'tenant:' })).tuples).toEqual([]);
    expect(fx.invalidator.take()).toEqual([]);
    expect((await auditRows(fx.db)).slice(before)).toEqual([
      expect.objectContaining({ actor: 'user:tara', action: 'tuples.write', target: 'division:emea', outcome: 'denied', scope: ['organization:acme', 'division:emea'] }),
    ]);
    expectStatus(await fx.call('pat', 'POST', '/tuples', { writes: [t('user:x', 'admin', 'tenant:emea-sales')] }), 403);
    expectStatus(await fx.call('pat', 'GET', '/tuples?object=tenant:emea-sales'), 403);
  });

  it('reads with filters and pages', async () => {
    const byObject = await fx.call('olivia', 'GET', '/tuples?object=tenant:emea-sales&relation=member');
    expectStatus(byObject, 200);
    expect(byObject.body.items.map((x: { user: string }) => x.user).sort()).toEqual(['user:nia', 'user:uma']);
    const byUser = await fx.call('olivia', 'GET', '/tuples?object=tenant:&user=user:nia');
    expect(byUser.body.items.map((x: { object: string }) => x.object).sort()).toEqual(['tenant:apac-sales', 'tenant:emea-sales']);
    const page1 = await fx.call('olivia', 'GET', '/tuples?object=tenant:&user=user:nia&limit=1');
    expect(page1.body.items).toHaveLength(1);
    const page2 = await fx.call('olivia', 'GET', `/tuples?object=tenant:&user=user:nia&limit=1&cursor=${encodeURIComponent(page1.body.nextCursor)}`);
    expect(page2.body.items).toHaveLength(1);
    expect(page2.body.items[0].object).not.toBe(page1.body.items[0].object);
    // Across a type, only what the caller administers: tara sees nia's grant in her tenant only.
    expect((await fx.call('tara', 'GET', '/tuples?object=tenant:&user=user:nia')).body.items).toEqual([t('user:nia', 'member', 'tenant:emea-sales')]);
    const bad = await fx.call('olivia', 'GET', '/tuples?object=tenant:');
    expectStatus(bad, 422);
    expect(bad.body['invalid-params']).toEqual([{ name: 'query.user', reason: 'required when object is only a type' }]);
  });
});

describe('what can I see', () => {
  const ids = (res: { body: { items: { id: string }[] } }) => res.body.items.map((n) => n.id);

  it('lists visible nodes per role with their names and parents', async () => {
    const orgs = await fx.call('olivia', 'GET', '/me/organizations');
    expectStatus(orgs, 200);
    expect(orgs.body).toMatchObject({ source: 'hierarchy-walk', total: 1, nextCursor: null, items: [{ id: 'acme', name: 'Acme Group' }] });
    expect(ids(await fx.call('dana', 'GET', '/me/divisions'))).toEqual(['emea', 'emea-north', 'emea-south']);
    const tenants = await fx.call('dana', 'GET', '/me/tenants');
    expect(ids(tenants)).toEqual(['emea-sales', 'emea-support', 'north-sales']);
    expect(tenants.body.items[2]).toMatchObject({ name: 'North Sales', parent: 'division:emea-north', organizationId: 'acme' });
    expect(ids(await fx.call('uma', 'GET', '/me/tenants'))).toEqual(['emea-sales']);
    expect(ids(await fx.call('uma', 'GET', '/me/divisions'))).toEqual([]);
    expect(ids(await fx.call('pat', 'GET', '/me/organizations'))).toEqual(['acme', 'globex']);
    expect(ids(await fx.call('pat', 'GET', '/me/tenants'))).toEqual([]);
    expect((await fx.call('sam', 'GET', '/me')).body).toEqual({ subject: 'user:sam' });
  });

  it('pages through the complete list', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await fx.call('olivia', 'GET', `/me/tenants?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expectStatus(res, 200);
      expect(res.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...ids(res));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(['apac-sales', 'emea-sales', 'emea-support', 'north-sales']);
  });

  it('lists from the hierarchy even when ListObjects would not answer in time', async () => {
    // The real store, except that ListObjects times out (as it does over thousands of tenants on a slow OpenFGA).
    const timingOut = new Proxy(fx.store.client, {
      get(target, prop, receiver) {
        if (prop === 'listObjects') return () => Promise.reject(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' }));
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const admin = createAdminApp({ fga: timingOut, db: fx.db, invalidator: fx.invalidator, authenticate: fx.auth.authenticate });
    const app = new OpenAPIHono<RequestEnv>().route(ADMIN_BASE_PATH, admin);
    const get = async (sub: string, path: string) => {
      const res = await app.request(`${ADMIN_BASE_PATH}${path}`, { headers: { authorization: `Bearer ${await fx.auth.token(sub)}` } });
      expect(res.status).toBe(200);
      return (await res.json()) as { items: { id: string }[]; source: string; total: number };
    };
    const tenants = await get('olivia', '/me/tenants?limit=2');
    expect(tenants).toMatchObject({ source: 'hierarchy-walk', total: 4 });
    expect(tenants.items.map((n) => n.id)).toEqual(['apac-sales', 'emea-sales']);
    expect(await get('uma', '/me/tenants')).toMatchObject({ source: 'hierarchy-walk', total: 1 });
    expect((await get('gina', '/me/tenants')).items.map((n) => n.id)).toEqual(['gx-sales']);
  });
});

describe('check and explain', () => {
  it('gives the inherited path for an organization admin acting inside a tenant', async () => {
    const res = await fx.call('olivia', 'POST', '/check', { user: 'olivia', permission: 'can_write', object: 'agent:emea-sales/2000' });
    expectStatus(res, 200);
    expect(res.body).toEqual({
      allowed: true,
      user: 'user:olivia',
      permission: 'can_write',
      object: 'agent:emea-sales/2000',
      reasons: [
        {
          role: 'admin',
          on: 'organization:acme',
          via: 'inherited by agent:emea-sales/2000',
          path: ['organization:acme', 'division:emea', 'tenant:emea-sales', 'agent:emea-sales/2000'],
        },
      ],
      // The edge policies at the agent's tenant, none set here: defaults.
      edgePolicies: [
        { policy: 'security.ip_allowlist', value: [], inForce: false, source: 'default', lockedBy: null },
        { policy: 'security.require_mfa', value: false, inForce: false, source: 'default', lockedBy: null },
        { policy: 'security.session_max_age', value: '12h', inForce: true, source: 'default', lockedBy: null },
      ],
    });
    const onTenant = await fx.call('olivia', 'POST', '/check', { user: 'user:olivia', permission: 'can_manage_resources', object: 'tenant:north-sales' });
    expect(onTenant.body.reasons).toEqual([
      { role: 'admin', on: 'organization:acme', via: 'inherited by tenant:north-sales', path: ['organization:acme', 'division:emea', 'division:emea-north', 'tenant:north-sales'] },
    ]);
  });

  it('names only the grants that suffice, direct ones included', async () => {
    const tara = await fx.call('dana', 'POST', '/check', { user: 'tara', permission: 'can_read_configuration', object: 'tenant:emea-sales' });
    expect(tara.body).toMatchObject({ allowed: true, reasons: [{ role: 'admin', on: 'tenant:emea-sales', via: 'direct grant', path: ['tenant:emea-sales'] }] });
    const umaReads = await fx.call('dana', 'POST', '/check', { user: 'uma', permission: 'can_read', object: 'queue:emea-sales/1000' });
    expect(umaReads.body).toMatchObject({ allowed: true, reasons: [{ role: 'member', on: 'tenant:emea-sales', via: 'inherited by queue:emea-sales/1000' }] });
    // uma holds member there, but member does not give can_write: no reason, and the missing permission.
    const umaWrites = await fx.call('dana', 'POST', '/check', { user: 'uma', permission: 'can_write', object: 'queue:emea-sales/1000' });
    expect(umaWrites.body).toEqual({
      allowed: false,
      user: 'user:uma',
      permission: 'can_write',
      object: 'queue:emea-sales/1000',
      reasons: [],
      missing: 'can_write',
      edgePolicies: expect.any(Array),
    });
    const umaReports = await fx.call('dana', 'POST', '/check', { user: 'uma', permission: 'can_read', object: 'report:emea-sales/monthly' });
    expect(umaReports.body).toMatchObject({ allowed: false, reasons: [], missing: 'can_read' });
  });

  it('is answered only for callers who administer the object, and validates the permission against the model', async () => {
    expectStatus(await fx.call('tara', 'POST', '/check', { user: 'uma', permission: 'can_view', object: 'tenant:emea-support' }), 403);
    expectStatus(await fx.call('pat', 'POST', '/check', { user: 'olivia', permission: 'can_view', object: 'tenant:emea-sales' }), 403);
    expectStatus(await fx.call('uma', 'POST', '/check', { user: 'uma', permission: 'can_view', object: 'tenant:emea-sales' }), 403);
    const bad = await fx.call('olivia', 'POST', '/check', { user: 'uma', permission: 'can_fly', object: 'tenant:emea-sales' });
    expectStatus(bad, 422);
    expect(bad.body['invalid-params'][0]).toMatchObject({ name: 'body.permission', reason: expect.stringContaining('can_manage_resources') });
    const shape = await fx.call('olivia', 'POST', '/check', { user: 'a b', permission: 'Can-View', object: 'agent:no-slash', why: 1 });
    expectStatus(shape, 422);
    expect(shape.body['invalid-params'].map((p: { name: string }) => p.name).sort()).toEqual(['body.object', 'body.permission', 'body.user', 'body.why']);
  });

  it('offers the gateway a deny reason naming only the missing permission', () => {
    expect(denyReason('can_write')).toBe('missing permission can_write');
  });
});
