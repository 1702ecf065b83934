// POST /divisions/{id}/tenants/batch against a real OpenFGA store and PostgreSQL (PGlite):
// each tenant of a batch lands exactly as POST /divisions/{id}/tenants makes it (row, id
// claim, structural tuple, audit entry), the batch is one atomic OpenFGA write, and a
// batch with one bad tenant changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useCleanup } from '../support/cleanup.js';
import { auditRows, createAdminFixture, expectStatus, seedTree, type AdminFixture } from '../support/admin-fixture.js';

useCleanup();

let fx: AdminFixture;

async function tuplesOn(object: string): Promise<string[]> {
  const res = await fx.store.client.read({ object });
  return res.tuples.map((t) => `${t.key.object}#${t.key.relation}@${t.key.user}`).sort();
}

/** What a tenant is in the database and OpenFGA, with its own name and id left out. */
async function footprint(id: string) {
  const row = (await fx.db.query<{ division_id: string }>('select division_id from admin_tenants where id = $1', [id])).rows[0];
  const claim = (await fx.db.query<{ organization_id: string; retired_at: unknown }>('select organization_id, retired_at from admin_node_ids where kind = $1 and id = $2', ['tenant', id])).rows[0];
  const audit = (await fx.db.query<{ actor: string; action: string; outcome: string; scope: string[]; after: unknown }>(
    "select actor, action, outcome, scope, after from admin_audit where target = $1 and action = 'tenant.create' order by seq",
    [`tenant:${id}`],
  )).rows;
  return {
    row,
    claim,
    tuples: (await tuplesOn(`tenant:${id}`)).map((t) => t.replace(`tenant:${id}`, 'tenant:X')),
    audit: audit.map((e) => ({ ...e, scope: e.scope.map((s) => (s === `tenant:${id}` ? 'tenant:X' : s)), after: { ...(e.after as object), name: '*' } })),
  };
}

beforeAll(async () => {
  fx = await createAdminFixture();
  await seedTree(fx);
});
afterAll(async () => {
  await fx?.close();
});

describe('tenants in a batch', () => {
  it('writes each tenant as the single create does: row, id claim, structural tuple, audit entry; caches told once', async () => {
    expectStatus(await fx.call('olivia', 'POST', '/divisions/emea-north/tenants', { id: 'single-1', name: 'Single' }), 201);
    fx.invalidator.take();
    const tenants = Array.from({ length: 100 }, (_, i) => ({ id: `bulk-${String(i).padStart(3, '0')}`, name: `Bulk ${i}` }));
    const res = await fx.call('olivia', 'POST', '/divisions/emea-north/tenants/batch', { tenants });
    expectStatus(res, 201);
    expect(res.body.items.map((n: { id: string }) => n.id)).toEqual(tenants.map((t) => t.id));
    expect(res.body.items[7]).toMatchObject({ type: 'tenant', id: 'bulk-007', name: 'Bulk 7', organizationId: 'acme', parent: 'division:emea-north' });

    const single = await footprint('single-1');
    expect(single.tuples).toEqual(['tenant:X#division@division:emea-north']);
    for (const t of [tenants[0]!, tenants[42]!, tenants[99]!]) expect(await footprint(t.id)).toEqual(single);

    // One atomic write for the whole batch, and the caches told before the answer.
    expect(fx.invalidator.take()).toEqual([{ writes: tenants.map((t) => ({ user: 'division:emea-north', relation: 'division', object: `tenant:${t.id}` })), deletes: [] }]);
    const batchEntry = (await auditRows(fx.db)).find((e) => e.action === 'tenant.create-batch')!;
    expect(batchEntry).toMatchObject({ actor: 'user:olivia', target: 'division:emea-north', outcome: 'success' });
    expect(batchEntry.scope.slice(0, 3)).toEqual(['organization:acme', 'division:emea', 'division:emea-north']);
    expect(batchEntry.scope).toHaveLength(103);

    // The model sees them like any tenant: the division's admin administers each.
    expect(await fx.store.client.check({ user: 'user:sam', relation: 'can_manage_resources', object: 'tenant:bulk-042' })).toMatchObject({ allowed: true });
    expect(await fx.store.client.check({ user: 'user:gina', relation: 'can_view', object: 'tenant:bulk-042' })).toMatchObject({ allowed: false });
  });

  it('changes nothing when one id of the batch is taken or retired', async () => {
    expectStatus(await fx.call('olivia', 'POST', '/divisions/apac/tenants', { id: 'gone', name: 'Gone' }), 201);
    expectStatus(await fx.call('olivia', 'DELETE', '/tenants/gone'), 200);
    fx.invalidator.take();
    for (const [clash, status, type] of [
      ['apac-sales', 409, 'conflict'],
      ['gone', 409, 'id-retired'],
    ] as const) {
      const res = await fx.call('olivia', 'POST', '/divisions/apac/tenants/batch', { tenants: [{ id: 'fresh-1', name: 'Fresh' }, { id: clash, name: 'Clash' }] });
      expectStatus(res, status);
      expect(res.body.type).toBe(`https://tiergate.dev/problems/${type}`);
      expect((await fx.db.query('select 1 from admin_tenants where id = $1', ['fresh-1'])).rows).toEqual([]);
      expect((await fx.db.query("select 1 from admin_node_ids where kind = 'tenant' and id = $1", ['fresh-1'])).rows).toEqual([]);
      expect(await tuplesOn('tenant:fresh-1')).toEqual([]);
    }
    expect(fx.invalidator.take()).toEqual([]);
  });

  it('refuses a caller without can_create_tenant on the division, a duplicate id and an oversized batch', async () => {
    const denied = await fx.call('tara', 'POST', '/divisions/emea/tenants/batch', { tenants: [{ id: 'nope-1', name: 'Nope' }] });
    expectStatus(denied, 403);
    expect((await auditRows(fx.db)).at(-1)).toMatchObject({ actor: 'user:tara', action: 'tenant.create-batch', target: 'division:emea', outcome: 'denied' });
    // Another organization's admin cannot reach into acme either.
    expectStatus(await fx.call('gina', 'POST', '/divisions/emea/tenants/batch', { tenants: [{ id: 'nope-2', name: 'Nope' }] }), 403);

    const dup = await fx.call('olivia', 'POST', '/divisions/emea/tenants/batch', { tenants: [{ id: 'd-1', name: 'A' }, { id: 'd-1', name: 'B' }] });
    expectStatus(dup, 422);
    expect(dup.body['invalid-params']).toEqual([{ name: 'body.tenants[1].id', reason: 'd-1 appears twice in the batch' }]);

    const big = await fx.call('olivia', 'POST', '/divisions/emea/tenants/batch', { tenants: Array.from({ length: 101 }, (_, i) => ({ id: `big-${i}`, name: 'Big' })) });
    expectStatus(big, 422);
    expectStatus(await fx.call('olivia', 'POST', '/divisions/emea/tenants/batch', { tenants: [] }), 422);
    expectStatus(await fx.call('olivia', 'POST', '/divisions/nowhere/tenants/batch', { tenants: [{ id: 'n-1', name: 'N' }] }), 403);
    for (const id of ['nope-1', 'nope-2', 'd-1', 'big-0', 'n-1']) expect(await tuplesOn(`tenant:${id}`)).toEqual([]);
  });
});
