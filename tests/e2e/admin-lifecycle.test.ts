// A node's whole life through the real gateway: what one organization kept in a
// tenant or a division (configuration, grants, audit) never reaches another
// organization that asks for the same id after the node was deleted. Ids are
// retired for good, so the create is refused with 409 id-retired.
import { beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import { useCleanup } from '../support/cleanup.js';
import { call, type JsonResponse } from '../support/json-call.js';
import { startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

let s: TestStack;

async function send(sub: string, method: string, path: string, body?: unknown): Promise<JsonResponse> {
  return call(s.gatewayUrl, method, path, { auth: await s.authHeader(sub), ...(body !== undefined ? { body } : {}) });
}
const admin = (sub: string, method: string, path: string, body?: unknown) => send(sub, method, `/admin/v1${path}`, body);

async function ok(res: Promise<JsonResponse>, status = 200): Promise<JsonResponse> {
  const r = await res;
  expect({ status: r.status, body: r.status === status ? 'ok' : r.body }).toEqual({ status, body: 'ok' });
  return r;
}

/** Every tuple whose object is `object`, straight from OpenFGA. */
async function tuplesOn(object: string): Promise<string[]> {
  const out: string[] = [];
  let continuationToken: string | undefined;
  do {
    const page = await s.store.client.read({ object }, { pageSize: 100, ...(continuationToken ? { continuationToken } : {}) });
    out.push(...page.tuples.map((t) => `${t.key.user} ${t.key.relation} ${t.key.object}`));
    continuationToken = page.continuation_token || undefined;
  } while (continuationToken);
  return out;
}

function expectRetired(r: JsonResponse, kind: string, id: string): void {
  expect(r.status).toBe(409);
  expect(r.contentType).toContain(PROBLEM_CONTENT_TYPE);
  expect(r.body.type).toBe('https://tiergate.dev/problems/id-retired');
  expect(r.body.detail).toBe(
    `${kind} id ${id} belonged to a deleted ${kind}; ids are never reused, so nothing of it (grants, data, audit, cached decisions) can reach a new node`,
  );
}

beforeAll(async () => {
  s = await startTestStack({ platformAdmins: ['pat'] });
  await ok(admin('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] }), 201);
  await ok(admin('pat', 'POST', '/organizations', { id: 'globex', name: 'Globex', admins: ['gina'] }), 201);
  await ok(admin('olivia', 'POST', '/organizations/acme/divisions', { id: 'emea', name: 'EMEA' }), 201);
  await ok(admin('gina', 'POST', '/organizations/globex/divisions', { id: 'gx', name: 'Globex Ops' }), 201);
});

describe('a deleted tenant id', () => {
  it('never reaches another organization: acme\'s secret configuration, grants and audit stay out of globex\'s reach', async () => {
    await ok(admin('olivia', 'POST', '/divisions/emea/tenants', { id: 'leak-t', name: 'Leak' }), 201);
    await ok(admin('olivia', 'PUT', '/tenants/leak-t/roles/admin/tom'));
    await ok(send('tom', 'POST', '/api/v1/tenants/leak-t/configurations', { configKey: 'sip-password', value: 'hunter2' }), 201);
    expect((await ok(send('tom', 'GET', '/api/v1/tenants/leak-t/configurations/sip-password'))).body.value).toBe('hunter2');

    expect((await ok(admin('olivia', 'DELETE', '/tenants/leak-t'))).body).toEqual({ deleted: 'tenant:leak-t' });
    // Its admin lost it with the tenant.
    expect((await send('tom', 'GET', '/api/v1/tenants/leak-t/configurations')).status).toBe(403);

    // Globex asks for the same id, in its own division: refused, nothing created.
    expectRetired(await admin('gina', 'POST', '/divisions/gx/tenants', { id: 'leak-t', name: 'Mine now' }), 'tenant', 'leak-t');
    expect((await admin('gina', 'GET', '/tenants/leak-t')).status).toBe(403);
    expect(await tuplesOn('tenant:leak-t')).toEqual([]);

    // Nothing of acme's is readable by globex's admin, nor by acme's own admin any more.
    for (const sub of ['gina', 'olivia', 'tom']) {
      for (const path of ['/api/v1/tenants/leak-t/configurations', '/api/v1/tenants/leak-t/configurations/sip-password']) {
        expect({ sub, path, status: (await send(sub, 'GET', path)).status }).toEqual({ sub, path, status: 403 });
      }
    }
    const audit = await ok(admin('gina', 'GET', '/audit?target=tenant:leak-t'));
    expect(audit.body.items).toEqual([]);
    // Acme's admin still sees the history, for the record.
    const history = await ok(admin('olivia', 'GET', '/audit?target=tenant:leak-t&outcome=success'));
    expect(history.body.items.map((e: { action: string }) => e.action).sort()).toEqual(['role.grant', 'tenant.create', 'tenant.delete']);

    // A second try in acme itself is refused the same way.
    expectRetired(await admin('olivia', 'POST', '/divisions/emea/tenants', { id: 'leak-t', name: 'Again' }), 'tenant', 'leak-t');
  });

  it('a live id is taken (409 conflict, not id-retired) for every organization', async () => {
    await ok(admin('olivia', 'POST', '/divisions/emea/tenants', { id: 'live-t', name: 'Live' }), 201);
    const r = await admin('gina', 'POST', '/divisions/gx/tenants', { id: 'live-t', name: 'Mine' });
    expect(r.status).toBe(409);
    expect(r.body.type).toBe('https://tiergate.dev/problems/conflict');
    expect(r.body.detail).toBe('tenant id live-t is taken (ids are unique per kind across all organizations)');
  });
});

describe('a deleted division id', () => {
  it('never reattaches its grants: another organization cannot take it, and its admin holds nothing', async () => {
    await ok(admin('olivia', 'POST', '/organizations/acme/divisions', { id: 'leak-d', name: 'Leak D' }), 201);
    await ok(admin('olivia', 'PUT', '/divisions/leak-d/roles/admin/dana'));
    await ok(admin('olivia', 'DELETE', '/divisions/leak-d'));
    expect(await tuplesOn('division:leak-d')).toEqual([]);

    expectRetired(await admin('gina', 'POST', '/organizations/globex/divisions', { id: 'leak-d', name: 'Mine' }), 'division', 'leak-d');
    expectRetired(await admin('gina', 'POST', '/divisions/gx/divisions', { id: 'leak-d', name: 'Mine' }), 'division', 'leak-d');
    expect(await tuplesOn('division:leak-d')).toEqual([]);
    // dana administers nothing, and may create nothing anywhere.
    expect((await ok(admin('dana', 'GET', '/me/divisions'))).body.items).toEqual([]);
    expect((await admin('dana', 'POST', '/divisions/gx/tenants', { id: 'dana-t', name: 'D' })).status).toBe(403);
  });
});

describe('a deleted organization id', () => {
  it('cannot be created again', async () => {
    await ok(admin('pat', 'POST', '/organizations', { id: 'leak-o', name: 'Leak O', admins: ['oscar'] }), 201);
    await ok(admin('pat', 'DELETE', '/organizations/leak-o'));
    expectRetired(await admin('pat', 'POST', '/organizations', { id: 'leak-o', name: 'Again', admins: ['gina'] }), 'organization', 'leak-o');
    expect(await tuplesOn('organization:leak-o')).toEqual([]);
  });
});
