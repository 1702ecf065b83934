// The start-time comparison and the reconcile repair against a real OpenFGA and PGlite,
// at a size where OpenFGA's Read pages (100 tuples a page) and the repair's batches matter.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateAdmin } from '../../src/admin/store.js';
import { openDb, type Db } from '../../src/db/index.js';
import { applyRepair, compareWithDatabase, startCheck } from '../../src/admin/agreement.js';
import { createTestStore, type TestStore } from '../support/fga.js';

const DIVISIONS = 100;
const TENANTS = 3000;
let db: Db;
let store: TestStore;

beforeAll(async () => {
  [db, store] = await Promise.all([openDb({}), createTestStore({ platformAdmins: ['ops'] })]);
  await migrateAdmin(db);
  await db.query("insert into admin_organizations (id, name) values ('acme', 'Acme')");
  // d0 … d99: d0 at the top, every other one under the one before it.
  await db.query(
    `insert into admin_divisions (id, name, organization_id, parent_division_id)
     select 'd' || i, 'D' || i, 'acme', case when i = 0 then null else 'd' || (i - 1) end from generate_series(0, $1::int - 1) i`,
    [DIVISIONS],
  );
  await db.query(`insert into admin_tenants (id, name, division_id) select 't' || i, 'T' || i, 'd' || (i % $2::int) from generate_series(0, $1::int - 1) i`, [
    TENANTS,
    DIVISIONS,
  ]);
});

afterAll(async () => {
  await db?.close();
});

describe('the database and OpenFGA, thousands of nodes', () => {
  const links = 1 + DIVISIONS + (DIVISIONS - 1) + TENANTS;

  it('an empty store lacks every link; the refusal says the roles are lost', async () => {
    const c = await compareWithDatabase(db, store.client);
    expect(c.nodes).toBe(1 + DIVISIONS + TENANTS);
    expect(c.differences).toHaveLength(links);
    expect(c.differences.every((d) => d.kind === 'missing_link')).toBe(true);
    const sentence = await startCheck({ db, client: store.client, storeName: 'tiergate', createdStore: true });
    expect(sentence).toContain(`lacks ${links} structural links the database has`);
    expect(sentence).toContain('its role grants are lost');
  });

  it('the repair writes them in batches of 100, each audited; then both sides agree, read across many pages, in seconds', async () => {
    const before = await compareWithDatabase(db, store.client);
    const result = await applyRepair(db, store.client, before.differences, 'tiergate');
    expect(result).toMatchObject({ written: links, deleted: 0 });
    expect(result.batches.every((b) => b.writes.length + b.deletes.length <= 100)).toBe(true);
    const audit = await db.query<{ n: string }>("select count(*) as n from admin_audit where actor = 'system:reconcile' and action = 'reconcile.apply'");
    expect(Number(audit.rows[0]!.n)).toBe(result.batches.length);

    const started = performance.now();
    const after = await compareWithDatabase(db, store.client);
    const seconds = (performance.now() - started) / 1000;
    expect(after).toEqual({ differences: [], nodes: 1 + DIVISIONS + TENANTS, nodeTuples: links });
    expect(seconds).toBeLessThan(20);
    expect(await startCheck({ db, client: store.client, storeName: 'tiergate', createdStore: false })).toBeUndefined();
  });

  it('finds one moved tenant and one grant on a missing node among them, and repairs exactly those', async () => {
    await store.client.write({
      deletes: [{ user: 'division:d7', relation: 'division', object: 'tenant:t2507' }],
      writes: [
        { user: 'division:d8', relation: 'division', object: 'tenant:t2507' },
        { user: 'user:mallory', relation: 'member', object: 'tenant:t9999' },
      ],
    });
    const c = await compareWithDatabase(db, store.client);
    expect(c.differences).toEqual([
      { kind: 'missing_link', tuple: { user: 'division:d7', relation: 'division', object: 'tenant:t2507' } },
      { kind: 'wrong_link', tuple: { user: 'division:d8', relation: 'division', object: 'tenant:t2507' } },
      { kind: 'orphan_grant', tuple: { user: 'user:mallory', relation: 'member', object: 'tenant:t9999' } },
    ]);
    const result = await applyRepair(db, store.client, c.differences, 'tiergate');
    expect(result).toMatchObject({ written: 1, deleted: 2 });
    expect((await compareWithDatabase(db, store.client)).differences).toEqual([]);
  });
});
