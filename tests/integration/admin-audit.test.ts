// The audit trail: one entry per change, denials and gateway refusals recorded,
// reads scoped per role (platform, organization, division subtree, tenant),
// filters and paging, and no way to edit it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordGatewayDenial } from '../../src/admin/app.js';
import { auditRows, createAdminFixture, expectStatus, seedTree, type AdminFixture } from '../support/admin-fixture.js';

let fx: AdminFixture;

interface Entry {
  seq: string;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  scope: string[];
  requestId: string | null;
  detail: unknown;
}

/** Every entry `sub` may read, following nextCursor to the end. */
async function readAll(sub: string, query = ''): Promise<Entry[]> {
  const out: Entry[] = [];
  let cursor: string | null = null;
  do {
    const sep: string = query ? '&' : '';
    const res = await fx.call(sub, 'GET', `/audit?${query}${sep}limit=7${cursor ? `&cursor=${cursor}` : ''}`);
    expectStatus(res, 200);
    out.push(...(res.body.items as Entry[]));
    cursor = res.body.nextCursor;
  } while (cursor);
  return out;
}

beforeAll(async () => {
  fx = await createAdminFixture();
  await seedTree(fx);
});
afterAll(async () => {
  await fx?.close();
});

describe('recording', () => {
  it('has exactly one success entry per change made while seeding', async () => {
    const rows = await auditRows(fx.db);
    const success = rows.filter((r) => r.outcome === 'success').map((r) => `${r.actor} ${r.action} ${r.target}`);
    expect(success).toEqual([
      'user:pat organization.create organization:acme',
      'user:pat organization.create organization:globex',
      'user:olivia division.create division:emea',
      'user:olivia division.create division:apac',
      'user:olivia division.create division:emea-north',
      'user:olivia division.create division:emea-south',
      'user:olivia tenant.create tenant:north-sales',
      'user:olivia tenant.create tenant:emea-sales',
      'user:olivia tenant.create tenant:emea-support',
      'user:olivia tenant.create tenant:apac-sales',
      'user:gina division.create division:gx',
      'user:gina tenant.create tenant:gx-sales',
      'user:olivia role.grant division:emea',
      'user:olivia role.grant division:emea-north',
      'user:olivia role.grant tenant:emea-sales',
      'user:olivia role.grant tenant:emea-sales',
    ]);
    expect(rows.every((r) => r.request_id !== null)).toBe(true);
  });

  it('records more activity for the scoping checks below', async () => {
    expectStatus(await fx.call('dana', 'PATCH', '/tenants/emea-support', { name: 'EMEA Customer Support' }), 200);
    expectStatus(await fx.call('sam', 'POST', '/divisions/emea-north/tenants', { id: 'north-service', name: 'North Service' }), 201);
    expectStatus(await fx.call('sam', 'POST', '/divisions/emea-south/tenants', { id: 'south-x', name: 'Denied' }), 403);
    expectStatus(await fx.call('tara', 'PUT', '/tenants/emea-sales/roles/member/ivy'), 200);
    expectStatus(await fx.call('olivia', 'PUT', '/tenants/apac-sales/roles/admin/alex'), 200);
    expectStatus(await fx.call('pat', 'POST', '/tuples', { writes: [{ user: 'user:pia', relation: 'admin', object: 'platform:root' }] }), 200);
    await recordGatewayDenial(fx.db, {
      actor: 'user:uma',
      requestId: 'req-gw-1',
      method: 'PUT',
      path: '/api/v1/tenants/emea-sales/agents/2000',
      permission: 'can_write',
      object: 'agent:emea-sales/2000',
      scope: { type: 'tenant', id: 'emea-sales' },
    });
    await recordGatewayDenial(fx.db, {
      actor: 'user:tara',
      method: 'GET',
      path: '/api/v1/tenants/apac-sales/queues',
      permission: 'can_read',
      object: 'queue:apac-sales/1',
      scope: { type: 'tenant', id: 'apac-sales' },
    });
    const last = (await auditRows(fx.db)).at(-2)!;
    expect(last).toMatchObject({
      actor: 'user:uma',
      action: 'gateway.deny',
      target: 'agent:emea-sales/2000',
      outcome: 'denied',
      request_id: 'req-gw-1',
      scope: ['organization:acme', 'division:emea', 'tenant:emea-sales'],
    });
  });
});

describe('scoped reads', () => {
  it('platform admin: platform-level entries and organization creation, nothing inside an organization', async () => {
    const entries = await readAll('pat');
    expect(entries.every((e) => e.scope.includes('platform:root'))).toBe(true);
    const actions = new Set(entries.map((e) => `${e.action} ${e.target}`));
    expect(actions).toEqual(
      new Set(['organization.create organization:acme', 'organization.create organization:globex', 'tuples.write platform:root', 'tuple.write platform:root']),
    );
  });

  it('organization admin: everything in its organization, nothing of another', async () => {
    const entries = await readAll('olivia');
    expect(entries.every((e) => e.scope.includes('organization:acme'))).toBe(true);
    const targets = new Set(entries.map((e) => e.target));
    for (const t of ['organization:acme', 'division:emea', 'tenant:north-service', 'tenant:apac-sales', 'agent:emea-sales/2000', 'queue:apac-sales/1']) {
      expect(targets).toContain(t);
    }
    expect([...targets].some((t) => /gx|globex/.test(t))).toBe(false);
  });

  it('division admin: only its subtree (not the sibling division, not the organization)', async () => {
    const entries = await readAll('dana');
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.every((e) => e.scope.includes('division:emea'))).toBe(true);
    const targets = new Set(entries.map((e) => e.target));
    expect(targets).toContain('tenant:emea-support');
    expect(targets).toContain('tenant:north-service');
    expect(targets).toContain('agent:emea-sales/2000');
    expect(targets).not.toContain('tenant:apac-sales');
    expect(targets).not.toContain('queue:apac-sales/1');
    expect(targets).not.toContain('organization:acme');
  });

  it('sub-division admin: only its sub-division; its own denied attempt elsewhere is seen by that place\'s admins', async () => {
    const entries = await readAll('sam');
    expect(entries.every((e) => e.scope.includes('division:emea-north'))).toBe(true);
    const targets = new Set(entries.map((e) => e.target));
    expect(targets).toEqual(new Set(['division:emea-north', 'tenant:north-sales', 'tenant:north-service']));
    // Sam's own denied attempt in emea-south is visible to emea-south's admins, not to sam.
    const denied = (await readAll('dana', 'outcome=denied')).map((e) => `${e.actor} ${e.target}`);
    expect(denied).toContain('user:sam tenant:south-x');
  });

  it('tenant admin: its tenant only, including gateway denials there', async () => {
    const entries = await readAll('tara');
    expect(entries.every((e) => e.scope.includes('tenant:emea-sales'))).toBe(true);
    const kinds = entries.map((e) => `${e.action} ${e.actor}`);
    expect(kinds).toContain('gateway.deny user:uma');
    expect(kinds).toContain('role.grant user:tara');
    expect(entries.find((e) => e.action === 'gateway.deny')!.detail).toEqual({
      method: 'PUT',
      path: '/api/v1/tenants/emea-sales/agents/2000',
      status: 403,
      permission: 'can_write',
    });
  });

  it('tenant user: no audit rights at all → 403, itself recorded', async () => {
    const res = await fx.call('uma', 'GET', '/audit');
    expectStatus(res, 403);
    expect((await auditRows(fx.db)).at(-1)).toMatchObject({ actor: 'user:uma', action: 'audit.read', outcome: 'denied' });
  });
});

describe('filters and paging', () => {
  it('filters by action, actor, outcome, target, subtree and time', async () => {
    const creates = await readAll('olivia', 'action=tenant.create&outcome=success');
    expect(creates.map((e) => e.target).sort()).toEqual(['tenant:apac-sales', 'tenant:emea-sales', 'tenant:emea-support', 'tenant:north-sales', 'tenant:north-service']);
    expect((await readAll('olivia', 'action=tenant.create&outcome=denied')).map((e) => `${e.actor} ${e.target}`)).toEqual(['user:sam tenant:south-x']);
    const byDana = await readAll('olivia', 'actor=dana');
    expect(byDana.map((e) => e.action)).toEqual(['tenant.rename']);
    const denied = await readAll('olivia', 'outcome=denied');
    expect(denied.every((e) => e.outcome === 'denied')).toBe(true);
    expect(denied.map((e) => e.action)).toEqual(expect.arrayContaining(['gateway.deny', 'tenant.create']));
    expect((await readAll('olivia', 'target=tenant:emea-support')).map((e) => e.action)).toEqual(['tenant.rename', 'tenant.create']);
    const under = await readAll('olivia', 'under=division:apac');
    expect(under.every((e) => e.scope.includes('division:apac'))).toBe(true);
    expect(under.length).toBeGreaterThanOrEqual(4);
    const future = new Date(Date.now() + 60_000).toISOString();
    expect(await readAll('olivia', `since=${encodeURIComponent(future)}`)).toEqual([]);
    expect((await readAll('olivia', `until=${encodeURIComponent(future)}`)).length).toBe((await readAll('olivia')).length);
  });

  it('pages newest first without overlap or gaps', async () => {
    const all = await readAll('olivia');
    const seqs = all.map((e) => Number(e.seq));
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    expect(new Set(seqs).size).toBe(seqs.length);
    const first = await fx.call('olivia', 'GET', '/audit?limit=3');
    expect(first.body.items.map((e: Entry) => e.seq)).toEqual(all.slice(0, 3).map((e) => e.seq));
    expect(first.body.nextCursor).toBe(all[2]!.seq);
  });

  it('rejects bad filters field by field', async () => {
    const res = await fx.call('olivia', 'GET', '/audit?outcome=maybe&since=yesterday&cursor=abc&limit=0');
    expectStatus(res, 422);
    expect(res.body['invalid-params'].map((p: { name: string }) => p.name).sort()).toEqual(['query.cursor', 'query.limit', 'query.outcome', 'query.since']);
  });
});

describe('append-only', () => {
  it('offers no route to change entries and the table refuses UPDATE, DELETE and TRUNCATE', async () => {
    expectStatus(await fx.call('pat', 'DELETE', '/audit'), 404);
    expectStatus(await fx.call('pat', 'PATCH', '/audit', {}), 404);
    const before = (await auditRows(fx.db)).length;
    await expect(fx.db.query("update admin_audit set actor = 'user:mallory'")).rejects.toThrow(/append-only/);
    await expect(fx.db.query('delete from admin_audit')).rejects.toThrow(/append-only/);
    await expect(fx.db.exec('truncate admin_audit')).rejects.toThrow(/append-only/);
    expect((await auditRows(fx.db)).length).toBe(before);
  });
});
