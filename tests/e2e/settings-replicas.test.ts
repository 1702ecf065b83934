// Settings reach the upstream on every replica: two gateway processes sharing one
// Redis, one OpenFGA store, one tenant service and one PostgreSQL. A change of an
// organization's settings document, made through replica A's admin API, is in the
// `settings` claim of the very next request of every tenant below, through either
// replica: the admin API bumps the node's settings-version (and waits for every replica
// to apply it) before it answers, and each gateway's cached claim is keyed by the
// versions of the tenant's whole path. The tenant service shows what it received: the
// report's timezone, and agents refused beyond quota.agents. The gateway's own edge
// policies (security.ip_allowlist) change on the next request the same way.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../../src/stack/postgres-server.js';
import { startReplicaPair, type Replica, type ReplicaPair } from '../support/cache-replicas.js';
import { useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';

useCleanup();

let pg: ThrowawayPostgres;
let p: ReplicaPair;
let A: Replica;
let B: Replica;

// acme ─ d1 ─ d1a ─ t-deep
//      │     └ t-mid
//      └ d2 ─ t-other
const TENANTS = ['t-deep', 't-mid', 't-other'];

beforeAll(async () => {
  pg = await startThrowawayPostgres();
  p = await startReplicaPair({ platformAdmin: 'pat', databaseUrl: pg.url });
  ({ A, B } = p);
  await p.adminOk('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await p.adminOk('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await p.adminOk('olivia', 'POST', '/organizations/acme/divisions', { id: 'd2', name: 'D2' });
  await p.adminOk('olivia', 'POST', '/divisions/d1/divisions', { id: 'd1a', name: 'D1a' });
  await p.adminOk('olivia', 'POST', '/divisions/d1a/tenants', { id: 't-deep', name: 'Deep' });
  await p.adminOk('olivia', 'POST', '/divisions/d1/tenants', { id: 't-mid', name: 'Mid' });
  await p.adminOk('olivia', 'POST', '/divisions/d2/tenants', { id: 't-other', name: 'Other' });
});

afterAll(async () => {
  await p?.stop();
  pg?.stop();
});

async function timezoneSeen(r: Replica, tenant: string): Promise<string> {
  const res = await p.get(r, 'olivia', `/api/v1/tenants/${tenant}/reports/summary`);
  expect(res.status, res.text).toBe(200);
  return (res.body as { timezone: string }).timezone;
}

describe('settings across two gateway replicas', () => {
  it('an organization setting reaches the upstream for every tenant below on the next request, on both replicas', async () => {
    // Warm both replicas' claims (and assertions) at the default.
    for (let i = 0; i < 2; i++) for (const r of [A, B]) for (const t of TENANTS) expect(await timezoneSeen(r, t)).toBe('UTC');

    await p.adminOk('olivia', 'PUT', '/organizations/acme/settings/document/timezone', { set: 'Europe/Berlin' });
    for (const r of [B, A]) for (const t of TENANTS) expect(await timezoneSeen(r, t), `${r.name} ${t}`).toBe('Europe/Berlin');

    // A division's own value wins below it, at once, and only there.
    await p.adminOk('olivia', 'PUT', '/divisions/d1a/settings/document/timezone', { set: 'Asia/Tokyo' });
    expect(await timezoneSeen(B, 't-deep')).toBe('Asia/Tokyo');
    expect(await timezoneSeen(B, 't-mid')).toBe('Europe/Berlin');

    // A lock above makes it void, on the next request.
    await p.adminOk('olivia', 'PUT', '/organizations/acme/settings/document/timezone', { set: 'America/New_York', lock: true });
    for (const r of [B, A]) for (const t of TENANTS) expect(await timezoneSeen(r, t), `${r.name} ${t}`).toBe('America/New_York');
  });

  it("a tenant moved under another division gets that division's settings on the next request, on both replicas", async () => {
    await p.adminOk('olivia', 'DELETE', '/organizations/acme/settings/document/timezone');
    await p.adminOk('olivia', 'PUT', '/divisions/d2/settings/document/timezone', { set: 'Asia/Kolkata' });
    // Warm both replicas' claims for t-mid under d1 (no value of its own: the default).
    for (let i = 0; i < 2; i++) for (const r of [A, B]) expect(await timezoneSeen(r, 't-mid')).toBe('UTC');

    await p.adminOk('olivia', 'POST', '/tenants/t-mid/move', { parent: 'division:d2' });
    for (const r of [B, A]) expect(await timezoneSeen(r, 't-mid'), r.name).toBe('Asia/Kolkata');

    // And back: d1a's own value applies to a tenant moved beneath it.
    await p.adminOk('olivia', 'POST', '/tenants/t-mid/move', { parent: 'division:d1a' });
    for (const r of [A, B]) expect(await timezoneSeen(r, 't-mid'), r.name).toBe('Asia/Tokyo');
    // Home again, under d1, which sets nothing: the default.
    await p.adminOk('olivia', 'POST', '/tenants/t-mid/move', { parent: 'division:d1' });
    for (const r of [B, A]) expect(await timezoneSeen(r, 't-mid'), r.name).toBe('UTC');
  });

  it('an allowlist changed through the admin API holds on the next request, on both replicas', async () => {
    // The test connects straight from 127.0.0.1: no trusted proxy, the peer is the client.
    for (const r of [A, B]) expect((await p.get(r, 'olivia', '/api/v1/tenants/t-deep/reports/summary')).status).toBe(200);
    await p.adminOk('olivia', 'PUT', '/organizations/acme/settings/document/security.ip_allowlist', { set: ['10.0.0.0/8'] });
    for (const r of [B, A]) {
      for (const t of TENANTS) {
        const res = await p.get(r, 'olivia', `/api/v1/tenants/${t}/reports/summary`);
        expect(res.status, `${r.name} ${t}`).toBe(403);
        expect(res.body).toMatchObject({ type: 'https://tiergate.dev/problems/ip-not-allowed', policy: 'security.ip_allowlist' });
      }
    }
    // A division narrows to the loopback network: still refused, it is not inside the organization's list.
    await p.adminOk('olivia', 'PUT', '/divisions/d1a/settings/document/security.ip_allowlist', { set: ['127.0.0.0/8'] });
    expect((await p.get(B, 'olivia', '/api/v1/tenants/t-deep/reports/summary')).status).toBe(403);
    // The organization lets it in: allowed again at once where the division's list admits it too.
    await p.adminOk('olivia', 'PUT', '/organizations/acme/settings/document/security.ip_allowlist', { set: ['10.0.0.0/8', '127.0.0.1'] });
    for (const r of [B, A]) expect((await p.get(r, 'olivia', '/api/v1/tenants/t-deep/reports/summary')).status, r.name).toBe(200);
    await p.adminOk('olivia', 'DELETE', '/organizations/acme/settings/document/security.ip_allowlist');
    await p.adminOk('olivia', 'DELETE', '/divisions/d1a/settings/document/security.ip_allowlist');
    for (const r of [B, A]) for (const t of TENANTS) expect((await p.get(r, 'olivia', `/api/v1/tenants/${t}/reports/summary`)).status).toBe(200);
  });

  it('the tenant service refuses an agent beyond quota.agents, naming where it was set', async () => {
    const create = (r: Replica, agentNo: string) =>
      p.auth('olivia').then((auth) => call(r.url, 'POST', '/api/v1/tenants/t-mid/agents', { auth, body: { agentNo, name: agentNo } }));
    expect((await create(B, '1')).status).toBe(201);
    expect((await create(A, '2')).status).toBe(201);
    await p.adminOk('olivia', 'PUT', '/divisions/d1/settings/document/quota.agents', { set: 2 });
    const refused = await create(B, '3');
    expect(refused.status, refused.text).toBe(409);
    expect(refused.body).toMatchObject({
      type: 'https://tiergate.dev/problems/quota-exceeded',
      quota: 'quota.agents',
      limit: 2,
      setBy: 'division:d1',
      current: 2,
    });
    await p.adminOk('olivia', 'PUT', '/divisions/d1/settings/document/quota.agents', { set: 3 });
    expect((await create(A, '3')).status).toBe(201);
  });

  it.each([1, 2, 3, 4, 5])('on PostgreSQL, concurrent allocations never hand out more than the organization has (round %i)', async () => {
    // The organization has 10; each write below fits alone, together they do not.
    await p.adminOk('olivia', 'PUT', '/organizations/acme/settings/document/quota.agents', { set: 10 });
    for (const node of ['/divisions/d1', '/divisions/d2', '/divisions/d1a', '/tenants/t-mid', '/tenants/t-other']) {
      await p.adminOk('olivia', 'DELETE', `${node}/settings/document/quota.agents`);
    }
    const writes = [
      ['/divisions/d1/settings/document/quota.agents', 4],
      ['/divisions/d2/settings/document/quota.agents', 4],
      ['/divisions/d1a/settings/document/quota.agents', 4],
      ['/tenants/t-mid/settings/document/quota.agents', 4],
      ['/tenants/t-other/settings/document/quota.agents', 4],
    ] as const;
    const answers = await Promise.all(writes.map(([path, n]) => p.admin('olivia', 'PUT', path, { set: n })));
    expect(answers.some((a) => a.status === 200)).toBe(true);
    for (const a of answers) expect([200, 409], a.text).toContain(a.status);
    // Whatever won, every node's explicit allocations fit under its nearest allocating ancestor.
    const own = async (node: string) =>
      ((await p.adminOk('olivia', 'GET', `${node}/settings/document`)).body as { entries: Record<string, { entry: { set?: number } }> }).entries['quota.agents']?.entry
        .set;
    const [d1, d2, d1a, mid, other] = await Promise.all(['/divisions/d1', '/divisions/d2', '/divisions/d1a', '/tenants/t-mid', '/tenants/t-other'].map(own));
    const sum = (...xs: Array<number | undefined>) => xs.reduce<number>((t, x) => t + (x ?? 0), 0);
    // The organization's nearest allocating descendants, in each division's subtree.
    const d1Share = d1 ?? sum(d1a, mid);
    const d2Share = d2 ?? other ?? 0;
    expect(d1Share + d2Share, JSON.stringify({ d1, d2, d1a, mid, other })).toBeLessThanOrEqual(10);
    if (d1 !== undefined) expect(sum(d1a, mid)).toBeLessThanOrEqual(d1);
    if (d2 !== undefined) expect(sum(other)).toBeLessThanOrEqual(d2);
    expect(answers.filter((a) => a.status === 409).length).toBeGreaterThan(0);
  });
});
