// The hierarchy endpoints against a real OpenFGA store: what lands in PostgreSQL
// and OpenFGA, what the decision caches are told, what the audit trail records,
// and how bad input and refusals are answered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRows, createAdminFixture, expectStatus, seedTree, type AdminFixture } from '../support/admin-fixture.js';

let fx: AdminFixture;

async function tuplesOn(object: string): Promise<string[]> {
  const res = await fx.store.client.read({ object });
  return res.tuples.map((t) => `${t.key.object}#${t.key.relation}@${t.key.user}`).sort();
}

beforeAll(async () => {
  fx = await createAdminFixture();
  await seedTree(fx);
});
afterAll(async () => {
  await fx?.close();
});

describe('create', () => {
  it('writes the organization, its platform link and first admins, tells the caches, and audits it', async () => {
    const res = await fx.call('pat', 'POST', '/organizations', { id: 'initech', name: 'Initech', admins: ['bill', 'user:peter'] });
    expectStatus(res, 201);
    expect(res.body).toMatchObject({ type: 'organization', id: 'initech', name: 'Initech', organizationId: 'initech', parent: null });
    expect(await tuplesOn('organization:initech')).toEqual([
      'organization:initech#admin@user:bill',
      'organization:initech#admin@user:peter',
      'organization:initech#platform@platform:root',
    ]);
    // Awaited before the answer: the recording invalidator only records on completion.
    expect(fx.invalidator.take()).toEqual([
      {
        writes: [
          { user: 'platform:root', relation: 'platform', object: 'organization:initech' },
          { user: 'user:bill', relation: 'admin', object: 'organization:initech' },
          { user: 'user:peter', relation: 'admin', object: 'organization:initech' },
        ],
        deletes: [],
      },
    ]);
    const entry = (await auditRows(fx.db)).at(-1)!;
    expect(entry).toMatchObject({ actor: 'user:pat', action: 'organization.create', target: 'organization:initech', outcome: 'success' });
    expect(entry.scope).toEqual(['platform:root', 'organization:initech']);
    expect(entry.request_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses organization creation to anyone but a platform admin, and records the denial', async () => {
    const res = await fx.call('olivia', 'POST', '/organizations', { id: 'rogue', name: 'Rogue', admins: ['olivia'] });
    expectStatus(res, 403);
    expect(res.contentType).toBe('application/problem+json');
    expect(res.body).toMatchObject({ status: 403, type: 'https://tiergate.dev/problems/forbidden', detail: 'the caller lacks can_create_organization on platform:root' });
    expect(await tuplesOn('organization:rogue')).toEqual([]);
    expect((await fx.db.query('select 1 from admin_organizations where id = $1', ['rogue'])).rows).toEqual([]);
    expect((await auditRows(fx.db)).at(-1)).toMatchObject({ actor: 'user:olivia', action: 'organization.create', target: 'organization:rogue', outcome: 'denied' });
    expect(fx.invalidator.take()).toEqual([]);
  });

  it('links nested divisions to both the organization and the parent, tenants to their division', async () => {
    expect(await tuplesOn('division:emea')).toEqual(['division:emea#admin@user:dana', 'division:emea#organization@organization:acme']);
    expect(await tuplesOn('division:emea-north')).toEqual([
      'division:emea-north#admin@user:sam',
      'division:emea-north#organization@organization:acme',
      'division:emea-north#parent@division:emea',
    ]);
    expect(await tuplesOn('tenant:north-sales')).toEqual(['tenant:north-sales#division@division:emea-north']);
    const res = await fx.call('dana', 'GET', '/divisions/emea-north');
    expectStatus(res, 200);
    expect(res.body).toMatchObject({ type: 'division', id: 'emea-north', name: 'EMEA North', organizationId: 'acme', parent: 'division:emea' });
  });

  it('lets a division admin create beneath it but not beside it, and refuses a taken id with 409', async () => {
    expectStatus(await fx.call('dana', 'POST', '/divisions/emea/tenants', { id: 'emea-hr', name: 'EMEA HR' }), 201);
    expectStatus(await fx.call('dana', 'POST', '/divisions/apac/tenants', { id: 'apac-hr', name: 'APAC HR' }), 403);
    expectStatus(await fx.call('dana', 'POST', '/organizations/acme/divisions', { id: 'latam', name: 'LATAM' }), 403);
    fx.invalidator.take();
    const taken = await fx.call('gina', 'POST', '/divisions/gx/tenants', { id: 'emea-hr', name: 'Clash' });
    expectStatus(taken, 409);
    expect(taken.body.detail).toContain('emea-hr');
    expect(await tuplesOn('tenant:emea-hr')).toEqual(['tenant:emea-hr#division@division:emea']);
    expect(fx.invalidator.take()).toEqual([]);
  });
});

describe('read, rename, delete', () => {
  it('answers 403 alike for a hidden node and an unknown one', async () => {
    expectStatus(await fx.call('tara', 'GET', '/divisions/emea'), 403);
    expectStatus(await fx.call('tara', 'GET', '/divisions/no-such'), 403);
    expectStatus(await fx.call('uma', 'GET', '/tenants/emea-sales'), 200);
    expectStatus(await fx.call('pat', 'GET', '/organizations/acme'), 200);
    expectStatus(await fx.call('pat', 'GET', '/divisions/emea'), 403);
  });

  it('renames in PostgreSQL only, audits before/after, and a same-name rename changes nothing', async () => {
    const res = await fx.call('dana', 'PATCH', '/divisions/emea-south', { name: 'EMEA South & Iberia' });
    expectStatus(res, 200);
    expect(res.body).toMatchObject({ changed: true, node: { id: 'emea-south', name: 'EMEA South & Iberia' } });
    const r = await fx.db.query<{ before: unknown; after: unknown }>(
      "select before, after from admin_audit where action = 'division.rename' and outcome = 'success' order by seq desc limit 1",
    );
    expect(r.rows[0]).toEqual({ before: { name: 'EMEA South' }, after: { name: 'EMEA South & Iberia' } });
    const before = (await auditRows(fx.db)).length;
    const again = await fx.call('dana', 'PATCH', '/divisions/emea-south', { name: 'EMEA South & Iberia' });
    expect(again.body.changed).toBe(false);
    expect((await auditRows(fx.db)).length).toBe(before);
    expect(fx.invalidator.take()).toEqual([]);
    // A division admin manages its sub-divisions, not its own division.
    expectStatus(await fx.call('dana', 'PATCH', '/divisions/emea', { name: 'Renamed' }), 403);
  });

  it('refuses to delete a node with children (409) and leaves everything in place', async () => {
    const res = await fx.call('olivia', 'DELETE', '/divisions/emea');
    expectStatus(res, 409);
    expect(res.body.detail).toMatch(/division\(s\).*tenant\(s\)/);
    expect(await tuplesOn('division:emea')).toEqual(['division:emea#admin@user:dana', 'division:emea#organization@organization:acme']);
    expect((await fx.db.query('select 1 from admin_divisions where id = $1', ['emea'])).rows).toHaveLength(1);
  });

  it('deletes a leaf with all its tuples, so a later node with the same id inherits no grant', async () => {
    expectStatus(await fx.call('dana', 'PUT', '/tenants/emea-hr/roles/member/hank'), 200);
    fx.invalidator.take();
    const res = await fx.call('dana', 'DELETE', '/tenants/emea-hr');
    expectStatus(res, 200);
    expect(await tuplesOn('tenant:emea-hr')).toEqual([]);
    expect((await fx.db.query('select 1 from admin_tenants where id = $1', ['emea-hr'])).rows).toEqual([]);
    const [change] = fx.invalidator.take();
    expect(change!.writes).toEqual([]);
    expect(change!.deletes).toEqual(
      expect.arrayContaining([
        { user: 'division:emea', relation: 'division', object: 'tenant:emea-hr' },
        { user: 'user:hank', relation: 'member', object: 'tenant:emea-hr' },
      ]),
    );
    expect(change!.deletes).toHaveLength(2);
    const entry = (await auditRows(fx.db)).at(-1)!;
    expect(entry).toMatchObject({ action: 'tenant.delete', outcome: 'success', scope: ['organization:acme', 'division:emea', 'tenant:emea-hr'] });
  });
});

describe('organization deletion', () => {
  it('is the platform admin\'s (not the organization admin\'s), only when empty, and takes every tuple with it', async () => {
    expectStatus(await fx.call('bill', 'DELETE', '/organizations/initech'), 403);
    expectStatus(await fx.call('pat', 'DELETE', '/organizations/acme'), 409);
    fx.invalidator.take();
    expectStatus(await fx.call('pat', 'DELETE', '/organizations/initech'), 200);
    expect(await tuplesOn('organization:initech')).toEqual([]);
    expect((await fx.db.query('select 1 from admin_organizations where id = $1', ['initech'])).rows).toEqual([]);
    const [change] = fx.invalidator.take();
    expect(change!.deletes).toHaveLength(3);
    expect((await auditRows(fx.db)).at(-1)).toMatchObject({ action: 'organization.delete', outcome: 'success', scope: ['platform:root', 'organization:initech'] });
  });
});

describe('move', () => {
  it('moves a tenant with one atomic write (delete old link + write new) when the caller administers both parents', async () => {
    const res = await fx.call('olivia', 'POST', '/tenants/emea-support/move', { parent: 'division:apac' });
    expectStatus(res, 200);
    expect(res.body).toMatchObject({ changed: true, node: { id: 'emea-support', parent: 'division:apac' } });
    expect(await tuplesOn('tenant:emea-support')).toEqual(['tenant:emea-support#division@division:apac']);
    // Announced before the write, and the caches told with that announcement.
    expect(fx.invalidator.announced).toEqual(fx.invalidator.changes);
    expect(fx.invalidator.handles).toEqual([{ id: expect.any(String) }]);
    expect(fx.invalidator.take()).toEqual([
      {
        writes: [{ user: 'division:apac', relation: 'division', object: 'tenant:emea-support' }],
        deletes: [{ user: 'division:emea', relation: 'division', object: 'tenant:emea-support' }],
      },
    ]);
    const entry = (await auditRows(fx.db)).at(-1)!;
    // Both the old and the new place see the move.
    expect(entry.scope).toEqual(expect.arrayContaining(['division:emea', 'division:apac', 'tenant:emea-support']));
  });

  it('refuses a move to a parent the caller does not administer', async () => {
    // dana administers emea (the old parent of emea-sales) but not apac.
    expectStatus(await fx.call('dana', 'POST', '/tenants/emea-sales/move', { parent: 'division:apac' }), 403);
    expect(await tuplesOn('tenant:emea-sales')).toContain('tenant:emea-sales#division@division:emea');
  });

  it('moves a sub-division under a sibling, and back to the top level', async () => {
    expectStatus(await fx.call('dana', 'POST', '/divisions/emea-south/move', { parent: 'division:emea-north' }), 200);
    expect(await tuplesOn('division:emea-south')).toEqual([
      'division:emea-south#organization@organization:acme',
      'division:emea-south#parent@division:emea-north',
    ]);
    fx.invalidator.take();
    expectStatus(await fx.call('olivia', 'POST', '/divisions/emea-south/move', { parent: 'organization:acme' }), 200);
    expect(await tuplesOn('division:emea-south')).toEqual(['division:emea-south#organization@organization:acme']);
    expect(fx.invalidator.take()).toEqual([
      { writes: [], deletes: [{ user: 'division:emea-north', relation: 'parent', object: 'division:emea-south' }] },
    ]);
    const same = await fx.call('olivia', 'POST', '/divisions/emea-south/move', { parent: 'organization:acme' });
    expect(same.body.changed).toBe(false);
  });

  it('refuses cycles and moves across organizations (422), changing nothing', async () => {
    const cycle = await fx.call('olivia', 'POST', '/divisions/emea/move', { parent: 'division:emea-north' });
    expectStatus(cycle, 422);
    expect(cycle.body['invalid-params']).toEqual([{ name: 'body.parent', reason: 'would create a cycle' }]);
    expectStatus(await fx.call('gina', 'PUT', '/organizations/globex/roles/admin/olivia'), 200);
    const across = await fx.call('olivia', 'POST', '/tenants/apac-sales/move', { parent: 'division:gx' });
    expectStatus(across, 422);
    expect(across.body['invalid-params']).toEqual([{ name: 'body.parent', reason: 'is in another organization' }]);
    expect(await tuplesOn('tenant:apac-sales')).toEqual(['tenant:apac-sales#division@division:apac']);
    expect(await tuplesOn('division:emea')).not.toContain('division:emea#parent@division:emea-north');
  });
});

describe('bad input', () => {
  it('lists every invalid field of path and body in one problem, and writes nothing', async () => {
    const before = (await auditRows(fx.db)).length;
    const res = await fx.call('olivia', 'POST', '/organizations/acme!/divisions', { id: '-bad', name: '', colour: 'red' });
    expectStatus(res, 422);
    expect(res.contentType).toBe('application/problem+json');
    const names = (res.body['invalid-params'] as { name: string }[]).map((p) => p.name).sort();
    expect(names).toEqual(['body.colour', 'body.id', 'body.name', 'path.organizationId']);
    expect(res.body.requestId).toEqual(expect.any(String));
    expect((await auditRows(fx.db)).length).toBe(before);
  });

  it('refuses unknown query parameters, bad roles, malformed JSON and other media types', async () => {
    const q = await fx.call('olivia', 'GET', '/organizations/acme/roles?limit=5&sort=desc');
    expectStatus(q, 422);
    expect(q.body['invalid-params']).toEqual([{ name: 'query.sort', reason: 'unknown field' }]);
    const role = await fx.call('olivia', 'PUT', '/divisions/emea/roles/member/zed');
    expectStatus(role, 422);
    expect(role.body['invalid-params']).toEqual([{ name: 'path.role', reason: 'must be one of: admin' }]);
    const owner = await fx.call('olivia', 'PUT', '/divisions/emea/roles/owner/zed');
    expectStatus(owner, 422);
    expect(owner.body['invalid-params'][0].name).toBe('path.role');
    const malformed = await fx.call('olivia', 'POST', '/organizations/acme/divisions', '{"id": "x",');
    expectStatus(malformed, 400);
    expect(malformed.contentType).toBe('application/problem+json');
    const res = await fx.app.request('/admin/v1/organizations/acme/divisions', {
      method: 'POST',
      headers: { authorization: `Bearer ${await fx.auth.token('olivia')}`, 'content-type': 'text/plain' },
      body: 'id=x',
    });
    expect(res.status).toBe(415);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
  });

  it('requires a valid token on every data route', async () => {
    const res = await fx.call(null, 'GET', '/me/tenants');
    expectStatus(res, 401);
    expect(res.contentType).toBe('application/problem+json');
  });
});

describe('documentation', () => {
  it('serves the OpenAPI document generated from the schemas, and the docs page, without a token', async () => {
    const doc = await fx.call(null, 'GET', '/openapi.json');
    expectStatus(doc, 200);
    expect(doc.body.openapi).toBe('3.0.3');
    expect(doc.body.servers).toEqual([{ url: '/admin/v1' }]);
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining([
        '/organizations',
        '/organizations/{organizationId}/divisions',
        '/divisions/{divisionId}/divisions',
        '/divisions/{divisionId}/tenants',
        '/divisions/{divisionId}/move',
        '/tenants/{tenantId}/roles/{role}/{userId}',
        '/platform/roles/{role}/{userId}',
        '/organizations/{organizationId}/break-glass',
        '/tuples',
        '/me/tenants',
        '/check',
        '/audit',
      ]),
    );
    const create = doc.body.paths['/organizations/{organizationId}/divisions'].post;
    expect(create.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/CreateNode' });
    expect(doc.body.components.schemas.CreateNode.additionalProperties).toBe(false);
    expect(doc.body.components.schemas.CreateNode.properties.id.pattern).toBe('^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$');
    const page = await fx.call(null, 'GET', '/docs');
    expectStatus(page, 200);
    expect(page.contentType).toContain('text/html');
    expect(page.body).toContain('/admin/v1/openapi.json');
  });
});
