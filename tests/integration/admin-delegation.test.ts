// The delegation matrix: every role tries to grant every role at its own node, a
// child, a sibling and a parent. The model's can_assign_* decides; each cell is
// asserted on the status AND on what OpenFGA, the caches and the audit trail saw.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRows, createAdminFixture, seedTree, type AdminFixture } from '../support/admin-fixture.js';

let fx: AdminFixture;

beforeAll(async () => {
  fx = await createAdminFixture();
  await seedTree(fx);
});
afterAll(async () => {
  await fx?.close();
});

type Where = 'own' | 'child' | 'child tenant' | 'sibling' | 'parent';
type Outcome = 200 | 403 | 422;
type Row = [actor: string, role: string, where: Where, node: string | null, admin: Outcome | null, member: Outcome | null];

// null node: the cell does not exist for this role (the platform has no sibling or
// parent; a tenant has no child node). `member` exists only on tenants: 422 elsewhere.
const MATRIX: Row[] = [
  ['pat', 'platform admin', 'own', 'platform', 200, 422],
  ['pat', 'platform admin', 'child', 'organizations/acme', 403, 422],
  ['pat', 'platform admin', 'sibling', null, null, null],
  ['pat', 'platform admin', 'parent', null, null, null],

  ['olivia', 'organization admin', 'own', 'organizations/acme', 200, 422],
  ['olivia', 'organization admin', 'child', 'divisions/emea', 200, 422],
  ['olivia', 'organization admin', 'child tenant', 'tenants/apac-sales', 200, 200],
  ['olivia', 'organization admin', 'sibling', 'organizations/globex', 403, 422],
  ['olivia', 'organization admin', 'parent', 'platform', 403, 422],

  ['dana', 'division admin', 'own', 'divisions/emea', 200, 422],
  ['dana', 'division admin', 'child', 'divisions/emea-north', 200, 422],
  ['dana', 'division admin', 'child tenant', 'tenants/emea-sales', 200, 200],
  ['dana', 'division admin', 'sibling', 'divisions/apac', 403, 422],
  ['dana', 'division admin', 'parent', 'organizations/acme', 403, 422],

  ['sam', 'sub-division admin', 'own', 'divisions/emea-north', 200, 422],
  ['sam', 'sub-division admin', 'child tenant', 'tenants/north-sales', 200, 200],
  ['sam', 'sub-division admin', 'sibling', 'divisions/emea-south', 403, 422],
  ['sam', 'sub-division admin', 'parent', 'divisions/emea', 403, 422],

  ['tara', 'tenant admin', 'own', 'tenants/emea-sales', 200, 200],
  ['tara', 'tenant admin', 'child', null, null, null],
  ['tara', 'tenant admin', 'sibling', 'tenants/emea-support', 403, 403],
  ['tara', 'tenant admin', 'parent', 'divisions/emea', 403, 422],

  ['uma', 'tenant user', 'own', 'tenants/emea-sales', 403, 403],
  ['uma', 'tenant user', 'child', null, null, null],
  ['uma', 'tenant user', 'sibling', 'tenants/emea-support', 403, 403],
  ['uma', 'tenant user', 'parent', 'divisions/emea', 403, 422],
];

const objectOf = (node: string) => (node === 'platform' ? 'platform:root' : node.replace(/^(organization|division|tenant)s\//, '$1:'));

describe('delegation matrix (PUT …/roles/{role}/{userId})', () => {
  it('lists every role against every position; cells that do not exist are explicit', () => {
    const roles = new Set(MATRIX.map((r) => r[1]));
    expect([...roles]).toEqual(['platform admin', 'organization admin', 'division admin', 'sub-division admin', 'tenant admin', 'tenant user']);
    for (const role of roles) {
      const positions = MATRIX.filter((r) => r[1] === role).map((r) => r[2]);
      for (const p of ['own', 'sibling', 'parent'] as const) expect(positions).toContain(p);
      expect(positions.some((p) => p === 'child' || p === 'child tenant')).toBe(true);
    }
    // Cells without a node have no expectation; every other cell has one per granted role.
    for (const [, , , node, admin, member] of MATRIX) expect(node === null).toBe(admin === null && member === null);
  });

  const cells = MATRIX.flatMap(([actor, role, where, node, admin, member]) =>
    node === null
      ? []
      : ([
          [actor, role, where, node, 'admin', admin!],
          [actor, role, where, node, 'member', member!],
        ] as const),
  );

  it.each(cells)('%s (%s) at %s %s grants %s → %i', async (actor, _role, where, node, grant, expected) => {
    const grantee = `g-${actor}-${where.replace(' ', '-')}-${grant}`;
    const object = objectOf(node);
    const auditBefore = (await auditRows(fx.db)).length;
    const res = await fx.call(actor, 'PUT', `/${node}/roles/${grant}/${grantee}`);
    expect({ status: res.status, problem: res.status === 200 ? undefined : res.body.type }).toEqual({
      status: expected,
      problem: expected === 200 ? undefined : `https://tiergate.dev/problems/${expected === 403 ? 'forbidden' : 'invalid-request'}`,
    });
    const stored = await fx.store.client.read({ user: `user:${grantee}`, relation: grant, object });
    const audit = (await auditRows(fx.db)).slice(auditBefore);
    const tuple = { user: `user:${grantee}`, relation: grant, object };
    if (expected === 200) {
      expect(res.body).toEqual({ ...tuple, role: grant, changed: true });
      expect(stored.tuples).toHaveLength(1);
      expect(fx.invalidator.take()).toEqual([{ writes: [tuple], deletes: [] }]);
      expect(audit).toEqual([expect.objectContaining({ actor: `user:${actor}`, action: 'role.grant', target: object, outcome: 'success' })]);
    } else {
      expect(stored.tuples).toEqual([]);
      expect(fx.invalidator.take()).toEqual([]);
      if (expected === 403) {
        expect(res.body.detail).toBe(`the caller lacks can_assign_${grant} on ${object}`);
        expect(audit).toEqual([expect.objectContaining({ actor: `user:${actor}`, action: 'role.grant', target: object, outcome: 'denied' })]);
      } else {
        expect(audit).toEqual([]); // invalid input is refused before anything is attempted
      }
    }
  });
});

describe('role grants', () => {
  it('are idempotent both ways and listed from OpenFGA', async () => {
    const first = await fx.call('tara', 'PUT', '/tenants/emea-sales/roles/member/ivy');
    const second = await fx.call('tara', 'PUT', '/tenants/emea-sales/roles/member/ivy');
    expect([first.body.changed, second.body.changed]).toEqual([true, false]);
    expect(fx.invalidator.take()).toHaveLength(1);
    const list = await fx.call('tara', 'GET', '/tenants/emea-sales/roles');
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual(
      expect.arrayContaining([
        { object: 'tenant:emea-sales', role: 'member', user: 'user:ivy' },
        { object: 'tenant:emea-sales', role: 'admin', user: 'user:tara' },
        { object: 'tenant:emea-sales', role: 'member', user: 'user:uma' },
      ]),
    );
    // Structural links are not roles and are not listed.
    expect(list.body.items.every((g: { role: string }) => g.role === 'admin' || g.role === 'member')).toBe(true);
    expect((await fx.call('uma', 'GET', '/tenants/emea-sales/roles')).status).toBe(403);

    const gone = await fx.call('tara', 'DELETE', '/tenants/emea-sales/roles/member/ivy');
    const goneAgain = await fx.call('tara', 'DELETE', '/tenants/emea-sales/roles/member/ivy');
    expect([gone.body.changed, goneAgain.body.changed]).toEqual([true, false]);
    expect(fx.invalidator.take()).toEqual([{ writes: [], deletes: [{ user: 'user:ivy', relation: 'member', object: 'tenant:emea-sales' }] }]);
    expect((await fx.store.client.read({ user: 'user:ivy', relation: 'member', object: 'tenant:emea-sales' })).tuples).toEqual([]);
  });

  it('will not remove the last admin of an organization', async () => {
    const res = await fx.call('gina', 'DELETE', '/organizations/globex/roles/admin/gina');
    expect(res.status).toBe(409);
    expect((await fx.store.client.read({ user: 'user:gina', relation: 'admin', object: 'organization:globex' })).tuples).toHaveLength(1);
  });

  it('answers an unknown node like a hidden one (403), so ids cannot be probed', async () => {
    const res = await fx.call('olivia', 'PUT', '/tenants/no-such/roles/admin/x');
    expect(res.status).toBe(403);
    expect(res.body.detail).toBe('the caller lacks can_assign_admin on tenant:no-such');
  });
});
