// The id registry: every node id ever used stays recorded, and a deleted node's id
// is retired for good. The migration that adds the registry retires the ids the
// audit trail says were deleted before it existed. And a database integrity
// refusal (foreign key, unique) is a 409 with a reason, never a 500.
import { afterAll, describe, expect, it } from 'vitest';
import { migrateAdmin } from '../../src/admin/app.js';
import { ADMIN_MIGRATIONS } from '../../src/admin/store.js';
import { migrate, openDb, type Db, type Queryable } from '../../src/db/index.js';
import { auditRows, createAdminFixture, expectStatus, seedTree } from '../support/admin-fixture.js';

const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers) await close();
});

async function registry(db: Queryable): Promise<{ kind: string; id: string; organization_id: string | null; retired: boolean }[]> {
  const r = await db.query<{ kind: string; id: string; organization_id: string | null; retired: boolean }>(
    `select kind, id, organization_id, retired_at is not null as retired from admin_node_ids order by kind, id collate "C"`,
  );
  return r.rows;
}

describe('the registry migration', () => {
  it('records the live nodes and retires the ids the audit trail says were deleted, once', async () => {
    const db = await openDb({});
    closers.push(() => db.close());
    await migrate(db, 'admin', ADMIN_MIGRATIONS.filter((m) => m.version === 1));
    await db.exec(`
      insert into admin_organizations (id, name) values ('acme', 'Acme');
      insert into admin_divisions (id, name, organization_id) values ('emea', 'EMEA', 'acme');
      insert into admin_tenants (id, name, division_id) values ('emea-sales', 'Sales', 'emea'), ('back', 'Back again', 'emea');
      insert into admin_audit (actor, action, target, scope, outcome) values
        ('user:olivia', 'tenant.create', 'tenant:old-t', '{organization:acme,division:emea,tenant:old-t}', 'success'),
        ('user:olivia', 'tenant.delete', 'tenant:old-t', '{organization:acme,division:emea,tenant:old-t}', 'success'),
        ('user:olivia', 'division.delete', 'division:old-d', '{organization:acme,division:old-d}', 'success'),
        ('user:pat', 'organization.delete', 'organization:old-o', '{platform:root,organization:old-o}', 'success'),
        ('user:eve', 'tenant.delete', 'tenant:kept', '{organization:acme,division:emea,tenant:kept}', 'denied'),
        ('user:olivia', 'tenant.delete', 'tenant:failed', '{organization:acme,division:emea,tenant:failed}', 'failed'),
        ('user:olivia', 'tenant.delete', 'tenant:back', '{organization:acme,division:emea,tenant:back}', 'success');
    `);
    expect(await migrateAdmin(db)).toBe(ADMIN_MIGRATIONS.length - 1);
    expect(await registry(db)).toEqual([
      { kind: 'division', id: 'emea', organization_id: 'acme', retired: false },
      { kind: 'division', id: 'old-d', organization_id: 'acme', retired: true },
      { kind: 'organization', id: 'acme', organization_id: 'acme', retired: false },
      { kind: 'organization', id: 'old-o', organization_id: 'old-o', retired: true },
      // Deleted once and live again (created before the registry existed): live.
      { kind: 'tenant', id: 'back', organization_id: 'acme', retired: false },
      { kind: 'tenant', id: 'emea-sales', organization_id: 'acme', retired: false },
      { kind: 'tenant', id: 'old-t', organization_id: 'acme', retired: true },
    ]);
    expect(await migrateAdmin(db)).toBe(0);
  });

  it('never forgets an id and never revives a retired one', async () => {
    const db = await openDb({});
    closers.push(() => db.close());
    await migrateAdmin(db);
    await db.exec(`insert into admin_node_ids (kind, id, organization_id, retired_at) values ('tenant', 'gone', 'acme', now()), ('tenant', 'live', 'acme', null)`);
    await expect(db.query(`update admin_node_ids set retired_at = null where id = 'gone'`)).rejects.toThrow(/never revives a retired one: UPDATE refused/);
    await expect(db.query(`update admin_node_ids set id = 'other' where id = 'live'`)).rejects.toThrow(/UPDATE refused/);
    await expect(db.query(`delete from admin_node_ids where id = 'live'`)).rejects.toThrow(/DELETE refused/);
    await expect(db.query('truncate admin_node_ids')).rejects.toThrow(/TRUNCATE refused/);
    await db.query(`update admin_node_ids set retired_at = now() where id = 'live'`);
    expect((await registry(db)).map((r) => [r.id, r.retired])).toEqual([
      ['gone', true],
      ['live', true],
    ]);
  });
});

describe('the admin API and the registry', () => {
  it('every create records its id, every delete retires it in the same change', async () => {
    const fx = await createAdminFixture();
    closers.push(() => fx.close());
    await seedTree(fx);
    expectStatus(await fx.call('olivia', 'DELETE', '/tenants/emea-support'), 200);
    expectStatus(await fx.call('olivia', 'DELETE', '/divisions/emea-south'), 200);
    const rows = await registry(fx.db);
    expect(rows.filter((r) => r.retired).map((r) => `${r.kind}:${r.id}`)).toEqual(['division:emea-south', 'tenant:emea-support']);
    expect(rows.filter((r) => !r.retired)).toHaveLength(12 - 2);
    expect(rows.find((r) => r.id === 'gx-sales')).toEqual({ kind: 'tenant', id: 'gx-sales', organization_id: 'globex', retired: false });
    // Ids are per kind: a tenant id says nothing about a division with the same id.
    expectStatus(await fx.call('olivia', 'POST', '/divisions/emea/divisions', { id: 'emea-support', name: 'Support division' }), 201);
    const again = await fx.call('olivia', 'POST', '/divisions/emea/tenants', { id: 'emea-support', name: 'Again' });
    expectStatus(again, 409);
    expect(again.body).toMatchObject({ type: 'https://tiergate.dev/problems/id-retired', title: 'Id retired' });
    // A refusal leaves nothing behind: no row, no tuple, no success entry.
    expect((await fx.db.query(`select 1 from admin_tenants where id = 'emea-support'`)).rows).toEqual([]);
    expect((await fx.store.client.read({ object: 'tenant:emea-support' })).tuples).toEqual([]);
    expect((await auditRows(fx.db)).filter((e) => e.target === 'tenant:emea-support' && e.action === 'tenant.create' && e.outcome !== 'success')).toEqual([]);
  });

  it('a foreign-key refusal is a 409 with its reason, and nothing is half-written', async () => {
    // A writer that bypasses the locks removes the parent division just before the
    // tenant row is written: PostgreSQL refuses the row (23503).
    let sabotage: ((sql: string, tx: Queryable) => Promise<void>) | undefined;
    const wrapDb = (db: Db): Db => ({
      kind: db.kind,
      query: (sql, params) => db.query(sql, params),
      exec: (sql) => db.exec(sql),
      close: () => db.close(),
      transaction: (fn) =>
        db.transaction((tx) =>
          fn({
            async query(sql, params) {
              await sabotage?.(sql, tx);
              return tx.query(sql, params);
            },
            exec: (sql) => tx.exec(sql),
          }),
        ),
    } as Db);
    const fx = await createAdminFixture({ wrapDb });
    closers.push(() => fx.close());
    expectStatus(await fx.call('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] }), 201);
    expectStatus(await fx.call('olivia', 'POST', '/organizations/acme/divisions', { id: 'emea', name: 'EMEA' }), 201);
    sabotage = async (sql, tx) => {
      if (sql.startsWith('insert into admin_tenants')) {
        sabotage = undefined;
        await tx.query(`delete from admin_divisions where id = 'emea'`);
      }
    };
    const res = await fx.call('olivia', 'POST', '/divisions/emea/tenants', { id: 'emea-sales', name: 'Sales' });
    expectStatus(res, 409);
    expect(res.contentType).toContain('application/problem+json');
    expect(res.body).toMatchObject({
      type: 'https://tiergate.dev/problems/conflict',
      detail: 'a node this change refers to was deleted, or another node still refers to it (admin_tenants_division_id_fkey); nothing was changed',
    });
    expect((await fx.db.query(`select id from admin_divisions`)).rows).toEqual([{ id: 'emea' }]);
    expect((await fx.db.query(`select id from admin_tenants`)).rows).toEqual([]);
    expect((await fx.store.client.read({ object: 'tenant:emea-sales' })).tuples).toEqual([]);
    expect((await registry(fx.db)).map((r) => r.id)).toEqual(['emea', 'acme']);
  });
});
