// Hierarchical settings through the admin API, on the demo hierarchy (demo/hierarchy.yaml),
// against a real OpenFGA store and database: inherit, override, locks (409 naming the
// node), list merge with removal winning, reset, allocations (409 with the numbers),
// effective values with provenance at every node, dry runs across nested divisions,
// who may read and write what, and the audit trail.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHierarchy, type DivisionSpec } from '../../src/cli/apply.js';
import { createAdminFixture, expectStatus, type AdminFixture } from '../support/admin-fixture.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

let fx: AdminFixture;

/** Creates demo/hierarchy.yaml through the API, as `npm run apply` does. */
async function seedDemo(): Promise<void> {
  const spec = parseHierarchy(readFileSync('demo/hierarchy.yaml', 'utf8'));
  const ok = async (sub: string, method: string, path: string, body?: unknown, status = 201) => expectStatus(await fx.call(sub, method, path, body), status);
  for (const org of spec.organizations ?? []) {
    await ok('pat', 'POST', '/organizations', { id: org.id, name: org.name, admins: org.admins });
    const owner = org.admins[0]!;
    const division = async (d: DivisionSpec, parent: string) => {
      await ok(owner, 'POST', parent, { id: d.id, name: d.name });
      for (const a of d.admins ?? []) await ok(owner, 'PUT', `/divisions/${d.id}/roles/admin/${a}`, undefined, 200);
      for (const s of d.divisions ?? []) await division(s, `/divisions/${d.id}/divisions`);
      for (const t of d.tenants ?? []) {
        await ok(owner, 'POST', `/divisions/${d.id}/tenants`, { id: t.id, name: t.name });
        for (const a of t.admins ?? []) await ok(owner, 'PUT', `/tenants/${t.id}/roles/admin/${a}`, undefined, 200);
        for (const m of t.members ?? []) await ok(owner, 'PUT', `/tenants/${t.id}/roles/member/${m}`, undefined, 200);
      }
    };
    for (const d of org.divisions ?? []) await division(d, `/organizations/${org.id}/divisions`);
  }
  fx.invalidator.take();
}

beforeAll(async () => {
  fx = await createAdminFixture();
  await seedDemo();
});
afterAll(async () => {
  await fx?.close();
});

const PROBLEM = 'https://tiergate.dev/problems/';

interface Step {
  name: string;
  who: string;
  method: string;
  path: string;
  body?: unknown;
  status: number;
  expect?: Record<string, unknown>;
}

// In order: each row builds on the ones before it.
const steps: Step[] = [
  {
    name: 'organization admin sets, locks and allocates at the top',
    who: 'olivia',
    method: 'PUT',
    path: '/organizations/acme/settings/document',
    body: {
      settings: {
        'security.require_mfa': { set: true, lock: true },
        'security.ip_allowlist': { set: ['10.0.0.0/8', '192.168.0.0/16'] },
        timezone: { set: 'Europe/London' },
        'quota.agents': { set: 100 },
        'data.residency_region': { set: 'eu', lock: true },
        locale: { set: 'en-GB' },
      },
    },
    status: 200,
    expect: { node: 'organization:acme', changed: ['data.residency_region', 'locale', 'quota.agents', 'security.ip_allowlist', 'security.require_mfa', 'timezone'] },
  },
  {
    name: 'division admin overrides, removes from the inherited list, and locks the locale for its subtree',
    who: 'dana',
    method: 'PUT',
    path: '/divisions/emea/settings/document',
    body: {
      settings: {
        'security.ip_allowlist': { remove: ['192.168.0.0/16'], append: ['172.16.0.0/12'] },
        timezone: { set: 'Europe/Berlin' },
        'quota.agents': { set: 60 },
        locale: { set: 'de-DE', lock: true },
      },
    },
    status: 200,
  },
  {
    name: 'sub-division admin appends, including what the division removed (the removal wins)',
    who: 'sam',
    method: 'PUT',
    path: '/divisions/emea-north/settings/document',
    body: {
      settings: {
        'security.ip_allowlist': { append: ['192.168.0.0/16', '10.1.0.0/16'] },
        timezone: { set: 'Europe/Stockholm' },
        'quota.agents': { set: 20 },
      },
    },
    status: 200,
  },
  {
    name: 'a key the organization locked: 409 naming the organization',
    who: 'tom',
    method: 'PUT',
    path: '/tenants/acme-sales/settings/document',
    body: { settings: { 'security.require_mfa': { set: false } } },
    status: 409,
    expect: { type: `${PROBLEM}setting-locked`, key: 'security.require_mfa', lockedBy: 'organization:acme' },
  },
  {
    name: 'a key the division locked, one entry at a time: 409 naming the division',
    who: 'tom',
    method: 'PUT',
    path: '/tenants/acme-sales/settings/document/locale',
    body: { set: 'fr-FR' },
    status: 409,
    expect: { type: `${PROBLEM}setting-locked`, key: 'locale', lockedBy: 'division:emea' },
  },
  {
    name: 'a tenant allocation beyond what its division has left: 409 with the numbers',
    who: 'tom',
    method: 'PUT',
    path: '/tenants/acme-sales/settings/document/quota.agents',
    body: { set: 41 },
    status: 409,
    expect: {
      type: `${PROBLEM}allocation-exceeded`,
      key: 'quota.agents',
      node: 'division:emea',
      allocation: 60,
      allocated: 61,
      children: [
        { node: 'division:emea-north', allocation: 20 },
        { node: 'tenant:acme-sales', allocation: 41 },
      ],
    },
  },
  { name: 'the allocation that fits', who: 'tom', method: 'PUT', path: '/tenants/acme-sales/settings/document/quota.agents', body: { set: 40 }, status: 200 },
  { name: 'a tenant resets the time zone to the default', who: 'tom', method: 'PUT', path: '/tenants/acme-sales/settings/document/timezone', body: { reset: true }, status: 200 },
  {
    name: 'a division allocation beyond the organization: 409',
    who: 'olivia',
    method: 'PUT',
    path: '/divisions/apac/settings/document/quota.agents',
    body: { set: 41 },
    status: 409,
    expect: { type: `${PROBLEM}allocation-exceeded`, node: 'organization:acme', allocation: 100, allocated: 101 },
  },
  {
    name: 'a division may not shrink below what it handed out',
    who: 'dana',
    method: 'PUT',
    path: '/divisions/emea/settings/document/quota.agents',
    body: { set: 59 },
    status: 409,
    expect: { type: `${PROBLEM}allocation-exceeded`, node: 'division:emea', allocation: 59, allocated: 60 },
  },
  {
    name: 'a key only the organization and divisions may set, written by a tenant: 422',
    who: 'tom',
    method: 'PUT',
    path: '/tenants/acme-sales/settings/document/data.residency_region',
    body: { set: 'us' },
    status: 422,
    expect: { 'invalid-params': [{ name: 'body', reason: 'may be set at the division level and above, not by a tenant' }] },
  },
  {
    name: 'unknown keys and wrong types: 422 naming each',
    who: 'dana',
    method: 'PUT',
    path: '/divisions/emea/settings/document',
    body: { settings: { 'no.such.key': { set: 1 }, 'recording.retention_days': { set: 'long' } } },
    status: 422,
    expect: { type: `${PROBLEM}invalid-request` },
  },
  { name: 'division admin may not write a sibling division', who: 'dana', method: 'PUT', path: '/divisions/apac/settings/document', body: { settings: {} }, status: 403 },
  { name: 'division admin may not read a sibling division', who: 'dana', method: 'GET', path: '/divisions/apac/settings', status: 403 },
  { name: 'division admin may not read the organization', who: 'dana', method: 'GET', path: '/organizations/acme/settings', status: 403 },
  { name: 'division admin may not write the organization', who: 'dana', method: 'PUT', path: '/organizations/acme/settings/document/timezone', body: { set: 'UTC' }, status: 403 },
  { name: 'sub-division admin may not read its parent division', who: 'sam', method: 'GET', path: '/divisions/emea/settings/keys/timezone', status: 403 },
  { name: 'tenant user reads its own tenant', who: 'uma', method: 'GET', path: '/tenants/acme-sales/settings', status: 200 },
  { name: 'tenant user writes nothing', who: 'uma', method: 'PUT', path: '/tenants/acme-sales/settings/document/locale', body: { set: 'en-US' }, status: 403 },
  { name: 'tenant user reads no other tenant', who: 'uma', method: 'GET', path: '/tenants/north-support/settings', status: 403 },
  { name: 'tenant user reads no division', who: 'uma', method: 'GET', path: '/divisions/emea/settings', status: 403 },
  { name: 'tenant admin reads no other tenant', who: 'tom', method: 'GET', path: '/tenants/apac-sales/settings/document', status: 403 },
];

describe('settings writes, in order', () => {
  it.each(steps.map((s) => [s.name, s] as const))('%s', async (_name, s) => {
    const res = await fx.call(s.who, s.method, s.path, s.body);
    expectStatus(res, s.status);
    if (s.status >= 400) expect(res.contentType).toBe('application/problem+json');
    if (s.expect) expect(res.body).toMatchObject(s.expect);
  });
});

type Row = [node: string, key: string, value: unknown, source: string, locked: { by: string; above: boolean } | null];
const effective: Row[] = [
  ['organization:acme', 'timezone', 'Europe/London', 'organization:acme', null],
  ['organization:acme', 'security.ip_allowlist', ['10.0.0.0/8', '192.168.0.0/16'], 'organization:acme', null],
  ['organization:acme', 'security.require_mfa', true, 'organization:acme', { by: 'organization:acme', above: false }],
  ['organization:acme', 'quota.agents', 100, 'organization:acme', null],
  ['organization:acme', 'recording.retention_days', 90, 'default', null],
  ['division:emea', 'timezone', 'Europe/Berlin', 'division:emea', null],
  ['division:emea', 'security.ip_allowlist', ['10.0.0.0/8', '172.16.0.0/12'], 'division:emea', null],
  ['division:emea', 'security.require_mfa', true, 'organization:acme', { by: 'organization:acme', above: true }],
  ['division:emea', 'locale', 'de-DE', 'division:emea', { by: 'division:emea', above: false }],
  ['division:emea', 'quota.agents', 60, 'division:emea', null],
  ['division:emea-north', 'timezone', 'Europe/Stockholm', 'division:emea-north', null],
  ['division:emea-north', 'security.ip_allowlist', ['10.0.0.0/8', '172.16.0.0/12', '10.1.0.0/16'], 'division:emea-north', null],
  ['division:emea-north', 'locale', 'de-DE', 'division:emea', { by: 'division:emea', above: true }],
  ['tenant:north-support', 'timezone', 'Europe/Stockholm', 'division:emea-north', null],
  ['tenant:north-support', 'quota.agents', 20, 'division:emea-north', null],
  ['tenant:north-support', 'data.residency_region', 'eu', 'organization:acme', { by: 'organization:acme', above: true }],
  ['tenant:acme-sales', 'timezone', 'UTC', 'tenant:acme-sales', null],
  ['tenant:acme-sales', 'quota.agents', 40, 'tenant:acme-sales', null],
  ['tenant:acme-sales', 'locale', 'de-DE', 'division:emea', { by: 'division:emea', above: true }],
  ['tenant:acme-sales', 'security.ip_allowlist', ['10.0.0.0/8', '172.16.0.0/12'], 'division:emea', null],
  ['division:apac', 'timezone', 'Europe/London', 'organization:acme', null],
  ['division:apac', 'locale', 'en-GB', 'organization:acme', null],
  ['tenant:apac-sales', 'quota.agents', 100, 'organization:acme', null],
  ['tenant:apac-sales', 'security.ip_allowlist', ['10.0.0.0/8', '192.168.0.0/16'], 'organization:acme', null],
];

const urlOf = (node: string) => {
  const [type, id] = node.split(':') as [string, string];
  return `/${type === 'organization' ? 'organizations' : type === 'division' ? 'divisions' : 'tenants'}/${id}`;
};

describe('effective values at every node', () => {
  it.each(effective.map((r) => [`${r[0]} ${r[1]}`, r] as const))('%s', async (_name, [node, key, value, source, locked]) => {
    const res = await fx.call('olivia', 'GET', `${urlOf(node)}/settings/keys/${key}`);
    expectStatus(res, 200);
    expect(res.body).toMatchObject({ key, value, source, locked });
    const all = await fx.call('olivia', 'GET', `${urlOf(node)}/settings`);
    expect(all.body.items.find((i: { key: string }) => i.key === key)).toEqual(res.body);
  });

  it('gives the chain that produced a value: node, operation, author, time', async () => {
    const res = await fx.call('tom', 'GET', '/tenants/acme-sales/settings/keys/timezone');
    expectStatus(res, 200);
    expect(res.body.chain.map((s: { node: string; op: string }) => [s.node, s.op])).toEqual([
      ['organization:acme', 'set'],
      ['division:emea', 'set'],
      ['tenant:acme-sales', 'reset'],
    ]);
    // Tom may not read the settings of the nodes above: their authors are withheld from him.
    expect(res.body.chain.map((s: { author: string | null }) => s.author)).toEqual([null, null, 'user:tom']);
    for (const s of res.body.chain) expect(Date.parse(s.at)).not.toBeNaN();
    const olivia = await fx.call('olivia', 'GET', '/tenants/acme-sales/settings/keys/timezone');
    expect(olivia.body.chain.map((s: { author: string }) => s.author)).toEqual(['user:olivia', 'user:dana', 'user:tom']);
  });

  it('gives the tenant user the same effective values as its admin', async () => {
    const uma = await fx.call('uma', 'GET', '/tenants/acme-sales/settings');
    const tom = await fx.call('tom', 'GET', '/tenants/acme-sales/settings');
    expect(uma.body.items.map((i: { key: string; value: unknown }) => [i.key, i.value])).toEqual(tom.body.items.map((i: { key: string; value: unknown }) => [i.key, i.value]));
  });

  it('answers 404 for a key the registry does not know', async () => {
    expectStatus(await fx.call('olivia', 'GET', '/organizations/acme/settings/keys/no.such'), 404);
  });
});

describe('dry run', () => {
  it('lists every node below whose values would change, and the own values a new lock overrides, writing nothing', async () => {
    const doc = (await fx.call('olivia', 'GET', '/organizations/acme/settings/document')).body;
    const settings = Object.fromEntries(Object.entries(doc.entries as Record<string, { entry: unknown }>).map(([k, v]) => [k, v.entry]));
    settings.timezone = { set: 'Europe/London', lock: true };
    const res = await fx.call('olivia', 'POST', '/organizations/acme/settings/dry-run', { settings });
    expectStatus(res, 200);
    const tz = (node: string) => res.body.changes.find((c: { node: string }) => c.node === node)?.changes.find((c: { key: string }) => c.key === 'timezone');
    expect(tz('division:emea')).toEqual({ key: 'timezone', before: 'Europe/Berlin', after: 'Europe/London', sourceBefore: 'division:emea', sourceAfter: 'organization:acme' });
    expect(tz('division:emea-north')).toMatchObject({ before: 'Europe/Stockholm', after: 'Europe/London' });
    expect(tz('tenant:north-support')).toMatchObject({ before: 'Europe/Stockholm', after: 'Europe/London', sourceBefore: 'division:emea-north' });
    expect(tz('tenant:acme-sales')).toMatchObject({ before: 'UTC', after: 'Europe/London' });
    expect(tz('division:apac')).toBeUndefined();
    expect(res.body.changes.map((c: { node: string }) => c.node)).toEqual(['division:emea', 'division:emea-north', 'tenant:acme-sales', 'tenant:north-support']);
    expect(res.body.overriddenByLock.map((o: { node: string; key: string; author: string }) => [o.node, o.key, o.author])).toEqual([
      ['division:emea', 'timezone', 'user:dana'],
      ['division:emea-north', 'timezone', 'user:sam'],
      ['tenant:acme-sales', 'timezone', 'user:tom'],
    ]);
    // Nothing written.
    expect((await fx.call('olivia', 'GET', '/divisions/emea/settings/keys/timezone')).body.value).toBe('Europe/Berlin');
  });

  it('refuses a dry run the write would refuse', async () => {
    const res = await fx.call('sam', 'POST', '/divisions/emea-north/settings/dry-run', { settings: { locale: { set: 'fr-FR' } } });
    expectStatus(res, 409);
    expect(res.body).toMatchObject({ lockedBy: 'division:emea' });
    expectStatus(await fx.call('dana', 'POST', '/organizations/acme/settings/dry-run', { settings: {} }), 403);
  });
});

describe('audit and invalidation', () => {
  it('audits every change with the entries before and after, and bumps the node before answering', async () => {
    fx.invalidator.settings.splice(0);
    const res = await fx.call('dana', 'PUT', '/divisions/emea/settings/document/timezone', { set: 'Europe/Paris' });
    expectStatus(res, 200);
    expect(fx.invalidator.settings).toEqual([['division:emea']]);
    const r = await fx.db.query<{ actor: string; action: string; target: string; scope: string[]; before: unknown; after: unknown }>(
      "select actor, action, target, scope, before, after from admin_audit where action = 'settings.write' order by seq desc limit 1",
    );
    expect(r.rows[0]).toEqual({
      actor: 'user:dana',
      action: 'settings.write',
      target: 'division:emea',
      scope: ['organization:acme', 'division:emea'],
      before: { timezone: { set: 'Europe/Berlin' } },
      after: { timezone: { set: 'Europe/Paris' } },
    });
  });

  it('a write that changes nothing answers 200 and neither audits nor bumps', async () => {
    fx.invalidator.settings.splice(0);
    const before = (await fx.db.query<{ n: number }>('select count(*)::int as n from admin_audit')).rows[0]!.n;
    const res = await fx.call('dana', 'PUT', '/divisions/emea/settings/document/timezone', { set: 'Europe/Paris' });
    expectStatus(res, 200);
    expect(res.body.changed).toEqual([]);
    expect(fx.invalidator.settings).toEqual([]);
    expect((await fx.db.query<{ n: number }>('select count(*)::int as n from admin_audit')).rows[0]!.n).toBe(before);
  });

  it('deleting an entry inherits again', async () => {
    expectStatus(await fx.call('dana', 'DELETE', '/divisions/emea/settings/document/timezone'), 200);
    expect((await fx.call('dana', 'GET', '/divisions/emea/settings/keys/timezone')).body).toMatchObject({ value: 'Europe/London', source: 'organization:acme' });
  });

  it('two allocations that fit alone but not together: one of them is refused', async () => {
    // organization 100, emea 60: apac 40 fits, emea 65 fits (it handed out 60), not both.
    const [a, b] = await Promise.all([
      fx.call('olivia', 'PUT', '/divisions/apac/settings/document/quota.agents', { set: 40 }),
      fx.call('olivia', 'PUT', '/divisions/emea/settings/document/quota.agents', { set: 65 }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const own = async (node: string) => (await fx.call('olivia', 'GET', `${urlOf(node)}/settings/document`)).body.entries['quota.agents']?.entry.set ?? 0;
    const total = (await own('division:apac')) + (await own('division:emea'));
    expect(total).toBeLessThanOrEqual(100);
  });
});

describe('moves and allocations', () => {
  it('refuses a move whose allocations do not fit under the new parent, and moves what fits', async () => {
    expectStatus(await fx.call('olivia', 'POST', '/organizations/acme/divisions', { id: 'no-seats', name: 'No seats' }), 201);
    expectStatus(await fx.call('olivia', 'PUT', '/divisions/no-seats/settings/document/quota.agents', { set: 0 }), 200);
    // acme-sales holds 40 seats of its own: they cannot go under a division that has none.
    const refused = await fx.call('olivia', 'POST', '/tenants/acme-sales/move', { parent: 'division:no-seats' });
    expectStatus(refused, 409);
    expect(refused.body).toMatchObject({
      type: `${PROBLEM}allocation-exceeded`,
      key: 'quota.agents',
      node: 'division:no-seats',
      allocation: 0,
      allocated: 40,
      children: [{ node: 'tenant:acme-sales', allocation: 40 }],
    });
    expect((await fx.call('olivia', 'GET', '/tenants/acme-sales')).body).toMatchObject({ parent: 'division:emea' });
    // A division carrying allocations below it is checked the same way.
    const division = await fx.call('olivia', 'POST', '/divisions/emea-north/move', { parent: 'division:no-seats' });
    expectStatus(division, 409);
    expect(division.body).toMatchObject({ type: `${PROBLEM}allocation-exceeded`, node: 'division:no-seats' });
    // A tenant without an allocation of its own takes nothing from its new parent.
    expectStatus(await fx.call('olivia', 'POST', '/tenants/apac-sales/move', { parent: 'division:no-seats' }), 200);
  });
});

describe('OpenAPI', () => {
  it('describes every settings route', async () => {
    const doc = await fx.call(null, 'GET', '/openapi.json');
    expectStatus(doc, 200);
    for (const node of ['/organizations/{organizationId}', '/divisions/{divisionId}', '/tenants/{tenantId}']) {
      expect(Object.keys(doc.body.paths[`${node}/settings`])).toEqual(['get']);
      expect(Object.keys(doc.body.paths[`${node}/settings/keys/{key}`])).toEqual(['get']);
      expect(Object.keys(doc.body.paths[`${node}/settings/document`]).sort()).toEqual(['get', 'put']);
      expect(Object.keys(doc.body.paths[`${node}/settings/document/{key}`]).sort()).toEqual(['delete', 'put']);
      expect(Object.keys(doc.body.paths[`${node}/settings/dry-run`])).toEqual(['post']);
    }
    expect(doc.body.paths['/settings/registry'].get).toBeDefined();
    expect(doc.body.components.schemas.EffectiveSetting.properties.chain.items).toEqual({ $ref: '#/components/schemas/SettingProvenanceStep' });
  });
});
