// No way up from where one stands, through the real gateway, OpenFGA and tenant
// service: the tuple API grants only what the roles API would (never to the
// caller, never inside an organization to a platform admin), an organization
// without admins is recovered only by an explicit, audited break-glass, and
// /check explains no more than the caller could list.
//
//   platform admins pat, pam
//   organization:acme (admin olivia)          organization:globex (admin gina)
//     division:d1 (admin dana)                  division:g1
//       tenant:t1 (admin tom)                     tenant:g1t
//       tenant:t2
//   organization:orphan (its only admin's tuple removed straight from OpenFGA)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HIDDEN_VIA } from '../../src/admin/explain.js';
import { useCleanup } from '../support/cleanup.js';
import { call, type JsonResponse } from '../support/json-call.js';
import { adminOk, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

let s: TestStack;

async function as(sub: string, method: string, path: string, body?: unknown): Promise<JsonResponse> {
  return call(s.gatewayUrl, method, path.startsWith('/api/') ? path : `/admin/v1${path}`, { auth: await s.authHeader(sub), ...(body !== undefined ? { body } : {}) });
}

function expectStatus(res: JsonResponse, status: number): void {
  expect({ status: res.status, body: res.status === status ? 'ok' : res.body }).toEqual({ status, body: 'ok' });
}

async function tuples(filter: { user?: string; relation?: string; object: string }): Promise<string[]> {
  return (await s.store.client.read(filter)).tuples.map((t) => `${t.key.user} ${t.key.relation} ${t.key.object}`);
}

const t = (user: string, relation: string, object: string) => ({ user, relation, object });

beforeAll(async () => {
  s = await startTestStack({ platformAdmins: ['pat', 'pam'] });
  const ok = (sub: string, method: string, path: string, body?: unknown) => adminOk(s, sub, method, path, body);
  await ok('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await ok('pat', 'POST', '/organizations', { id: 'globex', name: 'Globex', admins: ['gina'] });
  await ok('pat', 'POST', '/organizations', { id: 'orphan', name: 'Orphan', admins: ['ozzy'] });
  await ok('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't2', name: 'T2' });
  await ok('olivia', 'PUT', '/divisions/d1/roles/admin/dana');
  await ok('olivia', 'PUT', '/tenants/t1/roles/admin/tom');
  await ok('gina', 'POST', '/organizations/globex/divisions', { id: 'g1', name: 'G1' });
  await ok('gina', 'POST', '/divisions/g1/tenants', { id: 'g1t', name: 'G1T' });
  // An organization that lost its last admin outside the admin API (a direct OpenFGA write).
  await s.store.client.write({ deletes: [t('user:ozzy', 'admin', 'organization:orphan')] });
});
afterAll(async () => {
  await s?.stop();
});

describe('the tuple API grants what the roles API would, and nothing to the caller', () => {
  it('a platform admin cannot make itself admin of an organization, and the gateway still denies it the tenant', async () => {
    const res = await as('pat', 'POST', '/tuples', { writes: [t('user:pat', 'admin', 'organization:acme')] });
    expectStatus(res, 403);
    expect(res.contentType).toBe('application/problem+json');
    expect(res.body['invalid-params']).toEqual([{ name: 'body.writes[0]', reason: 'a caller cannot grant itself a role' }]);
    expect(await tuples({ user: 'user:pat', object: 'organization:acme' })).toEqual([]);
    const config = await as('pat', 'GET', '/api/v1/tenants/t1/configurations');
    expectStatus(config, 403);
    expect(config.body.detail).toContain('can_read_configuration');
    // The attempt is in acme's audit trail.
    const denied = await as('olivia', 'GET', '/audit?action=tuples.write&outcome=denied');
    expect(denied.body.items.map((e: { actor: string }) => e.actor)).toContain('user:pat');
  });

  it('a platform admin creating an organization cannot name itself among its first admins', async () => {
    const res = await as('pat', 'POST', '/organizations', { id: 'selfie', name: 'Selfie', admins: ['olivia', 'pat'] });
    expectStatus(res, 403);
    expect(res.body['invalid-params']).toEqual([{ name: 'body.admins[1]', reason: 'must not be the caller' }]);
    expectStatus(await as('pat', 'GET', '/organizations/selfie'), 403);
    expect(await tuples({ object: 'organization:selfie' })).toEqual([]);
  });

  it('two platform admins cannot grant each other a role inside an organization', async () => {
    const patForPam = await as('pat', 'POST', '/tuples', { writes: [t('user:pam', 'admin', 'organization:acme')] });
    expectStatus(patForPam, 403);
    expect(patForPam.body['invalid-params']).toEqual([{ name: 'body.writes[0]', reason: 'the caller lacks can_assign_admin on organization:acme' }]);
    const pamForPat = await as('pam', 'POST', '/tuples', { writes: [t('user:pat', 'admin', 'tenant:t1')], deletes: [t('user:tom', 'admin', 'tenant:t1')] });
    expectStatus(pamForPat, 403);
    expect(pamForPat.body['invalid-params'].map((p: { name: string }) => p.name)).toEqual(['body.writes[0]', 'body.deletes[0]']);
    expect(await tuples({ object: 'organization:acme', relation: 'admin' })).toEqual(['user:olivia admin organization:acme']);
    expect(await tuples({ object: 'tenant:t1', relation: 'admin' })).toEqual(['user:tom admin tenant:t1']);
    expectStatus(await as('pam', 'GET', '/api/v1/tenants/t1/configurations'), 403);
    // Platform roles stay theirs to manage.
    expectStatus(await as('pat', 'POST', '/tuples', { writes: [t('user:pia', 'admin', 'platform:root')] }), 200);
    expectStatus(await as('pam', 'POST', '/tuples', { deletes: [t('user:pia', 'admin', 'platform:root')] }), 200);
    expect(await tuples({ user: 'user:pia', object: 'platform:root' })).toEqual([]);
  });

  it('an organization admin grants in bulk inside its organization, and nowhere else', async () => {
    const inside = await as('olivia', 'POST', '/tuples', {
      writes: [t('user:una', 'member', 'tenant:t1'), t('user:una', 'member', 'tenant:t2'), t('user:dora', 'admin', 'division:d1')],
    });
    expectStatus(inside, 200);
    expect(await tuples({ user: 'user:una', object: 'tenant:' })).toHaveLength(2);
    expect(await tuples({ user: 'user:dora', object: 'division:d1' })).toEqual(['user:dora admin division:d1']);
    const una = await as('una', 'GET', '/api/v1/tenants/t2/agents');
    expectStatus(una, 200);

    const outside = await as('olivia', 'POST', '/tuples', { writes: [t('user:vera', 'member', 'tenant:t2'), t('user:vera', 'member', 'tenant:g1t')] });
    expectStatus(outside, 403);
    expect(outside.body['invalid-params']).toEqual([{ name: 'body.writes[1]', reason: 'the caller lacks can_assign_member on tenant:g1t' }]);
    // Atomic: the allowed half was not written either.
    expect(await tuples({ user: 'user:vera', object: 'tenant:' })).toEqual([]);
    // A division admin is an organization admin's delegate, not its peer.
    expectStatus(await as('dana', 'POST', '/tuples', { writes: [t('user:vera', 'admin', 'organization:acme')] }), 403);
  });

  it('refuses every write naming the caller, even where the caller may grant', async () => {
    const res = await as('olivia', 'POST', '/tuples', { writes: [t('user:una', 'admin', 'tenant:t2'), t('user:olivia', 'admin', 'tenant:t2')] });
    expectStatus(res, 403);
    expect(res.body['invalid-params']).toEqual([{ name: 'body.writes[1]', reason: 'a caller cannot grant itself a role' }]);
    expect(await tuples({ object: 'tenant:t2', relation: 'admin' })).toEqual([]);
  });

  it('never leaves an organization without an admin', async () => {
    const res = await as('olivia', 'POST', '/tuples', { deletes: [t('user:olivia', 'admin', 'organization:acme')] });
    expectStatus(res, 409);
    expect(await tuples({ object: 'organization:acme', relation: 'admin' })).toEqual(['user:olivia admin organization:acme']);
  });

  it('reads only tuples on nodes the caller administers', async () => {
    expectStatus(await as('pat', 'GET', '/tuples?object=organization:acme'), 403);
    expectStatus(await as('pat', 'GET', '/tuples?object=tenant:t1'), 403);
    const across = await as('pat', 'GET', '/tuples?object=organization:&user=user:olivia');
    expectStatus(across, 200);
    expect(across.body.items).toEqual([]);
    const own = await as('olivia', 'GET', '/tuples?object=organization:&user=user:olivia');
    expect(own.body.items).toEqual([t('user:olivia', 'admin', 'organization:acme')]);
    const tenant = await as('tom', 'GET', '/tuples?object=tenant:t1&relation=admin');
    expectStatus(tenant, 200);
    expect(tenant.body.items).toEqual([t('user:tom', 'admin', 'tenant:t1')]);
    expect((await as('tom', 'GET', '/tuples?object=tenant:&user=user:una')).body.items).toEqual([t('user:una', 'member', 'tenant:t1')]);
  });
});

describe('break-glass', () => {
  const reason = 'every admin of orphan has left; ticket OPS-1234';

  it('is refused with 409 while the organization has an admin, and the attempt is shown to that organization', async () => {
    const res = await as('pat', 'POST', '/organizations/acme/break-glass', { user: 'pam', reason: 'curious' });
    expectStatus(res, 409);
    expect(await tuples({ object: 'organization:acme', relation: 'admin' })).toEqual(['user:olivia admin organization:acme']);
    const seen = await as('olivia', 'GET', '/audit?action=organization.break-glass');
    expect(seen.body.items).toEqual([
      expect.objectContaining({ actor: 'user:pat', outcome: 'denied', target: 'organization:acme', detail: expect.objectContaining({ user: 'user:pam', reason: 'curious' }) }),
    ]);
  });

  it('names another user, with a reason, and only platform admins call it', async () => {
    const self = await as('pat', 'POST', '/organizations/orphan/break-glass', { user: 'user:pat', reason });
    expectStatus(self, 403);
    expect(self.body['invalid-params']).toEqual([{ name: 'body.user', reason: 'must not be the caller' }]);
    const blank = await as('pat', 'POST', '/organizations/orphan/break-glass', { user: 'oscar', reason: '   ' });
    expectStatus(blank, 422);
    expect(blank.body['invalid-params']).toEqual([{ name: 'body.reason', reason: 'must not be empty' }]);
    const long = await as('pat', 'POST', '/organizations/orphan/break-glass', { user: 'oscar', reason: 'x'.repeat(1001), extra: 1 });
    expect(long.body['invalid-params'].map((p: { name: string }) => p.name).sort()).toEqual(['body.extra', 'body.reason']);
    expectStatus(await as('pat', 'POST', '/organizations/orphan/break-glass', { user: 'oscar' }), 422);
    expectStatus(await as('olivia', 'POST', '/organizations/orphan/break-glass', { user: 'oscar', reason }), 403);
    expectStatus(await as('pat', 'POST', '/organizations/nowhere/break-glass', { user: 'oscar', reason }), 404);
    expect(await tuples({ object: 'organization:orphan', relation: 'admin' })).toEqual([]);
  });

  it('grants admin on an organization without one; the reason is in the trail its new admin reads', async () => {
    const res = await as('pat', 'POST', '/organizations/orphan/break-glass', { user: 'oscar', reason });
    expectStatus(res, 200);
    expect(res.body).toEqual({ object: 'organization:orphan', role: 'admin', user: 'user:oscar', reason });
    expect(await tuples({ object: 'organization:orphan', relation: 'admin' })).toEqual(['user:oscar admin organization:orphan']);
    expectStatus(await as('oscar', 'POST', '/organizations/orphan/divisions', { id: 'o1', name: 'O1' }), 201);

    const entry = expect.objectContaining({
      actor: 'user:pat',
      action: 'organization.break-glass',
      target: 'organization:orphan',
      outcome: 'success',
      after: { role: 'admin', user: 'user:oscar' },
      detail: { reason },
    });
    const trail = await as('oscar', 'GET', '/audit?action=organization.break-glass&outcome=success');
    expectStatus(trail, 200);
    expect(trail.body.items).toEqual([entry]);
    expect((await as('pam', 'GET', '/audit?action=organization.break-glass&outcome=success')).body.items).toEqual([entry]);
    // Now it has an admin again: no second break-glass.
    expectStatus(await as('pam', 'POST', '/organizations/orphan/break-glass', { user: 'otto', reason }), 409);
  });

  it('an organization cannot be created without a first admin', async () => {
    const res = await as('pat', 'POST', '/organizations', { id: 'empty', name: 'Empty', admins: [] });
    expectStatus(res, 422);
    expect(res.body['invalid-params']).toEqual([{ name: 'body.admins', reason: 'name at least one first admin' }]);
    expectStatus(await as('pat', 'POST', '/organizations', { id: 'empty', name: 'Empty' }), 422);
  });
});

describe('check explains no more than the caller could list', () => {
  it("a tenant admin learns that an organization admin's access comes from above, not from whom or where", async () => {
    const res = await as('tom', 'POST', '/check', { user: 'olivia', permission: 'can_read_configuration', object: 'tenant:t1' });
    expectStatus(res, 200);
    expect(res.body).toEqual({
      allowed: true,
      user: 'user:olivia',
      permission: 'can_read_configuration',
      object: 'tenant:t1',
      reasons: [{ role: 'admin', on: null, via: HIDDEN_VIA, path: ['tenant:t1'] }],
      // The tenant's edge policies, as its settings API shows them to him.
      edgePolicies: expect.any(Array),
    });
    expect(JSON.stringify(res.body.reasons)).not.toMatch(/acme|d1|olivia/);
    // The same for a division admin's grant, and the roles list it stands for is refused to him.
    const dana = await as('tom', 'POST', '/check', { user: 'dana', permission: 'can_write', object: 'agent:t1/2000' });
    expect(dana.body.reasons).toEqual([{ role: 'admin', on: null, via: HIDDEN_VIA, path: ['tenant:t1', 'agent:t1/2000'] }]);
    expectStatus(await as('tom', 'GET', '/divisions/d1/roles'), 403);
  });

  it('names the grant where the caller administers its node, and only its part of the path otherwise', async () => {
    const byOlivia = await as('olivia', 'POST', '/check', { user: 'dana', permission: 'can_write', object: 'agent:t1/2000' });
    expect(byOlivia.body.reasons).toEqual([{ role: 'admin', on: 'division:d1', via: 'inherited by agent:t1/2000', path: ['division:d1', 'tenant:t1', 'agent:t1/2000'] }]);
    const byDana = await as('dana', 'POST', '/check', { user: 'olivia', permission: 'can_write', object: 'agent:t1/2000' });
    expect(byDana.body.reasons).toEqual([{ role: 'admin', on: null, via: HIDDEN_VIA, path: ['division:d1', 'tenant:t1', 'agent:t1/2000'] }]);
    const direct = await as('tom', 'POST', '/check', { user: 'tom', permission: 'can_write', object: 'agent:t1/2000' });
    expect(direct.body.reasons).toEqual([{ role: 'admin', on: 'tenant:t1', via: 'inherited by agent:t1/2000', path: ['tenant:t1', 'agent:t1/2000'] }]);
  });
});
