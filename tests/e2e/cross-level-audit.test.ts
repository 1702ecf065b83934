// The cross-level access audit over a real gateway, tenant service and OpenFGA: who
// reached a tenant through a role held above it (organization or division admin), and
// every access through a break-glass grant.
//
//   platform admin pat
//   organization:acme (admin olivia; admin mia, also tenant admin of acme-sales)
//     division:emea (admin dana; admin max, also tenant user of acme-sales)
//       tenant:acme-sales   (admin tom, member uma)
//     division:apac
//       tenant:apac-sales
//   organization:globex (its admin gina removed; break-glass admin bea)
//     division:gx
//       tenant:gx-sales
import { beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import { useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { adminOk, startTestStack, type TestStack } from '../support/test-stack.js';
import { inBatches } from '../../load/lib/concurrency.js';
import { sleep, waitFor } from '../support/wait.js';
import type { CrossLevelRow } from '../../src/admin/cross-level.js';

useCleanup();

/** A row of the admin API's answer: the store's row as JSON. */
type Row = Omit<CrossLevelRow, 'id'>;

let s: TestStack;

async function api(sub: string, method: string, path: string, body?: unknown): Promise<number> {
  const res = await call(s.gatewayUrl, method, `/api/v1${path}`, { auth: await s.authHeader(sub), ...(body ? { body } : {}) });
  return res.status;
}

async function fromAbove(sub: string, tenant: string, query = ''): Promise<{ status: number; items: Row[]; body: unknown; contentType: string }> {
  const res = await call(s.gatewayUrl, 'GET', `/admin/v1/tenants/${tenant}/access-from-above${query}`, { auth: await s.authHeader(sub) });
  return { status: res.status, items: (res.body as { items?: Row[] }).items ?? [], body: res.body, contentType: res.contentType };
}

beforeAll(async () => {
  // The test client is the ingress asking forward-auth, so it is a trusted proxy.
  s = await startTestStack({ platformAdmins: ['pat'], env: { TRUSTED_PROXIES: '127.0.0.1/32' } });
  await adminOk(s, 'pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia', 'mia'] });
  await adminOk(s, 'olivia', 'POST', '/organizations/acme/divisions', { id: 'emea', name: 'EMEA' });
  await adminOk(s, 'olivia', 'POST', '/organizations/acme/divisions', { id: 'apac', name: 'APAC' });
  await adminOk(s, 'olivia', 'POST', '/divisions/emea/tenants', { id: 'acme-sales', name: 'Sales' });
  await adminOk(s, 'olivia', 'POST', '/divisions/apac/tenants', { id: 'apac-sales', name: 'APAC Sales' });
  await adminOk(s, 'olivia', 'PUT', '/divisions/emea/roles/admin/dana');
  await adminOk(s, 'olivia', 'PUT', '/divisions/emea/roles/admin/max');
  await adminOk(s, 'olivia', 'PUT', '/tenants/acme-sales/roles/admin/tom');
  await adminOk(s, 'olivia', 'PUT', '/tenants/acme-sales/roles/admin/mia');
  await adminOk(s, 'olivia', 'PUT', '/tenants/acme-sales/roles/member/uma');
  await adminOk(s, 'olivia', 'PUT', '/tenants/acme-sales/roles/member/max');
  // An organization left without admins (its only admin's tuple removed straight from
  // OpenFGA), entered again through break-glass.
  await adminOk(s, 'pat', 'POST', '/organizations', { id: 'globex', name: 'Globex', admins: ['gina'] });
  await adminOk(s, 'gina', 'POST', '/organizations/globex/divisions', { id: 'gx', name: 'GX' });
  await adminOk(s, 'gina', 'POST', '/divisions/gx/tenants', { id: 'gx-sales', name: 'GX Sales' });
  await s.store.client.write({ deletes: [{ user: 'user:gina', relation: 'admin', object: 'organization:globex' }] });
  await adminOk(s, 'pat', 'POST', '/organizations/globex/break-glass', { user: 'bea', reason: 'the last admin left the company' });
});

describe('accesses from above are recorded per hour, visible to the tenant and above', () => {
  it('records organization and division admins in the tenant, not tenant admins or users, 200 requests as one row', async () => {
    // Keep the burst inside one hour when the clock allows.
    const intoHour = Date.now() % 3_600_000;
    if (intoHour > 3_570_000) await sleep(3_600_500 - intoHour);

    const N = 200;
    const olivia = await inBatches(Array.from({ length: N }, () => () => api('olivia', 'GET', '/tenants/acme-sales/agents')), 8, (run) => run());
    expect(olivia.filter((st) => st === 200)).toHaveLength(N);
    expect(await api('dana', 'GET', '/tenants/acme-sales/agents')).toBe(200);
    expect(await api('tom', 'GET', '/tenants/acme-sales/agents')).toBe(200);
    expect(await api('uma', 'GET', '/tenants/acme-sales/agents')).toBe(200);
    // Holds a role above AND on the tenant: the tenant role suffices, nothing recorded.
    expect(await api('mia', 'GET', '/tenants/acme-sales/agents')).toBe(200);
    // A tenant user who is also division admin: reading agents needs only the tenant
    // role; creating a queue needs the division admin role, so that one is recorded.
    expect(await api('max', 'GET', '/tenants/acme-sales/agents')).toBe(200);
    expect(await api('max', 'POST', '/tenants/acme-sales/queues', { queueNo: '1000', name: 'Sales' })).toBe(201);
    // A tenant resource (agent:acme-sales/2000, linked to its tenant by a contextual tuple).
    expect(await api('tom', 'POST', '/tenants/acme-sales/agents', { agentNo: '2000', name: 'Ada' })).toBe(201);
    expect(await api('uma', 'GET', '/tenants/acme-sales/agents/2000')).toBe(200);
    expect(await api('max', 'GET', '/tenants/acme-sales/agents/2000')).toBe(200);
    expect(await api('dana', 'GET', '/tenants/acme-sales/agents/2000')).toBe(200);
    // Olivia elsewhere: recorded on apac-sales, never shown for acme-sales.
    expect(await api('olivia', 'GET', '/tenants/apac-sales/agents')).toBe(200);

    let items: Row[] = [];
    const seen = await waitFor(
      async () => {
        items = (await fromAbove('tom', 'acme-sales')).items;
        const o = items.find((r) => r.subject === 'user:olivia');
        return o?.count === N && items.filter((r) => r.subject === 'user:dana').length === 2 && items.some((r) => r.subject === 'user:max');
      },
      20_000,
      200,
    );
    expect(seen, JSON.stringify(items)).toBe(true);

    const o = items.filter((r) => r.subject === 'user:olivia');
    expect(o).toHaveLength(1);
    expect(o[0]).toMatchObject({
      node: 'tenant:acme-sales',
      roleNode: 'organization:acme',
      role: 'admin',
      breakGlass: false,
      rule: 'agents.list',
      permission: 'can_read_operational',
      method: 'GET',
      route: '/api/v1/tenants/{tenantId}/agents',
      count: N,
    });
    expect(Date.parse(o[0]!.firstSeen)).toBeLessThanOrEqual(Date.parse(o[0]!.lastSeen));
    expect(Date.parse(o[0]!.hour)).toBeLessThanOrEqual(Date.parse(o[0]!.firstSeen));

    const d = items.filter((r) => r.subject === 'user:dana');
    expect(d.map((r) => [r.rule, r.roleNode, r.role, r.count, r.route]).sort()).toEqual([
      ['agents.list', 'division:emea', 'admin', 1, '/api/v1/tenants/{tenantId}/agents'],
      ['agents.read', 'division:emea', 'admin', 1, '/api/v1/tenants/{tenantId}/agents/{agentNo}'],
    ]);

    const m = items.filter((r) => r.subject === 'user:max');
    expect(m).toEqual([expect.objectContaining({ roleNode: 'division:emea', rule: 'queues.create', method: 'POST', permission: 'can_manage_resources' })]);

    const subjects = new Set(items.map((r) => r.subject));
    for (const notFromAbove of ['user:tom', 'user:uma', 'user:mia']) expect(subjects.has(notFromAbove)).toBe(false);
    // Nothing about another tenant.
    expect(items.every((r) => r.node === 'tenant:acme-sales')).toBe(true);

    // The same rows for the division and organization admins above the tenant.
    expect((await fromAbove('dana', 'acme-sales')).items.map((r) => r.subject).sort()).toEqual(items.map((r) => r.subject).sort());
    expect((await fromAbove('olivia', 'acme-sales')).status).toBe(200);
    // apac-sales has its own row for olivia, resolved in its own background batch.
    let apac: Row[] = [];
    const apacSeen = await waitFor(
      async () => {
        apac = (await fromAbove('olivia', 'apac-sales')).items;
        return apac.length > 0;
      },
      20_000,
      200,
    );
    expect(apacSeen, JSON.stringify(apac)).toBe(true);
    expect(apac).toEqual([
      expect.objectContaining({ subject: 'user:olivia', node: 'tenant:apac-sales', roleNode: 'organization:acme', count: 1 }),
    ]);
  });

  it('records forward-auth decisions too: an ingress asking is an access', async () => {
    const res = await call(s.gatewayUrl, 'GET', '/forward-auth/envoy/api/v1/tenants/acme-sales/queues', { auth: await s.authHeader('olivia') });
    expect(res.status, res.text).toBe(200);
    let items: Row[] = [];
    const seen = await waitFor(
      async () => {
        items = (await fromAbove('tom', 'acme-sales')).items;
        return items.some((r) => r.subject === 'user:olivia' && r.rule === 'queues.list');
      },
      20_000,
      200,
    );
    expect(seen, JSON.stringify(items)).toBe(true);
    expect(items.find((r) => r.rule === 'queues.list')).toMatchObject({ roleNode: 'organization:acme', route: '/api/v1/tenants/{tenantId}/queues', count: 1 });
  });

  it('is readable by the tenant admin for their tenant only; tenant users and strangers are refused', async () => {
    expect((await fromAbove('tom', 'acme-sales')).status).toBe(200);
    const other = await fromAbove('tom', 'apac-sales');
    expect(other.status).toBe(403);
    expect(other.contentType).toContain(PROBLEM_CONTENT_TYPE);
    expect((await fromAbove('uma', 'acme-sales')).status).toBe(403);
    expect((await fromAbove('dana', 'apac-sales')).status).toBe(403);
    expect((await fromAbove('ozzy', 'acme-sales')).status).toBe(403);
  });

  it('filters by time and pages', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await fromAbove('tom', 'acme-sales', `?since=${encodeURIComponent(future)}`)).items).toEqual([]);
    expect((await fromAbove('tom', 'acme-sales', `?until=${encodeURIComponent('2000-01-01T00:00:00Z')}`)).items).toEqual([]);
    const all = (await fromAbove('tom', 'acme-sales')).items;
    expect(all.length).toBeGreaterThanOrEqual(3);
    const first = (await fromAbove('tom', 'acme-sales', '?limit=1')).body as { items: Row[]; nextCursor: string | null };
    expect(first.items).toHaveLength(1);
    expect(first.nextCursor).not.toBeNull();
    const rest = (await fromAbove('tom', 'acme-sales', `?limit=500&cursor=${first.nextCursor}`)).items;
    expect([...first.items, ...rest]).toEqual(all);

    const bad = await fromAbove('tom', 'acme-sales', '?since=yesterday');
    expect(bad.status).toBe(422);
    expect((bad.body as { 'invalid-params': { name: string }[] })['invalid-params'].map((p) => p.name)).toEqual(['query.since']);
    expect(bad.contentType).toContain(PROBLEM_CONTENT_TYPE);
  });
});

describe('break-glass accesses', () => {
  it('are recorded always, marked break-glass, and listed for platform admins across organizations', async () => {
    expect(await api('bea', 'GET', '/tenants/gx-sales/agents')).toBe(200);
    expect(await api('bea', 'GET', '/organizations/globex/reports/summary')).toBe(200);

    let rows: Row[] = [];
    const seen = await waitFor(
      async () => {
        const res = await call(s.gatewayUrl, 'GET', '/admin/v1/break-glass/accesses', { auth: await s.authHeader('pat') });
        rows = (res.body as { items: Row[] }).items;
        return rows.length >= 2;
      },
      20_000,
      200,
    );
    expect(seen, JSON.stringify(rows)).toBe(true);
    expect(rows.map((r) => [r.subject, r.node, r.roleNode, r.breakGlass]).sort()).toEqual([
      ['user:bea', 'organization:globex', 'organization:globex', true],
      ['user:bea', 'tenant:gx-sales', 'organization:globex', true],
    ]);
    // Ordinary cross-level rows are not break-glass.
    expect(rows.some((r) => r.subject === 'user:olivia')).toBe(false);

    const byOrg = await call(s.gatewayUrl, 'GET', '/admin/v1/break-glass/accesses?organizationId=acme', { auth: await s.authHeader('pat') });
    expect(byOrg.status).toBe(200);
    expect(byOrg.body).toEqual({ items: [], nextCursor: null });

    // The tenant (its break-glass admin here) sees it too, marked.
    expect((await fromAbove('bea', 'gx-sales')).items).toEqual([
      expect.objectContaining({ subject: 'user:bea', roleNode: 'organization:globex', breakGlass: true }),
    ]);

    // Only platform admins list break-glass accesses.
    for (const sub of ['olivia', 'bea', 'tom']) {
      const res = await call(s.gatewayUrl, 'GET', '/admin/v1/break-glass/accesses', { auth: await s.authHeader(sub) });
      expect(res.status, sub).toBe(403);
    }
  });

  it('an organization admin granted the ordinary way after break-glass is not marked break-glass', async () => {
    await adminOk(s, 'bea', 'PUT', '/organizations/globex/roles/admin/gus');
    expect(await api('gus', 'GET', '/tenants/gx-sales/agents')).toBe(200);
    let items: Row[] = [];
    expect(
      await waitFor(
        async () => {
          items = (await fromAbove('bea', 'gx-sales')).items;
          return items.some((r) => r.subject === 'user:gus');
        },
        20_000,
        200,
      ),
    ).toBe(true);
    expect(items.find((r) => r.subject === 'user:gus')).toMatchObject({ roleNode: 'organization:globex', breakGlass: false });

    // bea's grant, revoked and made again through the tuples API, is ordinary from then
    // on: the tuple writes bump the organization's version, so the answer worked out
    // for bea before is not reused.
    await adminOk(s, 'gus', 'DELETE', '/organizations/globex/roles/admin/bea');
    const grant = { user: 'user:bea', relation: 'admin', object: 'organization:globex' };
    await adminOk(s, 'gus', 'POST', '/tuples', { writes: [grant], deletes: [] });
    expect(await api('bea', 'GET', '/tenants/gx-sales/queues')).toBe(200);
    expect(
      await waitFor(
        async () => {
          items = (await fromAbove('gus', 'gx-sales')).items;
          return items.some((r) => r.subject === 'user:bea' && r.rule === 'queues.list');
        },
        20_000,
        200,
      ),
    ).toBe(true);
    expect(items.find((r) => r.subject === 'user:bea' && r.rule === 'queues.list')).toMatchObject({ roleNode: 'organization:globex', breakGlass: false });
  });
});

describe('the OpenAPI document', () => {
  it('describes both endpoints', async () => {
    const res = await call(s.gatewayUrl, 'GET', '/admin/v1/openapi.json');
    expect(res.status).toBe(200);
    const paths = (res.body as { paths: Record<string, unknown> }).paths;
    expect(paths).toHaveProperty(['/tenants/{tenantId}/access-from-above']);
    expect(paths).toHaveProperty(['/break-glass/accesses']);
  });
});
