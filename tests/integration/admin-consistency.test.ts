// PostgreSQL and OpenFGA never disagree. OpenFGA is really stopped at the moment
// between the database write and the OpenFGA write (this file runs its own
// OpenFGA servers for that), and a database commit really fails after OpenFGA
// accepted (then the OpenFGA change must be reversed).
import { afterAll, describe, expect, it } from 'vitest';
import type { Db, Queryable } from '../../src/db/index.js';
import { createFgaClient } from '../../src/fga/client.js';
import { startOpenFga, type OpenFgaServer } from '../../src/stack/openfga-server.js';
import { freePort } from '../../src/stack/ports.js';
import { auditRows, createAdminFixture, expectStatus, type AdminFixture } from '../support/admin-fixture.js';
import { createTestStore } from '../support/fga.js';

/**
 * The app's database with a trap: `beforeQuery` runs before each statement inside
 * a transaction (to stop OpenFGA right after the row is written), and
 * `failCommit` makes the transaction fail after its body succeeded — i.e. after
 * the OpenFGA write — so the commit does not happen.
 */
interface Trap {
  beforeQuery?: (sql: string) => Promise<void>;
  failCommit?: boolean;
}
function trapped(db: Db, trap: Trap): Db {
  const wrapTx = (tx: Queryable): Queryable => ({
    async query(sql, params) {
      await trap.beforeQuery?.(sql);
      return tx.query(sql, params);
    },
    exec: (sql) => tx.exec(sql),
  });
  return {
    kind: db.kind,
    query: (sql, params) => db.query(sql, params),
    exec: (sql) => db.exec(sql),
    close: () => db.close(),
    transaction: (fn) =>
      db.transaction(async (tx) => {
        const out = await fn(wrapTx(tx));
        if (trap.failCommit) throw new Error('simulated commit failure');
        return out;
      }),
  } as Db;
}

const servers: OpenFgaServer[] = [];
const fixtures: AdminFixture[] = [];
afterAll(async () => {
  await Promise.all(fixtures.map((f) => f.close()));
  await Promise.all(servers.map((s) => s.stop()));
});

/** A fixture on its own OpenFGA server, with acme/emea/emea-sales created while OpenFGA is up. */
async function isolated(trap: Trap): Promise<{ fx: AdminFixture; server: OpenFgaServer }> {
  const server = await startOpenFga();
  servers.push(server);
  const store = await createTestStore({ apiUrl: server.apiUrl, platformAdmins: ['pat'] });
  const fx = await createAdminFixture({ store, wrapDb: (db) => trapped(db, trap) });
  fixtures.push(fx);
  expectStatus(await fx.call('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] }), 201);
  expectStatus(await fx.call('olivia', 'POST', '/organizations/acme/divisions', { id: 'emea', name: 'EMEA' }), 201);
  expectStatus(await fx.call('olivia', 'POST', '/organizations/acme/divisions', { id: 'apac', name: 'APAC' }), 201);
  expectStatus(await fx.call('olivia', 'POST', '/divisions/emea/tenants', { id: 'emea-sales', name: 'EMEA Sales' }), 201);
  fx.invalidator.take();
  return { fx, server };
}

async function rows(db: Db, sql: string, params: unknown[] = []): Promise<unknown[]> {
  return (await db.query(sql, params)).rows;
}

describe('OpenFGA stops between the database write and the OpenFGA write', () => {
  it('create: 503 problem, no row, no cache invalidation, a failed audit entry', async () => {
    const trap: Trap = {};
    const { fx, server } = await isolated(trap);
    let stopped = false;
    trap.beforeQuery = async (sql) => {
      if (!stopped && /insert into admin_divisions/.test(sql)) {
        stopped = true;
        await server.stop(); // the row is about to be written; OpenFGA is gone before its write
      }
    };
    const res = await fx.call('olivia', 'POST', '/divisions/emea/divisions', { id: 'emea-west', name: 'EMEA West' });
    expect(stopped).toBe(true);
    expectStatus(res, 503);
    expect(res.contentType).toBe('application/problem+json');
    expect(res.body).toMatchObject({ type: 'https://tiergate.dev/problems/authorization-engine-unavailable', status: 503 });
    expect(await rows(fx.db, 'select id from admin_divisions where id = $1', ['emea-west'])).toEqual([]);
    expect(fx.invalidator.take()).toEqual([]);
    const audit = await auditRows(fx.db);
    expect(audit.filter((e) => e.target === 'division:emea-west')).toEqual([
      expect.objectContaining({ action: 'division.create', outcome: 'failed', scope: ['organization:acme', 'division:emea', 'division:emea-west'] }),
    ]);
  });

  it('move: 503 problem, the tenant stays under its old division in the database', async () => {
    const trap: Trap = {};
    const { fx, server } = await isolated(trap);
    let stopped = false;
    trap.beforeQuery = async (sql) => {
      if (!stopped && /update admin_tenants set division_id/.test(sql)) {
        stopped = true;
        await server.stop();
      }
    };
    const res = await fx.call('olivia', 'POST', '/tenants/emea-sales/move', { parent: 'division:apac' });
    expect(stopped).toBe(true);
    expectStatus(res, 503);
    expect(await rows(fx.db, 'select division_id from admin_tenants where id = $1', ['emea-sales'])).toEqual([{ division_id: 'emea' }]);
    expect(fx.invalidator.take()).toEqual([]);
    expect((await auditRows(fx.db)).at(-1)).toMatchObject({ action: 'tenant.move', outcome: 'failed' });
  });

  it('an OpenFGA that is not there at all: 503 and nothing written', async () => {
    const port = await freePort(); // nothing listens here
    const fx = await createAdminFixture({ fga: createFgaClient({ apiUrl: `http://127.0.0.1:${port}`, storeId: '01ARZ3NDEKTSV4RRFFQ69G5FAV', timeoutMs: 1000 }) });
    fixtures.push(fx);
    const res = await fx.call('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
    expectStatus(res, 503);
    expect(await rows(fx.db, 'select id from admin_organizations')).toEqual([]);
    expect(await auditRows(fx.db)).toEqual([expect.objectContaining({ action: 'organization.create', outcome: 'failed' })]);
  });
});

describe('the database commit fails after OpenFGA accepted', () => {
  const trap: Trap = {};
  let fx: AdminFixture;

  it('create: the OpenFGA links are removed again and the caches told', async () => {
    fx = await createAdminFixture({ wrapDb: (db) => trapped(db, trap) });
    fixtures.push(fx);
    expectStatus(await fx.call('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] }), 201);
    expectStatus(await fx.call('olivia', 'POST', '/organizations/acme/divisions', { id: 'emea', name: 'EMEA' }), 201);
    fx.invalidator.take();

    trap.failCommit = true;
    const res = await fx.call('olivia', 'POST', '/divisions/emea/divisions', { id: 'emea-west', name: 'EMEA West' });
    trap.failCommit = false;
    expectStatus(res, 500);
    expect(await rows(fx.db, 'select id from admin_divisions where id = $1', ['emea-west'])).toEqual([]);
    expect((await fx.store.client.read({ object: 'division:emea-west' })).tuples).toEqual([]);
    const links = [
      { user: 'organization:acme', relation: 'organization', object: 'division:emea-west' },
      { user: 'division:emea', relation: 'parent', object: 'division:emea-west' },
    ];
    // Only the reversal reached the caches (the forward write is never bumped). The forward
    // write was announced, and is never confirmed; the reversal is not announced: the
    // ReadChanges poller bumps both again.
    expect(fx.invalidator.announced).toEqual([{ writes: links, deletes: [] }]);
    expect(fx.invalidator.handles).toEqual([undefined]);
    expect(fx.invalidator.take()).toEqual([{ writes: [], deletes: links }]);
    expect((await auditRows(fx.db)).at(-1)).toMatchObject({ action: 'division.create', target: 'division:emea-west', outcome: 'failed' });
    // The success entry written inside the transaction was rolled back with it.
    expect((await auditRows(fx.db)).filter((e) => e.target === 'division:emea-west' && e.outcome === 'success')).toEqual([]);
  });

  it('move: the old parent link is restored and the new one removed', async () => {
    expectStatus(await fx.call('olivia', 'POST', '/organizations/acme/divisions', { id: 'apac', name: 'APAC' }), 201);
    expectStatus(await fx.call('olivia', 'POST', '/divisions/emea/tenants', { id: 'emea-sales', name: 'EMEA Sales' }), 201);
    fx.invalidator.take();
    trap.failCommit = true;
    const res = await fx.call('olivia', 'POST', '/tenants/emea-sales/move', { parent: 'division:apac' });
    trap.failCommit = false;
    expectStatus(res, 500);
    const stored = (await fx.store.client.read({ object: 'tenant:emea-sales' })).tuples.map(({ key: { user, relation, object } }) => ({ user, relation, object }));
    expect(stored).toEqual([{ user: 'division:emea', relation: 'division', object: 'tenant:emea-sales' }]);
    expect(await rows(fx.db, 'select division_id from admin_tenants where id = $1', ['emea-sales'])).toEqual([{ division_id: 'emea' }]);
    expect(fx.invalidator.take()).toEqual([
      {
        writes: [{ user: 'division:emea', relation: 'division', object: 'tenant:emea-sales' }],
        deletes: [{ user: 'division:apac', relation: 'division', object: 'tenant:emea-sales' }],
      },
    ]);
  });
});
