// The audit trail: one entry per change, denials and gateway refusals recorded,
// reads scoped per role (platform, organization, division subtree, tenant),
// filters and paging, and no way to edit it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordGatewayDenial } from '../../src/admin/app.js';
import { createDenialAudit, type GatewayDenial } from '../../src/admin/audit.js';
import type { Db } from '../../src/db/index.js';
import { auditRows, createAdminFixture, expectStatus, seedTree, type AdminFixture } from '../support/admin-fixture.js';

let fx: AdminFixture;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Entry {
  seq: string;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  scope: string[];
  requestId: string | null;
  detail: unknown;
  count: number;
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
    const deny = entries.find((e) => e.action === 'gateway.deny')!;
    expect(deny.detail).toEqual({
      method: 'PUT',
      path: '/api/v1/tenants/emea-sales/agents/2000',
      status: 403,
      permission: 'can_write',
      rule: '-',
      node: 'tenant:emea-sales',
      minute: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z$/),
    });
    expect(deny.count).toBe(1);
    expect(entries.filter((e) => e.action !== 'gateway.deny').every((e) => e.count === 1)).toBe(true);
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
    const res = await fx.call('olivia', 'GET', '/audit?outcome=maybe&since=yesterday&cursor=abc&limit=0&target=a%00bc');
    expectStatus(res, 422);
    expect(res.body['invalid-params'].map((p: { name: string }) => p.name).sort()).toEqual(['query.cursor', 'query.limit', 'query.outcome', 'query.since', 'query.target']);
  });
});

describe('gateway denials: one entry per principal, rule, node and minute, with its count', () => {
  const MINUTE = Date.UTC(2030, 0, 1, 12, 0);
  const denial = (over: Partial<GatewayDenial> = {}): GatewayDenial => ({
    actor: 'user:eve',
    requestId: 'req-eve-1',
    method: 'GET',
    path: '/api/v1/tenants/emea-sales/agents/2000',
    rule: 'agents.read',
    permission: 'can_read',
    object: 'agent:emea-sales/2000',
    scope: { type: 'tenant', id: 'emea-sales' },
    ...over,
  });
  const eveEntries = async () =>
    (await readAll('olivia', 'actor=eve&action=gateway.deny')).map((e) => ({
      count: e.count,
      rule: (e.detail as { rule: string }).rule,
      node: (e.detail as { node: string }).node,
      minute: (e.detail as { minute: string }).minute,
      target: e.target,
      requestId: e.requestId,
    }));

  it('two gateways counting the same key in the same minute write one entry carrying the sum of their counts', async () => {
    let clock = MINUTE + 5_000;
    const replicas = [0, 1].map(() => createDenialAudit({ db: fx.db, flushMs: 60_000, now: () => clock }));
    // The first denial each replica saw differs (object, request id); any one of them is the entry.
    for (let i = 0; i < 300; i++) {
      clock += 10;
      replicas[i % 2]!.record(denial({ requestId: `req-eve-${i}`, object: `agent:emea-sales/${2000 + (i % 7)}` }));
    }
    // Written concurrently, and one of them twice over (two flushes): still one entry.
    await Promise.all(replicas.map((r) => r.flush()));
    replicas[0]!.record(denial({ requestId: 'req-eve-late' }));
    await replicas[0]!.close();
    await replicas[1]!.close();
    const entries = await eveEntries();
    expect(entries).toEqual([
      {
        count: 301,
        rule: 'agents.read',
        node: 'tenant:emea-sales',
        minute: new Date(MINUTE).toISOString(),
        target: expect.stringMatching(/^agent:emea-sales\/200[0-6]$/),
        requestId: expect.stringMatching(/^req-eve-[01]$/),
      },
    ]);
  });

  it('another minute, another rule or another node is another entry; direct calls add to the same count', async () => {
    await recordGatewayDenial(fx.db, denial(), 4, MINUTE + 59_999);
    await recordGatewayDenial(fx.db, denial(), 2, MINUTE + 60_000);
    await recordGatewayDenial(fx.db, denial({ rule: 'agents.write', permission: 'can_write' }), 1, MINUTE + 1_000);
    await recordGatewayDenial(fx.db, denial({ scope: { type: 'tenant', id: 'emea-support' }, object: 'agent:emea-support/1' }), 3, MINUTE + 1_000);
    const entries = (await eveEntries()).map((e) => `${e.minute} ${e.rule} ${e.node} ${e.count}`).sort();
    const m0 = new Date(MINUTE).toISOString();
    const m1 = new Date(MINUTE + 60_000).toISOString();
    expect(entries).toEqual([
      `${m0} agents.read tenant:emea-sales 305`,
      `${m0} agents.read tenant:emea-support 3`,
      `${m0} agents.write tenant:emea-sales 1`,
      `${m1} agents.read tenant:emea-sales 2`,
    ]);
    // The emea-sales tenant admin sees the denials in her tenant, not those in emea-support.
    const taras = (await readAll('tara', 'actor=eve')).map((e) => (e.detail as { node: string }).node);
    expect(new Set(taras)).toEqual(new Set(['tenant:emea-sales']));
  });

  it('denials on nodes that do not exist are audited at the platform: one entry per rule and minute, whatever the ids', async () => {
    const at = MINUTE + 3 * 60_000;
    const audit = createDenialAudit({ db: fx.db, flushMs: 60_000, now: () => at });
    for (let i = 0; i < 50; i++) audit.record(denial({ actor: 'user:probe', scope: { type: 'tenant', id: `ghost-${i}` }, path: `/api/v1/tenants/ghost-${i}/agents/1` }));
    audit.record(denial({ actor: 'user:probe', scope: { type: 'division', id: 'ghost-d' } }));
    audit.record(denial({ actor: 'user:probe', scope: { type: 'organization', id: 'ghost-o' } }));
    audit.record(denial({ actor: 'user:probe', rule: 'divisions.report', scope: { type: 'organization', id: 'acme' } }));
    await audit.close();
    const seen = (entries: Entry[]) => entries.map((e) => `${(e.detail as { rule: string }).rule} ${(e.detail as { node: string }).node} ${e.count} ${e.scope.join(',')}`).sort();
    expect(seen(await readAll('pat', 'actor=probe'))).toEqual(['agents.read platform:root 52 platform:root']);
    // The organization that exists keeps its own entry, for its admins.
    expect(seen(await readAll('olivia', 'actor=probe'))).toEqual(['divisions.report organization:acme 1 organization:acme']);
  });

  it('a gateway holds at most maxKeys keys between writes and reports what it dropped', async () => {
    const lost: number[] = [];
    const audit = createDenialAudit({ db: fx.db, flushMs: 60_000, maxKeys: 2, now: () => MINUTE + 2 * 60_000, onError: (_e, n) => lost.push(n) });
    for (const id of ['emea-sales', 'emea-support', 'north-sales', 'apac-sales', 'emea-sales']) audit.record(denial({ scope: { type: 'tenant', id } }));
    await audit.close();
    expect(lost).toEqual([2]);
    const nodes = (await fx.db.query<{ node: string; count: string }>(
      "select node, count from gateway_denial_counts where actor = 'user:eve' and minute = $1::timestamptz order by node",
      [new Date(MINUTE + 2 * 60_000).toISOString()],
    )).rows.map((r) => `${r.node} ${r.count}`);
    expect(nodes).toEqual(['tenant:emea-sales 2', 'tenant:emea-support 1']);
  });

  it('writes one batch at a time: denials counted during a slow write wait for it, none is written twice or queued per flush', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let transactions = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    // The real database, with its transactions held at a gate (a slow database).
    const slow: Db = {
      ...fx.db,
      query: (sql, params) => fx.db.query(sql, params),
      exec: (sql) => fx.db.exec(sql),
      transaction: async (fn) => {
        transactions++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          await gate;
          return await fx.db.transaction(fn);
        } finally {
          inFlight--;
        }
      },
    };
    const at = MINUTE + 4 * 60_000;
    const audit = createDenialAudit({ db: slow, flushMs: 5, now: () => at });
    audit.record(denial({ actor: 'user:slowpoke' }));
    await sleep(50); // the timer fired: the first write waits at the gate
    expect(transactions).toBe(1);
    // Two groups, many timer periods apart: with a write queued per period they would be two more writes.
    for (let i = 0; i < 250; i++) audit.record(denial({ actor: 'user:slowpoke' }));
    await sleep(50);
    for (let i = 0; i < 250; i++) audit.record(denial({ actor: 'user:slowpoke' }));
    await sleep(50);
    expect(transactions).toBe(1);
    release();
    await audit.close();
    expect(maxInFlight).toBe(1);
    expect(transactions).toBe(2);
    const rows = await fx.db.query<{ count: string }>("select count from gateway_denial_counts where actor = 'user:slowpoke'");
    expect(rows.rows.map((r) => Number(r.count))).toEqual([501]);
  });

  it('counts only grow: the table refuses lowering, re-keying, deleting and truncating', async () => {
    await expect(fx.db.query("update gateway_denial_counts set count = 1 where actor = 'user:eve'")).rejects.toThrow(/only grows/);
    await expect(fx.db.query("update gateway_denial_counts set actor = 'user:mallory' where actor = 'user:eve'")).rejects.toThrow(/only grows/);
    await expect(fx.db.query('delete from gateway_denial_counts')).rejects.toThrow(/only grows/);
    await expect(fx.db.exec('truncate gateway_denial_counts')).rejects.toThrow(/only grows/);
    await expect(fx.db.query("update admin_audit set detail = '{}' where action = 'gateway.deny'")).rejects.toThrow(/append-only/);
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
