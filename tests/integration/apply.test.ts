// Declarative apply over real HTTP against the admin API (real OpenFGA, PGlite):
// the demo file creates everything once, a second run changes nothing, edits
// become exactly the planned changes, and --dry-run writes nothing.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDemo, applyHierarchy, parseHierarchy, type ApplyOptions } from '../../src/cli/apply.js';
import { loadConfig } from '../../src/config.js';
import { authenticate, createTokenVerifier } from '../../src/gateway/authenticate.js';
import { devIssuerTrust, loadOrCreateDevIssuerKeys } from '../../src/gateway/dev-issuer.js';
import { auditRows, createAdminFixture, type AdminFixture } from '../support/admin-fixture.js';

const DEMO = readFileSync(new URL('../../demo/hierarchy.yaml', import.meta.url), 'utf8');

let fx: AdminFixture;
let server: ServerType;
let gateway: string;
let tokens: { ops: string; olivia: string };

beforeAll(async () => {
  fx = await createAdminFixture({ platformAdmins: ['platform-ops'] });
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: fx.app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  gateway = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  tokens = { ops: await fx.auth.token('platform-ops'), olivia: await fx.auth.token('olivia') };
});
afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await fx?.close();
});

async function run(yaml: string, extra: Partial<ApplyOptions> = {}) {
  const lines: string[] = [];
  const result = await applyHierarchy({
    spec: parseHierarchy(yaml),
    gateway,
    token: tokens.ops,
    orgTokens: { acme: tokens.olivia },
    out: (l) => lines.push(l),
    ...extra,
  });
  return { ...result, lines };
}

async function snapshot() {
  const q = async (sql: string) => (await fx.db.query(sql)).rows;
  return {
    organizations: await q('select id, name from admin_organizations order by id'),
    divisions: await q('select id, name, organization_id, parent_division_id from admin_divisions order by id'),
    tenants: await q('select id, name, division_id from admin_tenants order by id'),
    audit: (await auditRows(fx.db)).length,
  };
}

const holds = async (user: string, relation: string, object: string) =>
  (await fx.store.client.read({ user: `user:${user}`, relation, object })).tuples.length === 1;

describe('apply demo/hierarchy.yaml', () => {
  it('--dry-run prints the full diff and writes nothing', async () => {
    const before = await snapshot();
    const res = await run(DEMO, { dryRun: true });
    expect(res.applied).toBe(false);
    expect(res.lines).toEqual([
      '+ create organization acme "Acme Contact Centres" with admins user:olivia',
      '+ settings of organization:acme: +data.residency_region +quota.agents +recording.retention_days +security.require_mfa +timezone',
      '+ create division emea "EMEA" under organization:acme',
      '+ grant admin on division:emea to user:dana',
      '+ settings of division:emea: +locale +quota.agents +timezone',
      '+ create division emea-north "EMEA North" under division:emea',
      '+ grant admin on division:emea-north to user:sam',
      '+ settings of division:emea-north: +quota.agents +timezone',
      '+ create tenant north-support "North Support" under division:emea-north',
      '+ create tenant acme-sales "Acme Sales" under division:emea',
      '+ grant admin on tenant:acme-sales to user:tom',
      '+ grant member on tenant:acme-sales to user:uma',
      '+ settings of tenant:acme-sales: +quota.agents +recording.retention_days',
      '+ create division apac "APAC" under organization:acme',
      '+ settings of division:apac: +quota.agents +timezone',
      '+ create tenant apac-sales "APAC Sales" under division:apac',
      'dry run: 16 change(s) planned, nothing written',
    ]);
    expect(await snapshot()).toEqual(before);
    expect(before.organizations).toEqual([]);
    expect((await fx.store.client.read({ object: 'organization:acme' })).tuples).toEqual([]);
  });

  it('first run creates everything through the API, with one user per role', async () => {
    const res = await run(DEMO);
    expect(res.applied).toBe(true);
    expect(res.lines.at(-1)).toBe('applied 16 change(s)');
    const after = await snapshot();
    expect(after.organizations).toEqual([{ id: 'acme', name: 'Acme Contact Centres' }]);
    expect(after.divisions).toEqual([
      { id: 'apac', name: 'APAC', organization_id: 'acme', parent_division_id: null },
      { id: 'emea', name: 'EMEA', organization_id: 'acme', parent_division_id: null },
      { id: 'emea-north', name: 'EMEA North', organization_id: 'acme', parent_division_id: 'emea' },
    ]);
    expect(after.tenants).toEqual([
      { id: 'acme-sales', name: 'Acme Sales', division_id: 'emea' },
      { id: 'apac-sales', name: 'APAC Sales', division_id: 'apac' },
      { id: 'north-support', name: 'North Support', division_id: 'emea-north' },
    ]);
    expect(after.audit).toBe(16); // one entry per change
    const tz = await fx.call('olivia', 'GET', '/tenants/acme-sales/settings/keys/timezone');
    expect(tz.body).toMatchObject({ value: 'Europe/Berlin', source: 'division:emea' });
    expect(await holds('platform-ops', 'admin', 'platform:root')).toBe(true);
    expect(await holds('olivia', 'admin', 'organization:acme')).toBe(true);
    expect(await holds('dana', 'admin', 'division:emea')).toBe(true);
    expect(await holds('sam', 'admin', 'division:emea-north')).toBe(true);
    expect(await holds('tom', 'admin', 'tenant:acme-sales')).toBe(true);
    expect(await holds('uma', 'member', 'tenant:acme-sales')).toBe(true);
  });

  it('second run reports no change and writes nothing', async () => {
    const before = await snapshot();
    const res = await run(DEMO);
    expect(res).toMatchObject({ applied: false, changes: [] });
    expect(res.lines).toEqual(['no changes: the admin API already matches the file']);
    expect(await snapshot()).toEqual(before);
  });

  it('an edited file becomes exactly its changes (rename, move, grant, create), then no change again', async () => {
    const edited = DEMO.replace('name: APAC Sales', 'name: APAC Inside Sales')
      .replace('members: [uma]', 'members: [uma, ulf]')
      // north-support moves from emea-north to emea, next to acme-sales
      .replace('            tenants:\n              - id: north-support\n                name: North Support\n', '')
      .replace('          - id: acme-sales', '          - id: north-support\n            name: North Support\n          - id: acme-sales')
      .replace('          - id: apac-sales\n', '          - id: apac-care\n            name: APAC Care\n          - id: apac-sales\n')
      .replace('timezone: { set: Europe/Berlin }', 'timezone: { set: Europe/Paris }');
    const dry = await run(edited, { dryRun: true });
    expect(dry.lines).toEqual([
      '~ settings of division:emea: ~timezone',
      '    = division:emea timezone: "Europe/Berlin" → "Europe/Paris" (from division:emea)',
      '    = tenant:acme-sales timezone: "Europe/Berlin" → "Europe/Paris" (from division:emea)',
      '> move tenant north-support from division:emea-north to division:emea',
      '+ grant member on tenant:acme-sales to user:ulf',
      '+ create tenant apac-care "APAC Care" under division:apac',
      '~ rename tenant apac-sales "APAC Sales" → "APAC Inside Sales"',
      'dry run: 5 change(s) planned, nothing written',
    ]);
    const res = await run(edited);
    expect(res.lines.at(-1)).toBe('applied 5 change(s)');
    expect((await fx.call('olivia', 'GET', '/tenants/acme-sales/settings/keys/timezone')).body.value).toBe('Europe/Paris');
    expect((await fx.db.query('select division_id from admin_tenants where id = $1', ['north-support'])).rows).toEqual([{ division_id: 'emea' }]);
    expect(await holds('ulf', 'member', 'tenant:acme-sales')).toBe(true);
    expect((await run(edited)).lines).toEqual(['no changes: the admin API already matches the file']);
  });

  it('stops at the first refusal with the API problem, e.g. an org token that is not an admin there', async () => {
    const other = DEMO.replace('name: APAC\n', 'name: APAC Region\n');
    await expect(run(other, { orgTokens: { acme: await fx.auth.token('uma') } })).rejects.toThrow(/403 Forbidden: the caller lacks can_assign_admin on organization:acme/);
  });
});

describe('npm run apply (the command)', () => {
  const exec = promisify(execFile);
  const cli = (args: string[]) =>
    exec(process.execPath, ['--import', 'tsx', 'src/cli/apply.ts', ...args], { cwd: new URL('../..', import.meta.url).pathname, env: { ...process.env, TIERGATE_TOKEN: '' } });

  it('runs against the gateway URL with the given tokens and says when nothing changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'apply-'));
    const file = join(dir, 'h.yaml');
    writeFileSync(file, DEMO);
    const { stdout } = await cli([file, '--dry-run', '--gateway', gateway, '--token', tokens.ops, '--org-token', `acme=${tokens.olivia}`]);
    // The demo was applied (with edits) above: only the edits' reversal would be planned, none of it written.
    expect(stdout).toContain('dry run:');
    expect(stdout).toContain('~ rename tenant apac-sales "APAC Inside Sales" → "APAC Sales"');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'organizations:\n  - id: "-x"\n    name: X\n    admins: []\n    colour: red\n');
    const failed = await cli([bad, '--token', tokens.ops, '--gateway', gateway]).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('is not a valid hierarchy file');
    expect(failed.stderr).toMatch(/organizations\.0\.id/);
    expect(failed.stderr).toMatch(/organizations\.0\.admins: an organization needs at least one admin/);
    const noToken = await cli([file]).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('no token');
  });
});

describe('applyDemo (npm start -- --demo)', () => {
  it('applies the demo with development-issuer tokens, and a second call changes nothing', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'demo-'));
    const config = loadConfig({ TIERGATE_DATA_DIR: dataDir });
    const keys = await loadOrCreateDevIssuerKeys(dataDir);
    const verifier = createTokenVerifier({ issuers: [devIssuerTrust(keys, config.DEV_ISSUER_AUDIENCE)], clockToleranceS: 5, tokenCacheMax: 100 });
    const demo = await createAdminFixture({ platformAdmins: ['platform-ops'], deps: { authenticate: authenticate(verifier) } });
    const srv = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: demo.app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
    });
    try {
      const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
      const file = new URL('../../demo/hierarchy.yaml', import.meta.url).pathname;
      const lines: string[] = [];
      const first = await applyDemo({ gatewayUrl: url, file, platformAdmin: 'platform-ops', config, log: (l) => lines.push(l) });
      expect(first.applied).toBe(true);
      expect(lines.at(-1)).toBe('applied 16 change(s)');
      const second = await applyDemo({ gatewayUrl: url, file, platformAdmin: 'platform-ops', config, log: (l) => lines.push(l) });
      expect(second).toMatchObject({ applied: false, changes: [] });
      expect(lines.at(-1)).toBe('no changes: the admin API already matches the file');
    } finally {
      await new Promise<void>((resolve) => srv.close(() => resolve()));
      await demo.close();
    }
  });
});
