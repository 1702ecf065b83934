// What a restart keeps, through the real `npm start` (src/server/stack-main.ts) on one data folder:
// `npm start -- --demo`, a grant and an agent made through the API, Ctrl-C, the demo
// again (no changes, same answers), then a plain start. Then OpenFGA's file is changed
// behind tiergate's back: the next start refuses with one sentence, `npm run reconcile`
// shows the repair and changes nothing, `--apply` repairs, and the start succeeds.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { ClientWriteRequestOnDuplicateWrites } from '@openfga/sdk';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GLOBAL_KEY } from '../../src/decisions/index.js';
import { createFgaClient } from '../../src/fga/client.js';
import { ASSERTION_KEY_FILE } from '../../src/gateway/assertion-signer.js';
import { startOpenFga } from '../../src/stack/openfga-server.js';
import { npmRun, npmStartEnv, startMain, type NpmStart } from '../support/npm-start.js';
import { useCleanup, tempDir } from '../support/cleanup.js';
import { call } from '../support/json-call.js';

useCleanup();

let dataDir: string;
let stack: NpmStart | undefined;
const tokens: Record<string, string> = {};
let first: { store: string; model: string };

const api = () => `${stack!.gatewayUrl}/api/v1`;
const as = (sub: string) => `Bearer ${tokens[sub]}`;
const storeAndModel = (line: string) => {
  const m = /store (\S+), model (\S+)\)/.exec(line);
  return { store: m?.[1] ?? '', model: m?.[2] ?? '' };
};

async function start(args: string[] = []): Promise<NpmStart> {
  const s = await startMain(await npmStartEnv(dataDir), args);
  expect(s.readyLine, `npm start ${args.join(' ')} did not start:\n${s.output()}`).toBeDefined();
  return s;
}

/** The demo's answers that depend on grants, structure and stored rows. */
async function expectDemoAnswers(): Promise<void> {
  const report = await call(api(), 'GET', '/divisions/emea/reports/summary', { auth: as('dana') });
  expect(report.status, report.text).toBe(200);
  expect(report.body.tenantCount).toBe(2);
  const agent = await call(api(), 'GET', '/tenants/acme-sales/agents/2000', { auth: as('tom') });
  expect(agent.status, agent.text).toBe(200);
  expect(agent.body).toMatchObject({ tenantId: 'acme-sales', agentNo: '2000', name: 'Ada' });
  expect((await call(api(), 'GET', '/tenants/acme-sales/configurations', { auth: as('uma') })).status).toBe(403);
  // The grant made through the API after the demo was loaded.
  expect((await call(api(), 'GET', '/tenants/apac-sales/agents', { auth: as('uma') })).status).toBe(200);
}

beforeAll(async () => {
  dataDir = tempDir('tiergate-restart-');
  stack = await start(['--demo']);
  const env = await npmStartEnv(dataDir);
  for (const sub of ['olivia', 'dana', 'tom', 'uma']) {
    const minted = await npmRun('token', [sub], env);
    expect(minted.code, minted.stderr).toBe(0);
    tokens[sub] = minted.stdout.trim();
  }
}, 240_000);

afterAll(async () => {
  await stack?.stop();
});

describe('npm start on a data folder that outlives it', () => {
  it('keeps OpenFGA in SQLite under the data folder, behind a key: an unauthenticated write is refused (401)', async () => {
    expect(stack!.readyLine).toContain(`(sqlite ${join(dataDir, 'openfga', 'openfga.db')}, store `);
    first = storeAndModel(stack!.readyLine!);
    const fgaUrl = /OpenFGA (http:\/\/\S+)/.exec(stack!.readyLine!)![1]!;
    const store = await fetch(`${fgaUrl}/stores`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'intruder' }) });
    expect(store.status).toBe(401);
    const write = await fetch(`${fgaUrl}/stores/${first.store}/write`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer guessed' },
      body: JSON.stringify({ writes: { tuple_keys: [{ user: 'user:mallory', relation: 'admin', object: 'organization:acme' }] } }),
    });
    expect(write.status).toBe(401);
    // …while tiergate itself, holding the key, works: a grant and an agent.
    const grant = await call(stack!.gatewayUrl, 'PUT', '/admin/v1/tenants/apac-sales/roles/member/uma', { auth: as('olivia') });
    expect(grant.status, grant.text).toBeLessThan(300);
    const agent = await call(api(), 'POST', '/tenants/acme-sales/agents', { auth: as('tom'), body: { agentNo: '2000', name: 'Ada' } });
    expect(agent.status, agent.text).toBe(201);
    await expectDemoAnswers();
  });

  it('while it runs, a second start and the reconcile refuse: the data folder is in use', async () => {
    const second = await startMain(await npmStartEnv(dataDir));
    expect(second.readyLine).toBeUndefined();
    expect(second.exitCode()).toBe(1);
    expect(second.output()).toContain(`tiergate (pid ${stack!.process.pid}) is running on this data folder`);
    const reconcile = await npmRun('reconcile', [], await npmStartEnv(dataDir));
    expect(reconcile.code).toBe(1);
    expect(reconcile.stderr).toContain(`reconcile: tiergate (pid ${stack!.process.pid}) is running on this data folder`);
  });

  it('Ctrl-C, then `npm start -- --demo` again: "no changes", the same store and model, grants and agent', async () => {
    expect(await stack!.stop()).toBe(0);
    stack = await start(['--demo']);
    expect(stack.output()).toContain('no changes: the admin API already matches the file');
    expect(storeAndModel(stack.readyLine!)).toEqual(first);
    await expectDemoAnswers();
  });

  it('a third start without --demo answers the same', async () => {
    expect(await stack!.stop()).toBe(0);
    stack = await start();
    expect(storeAndModel(stack.readyLine!)).toEqual(first);
    await expectDemoAnswers();
  });

  it('keeps its folders 0700 and its keys and database files 0600', () => {
    const mode = (...p: string[]) => statSync(join(dataDir, ...p)).mode & 0o777;
    for (const dir of [[], ['pglite'], ['openfga'], ['dev-issuer']]) expect({ dir, mode: mode(...dir) }).toEqual({ dir, mode: 0o700 });
    for (const file of [[ASSERTION_KEY_FILE], ['dev-issuer', 'private.jwk.json'], ['openfga', 'openfga.db']]) {
      expect({ file, mode: mode(...file) }).toEqual({ file, mode: 0o600 });
    }
  });
});

describe('when OpenFGA and the database disagree', () => {
  it('the start refuses with one sentence naming the difference', async () => {
    expect(await stack!.stop()).toBe(0);
    stack = undefined;
    // Change OpenFGA's file directly: a structural link removed, a grant on a node that does not exist.
    const fga = await startOpenFga({ datastore: { engine: 'sqlite', file: join(dataDir, 'openfga', 'openfga.db') }, presharedKey: 'random' });
    try {
      const client = createFgaClient({ apiUrl: fga.apiUrl, apiToken: fga.apiToken, storeId: first.store, timeoutMs: 5000 });
      await client.write(
        { deletes: [{ user: 'division:emea', relation: 'division', object: 'tenant:acme-sales' }], writes: [{ user: 'user:mallory', relation: 'admin', object: 'tenant:gone' }] },
        { conflict: { onDuplicateWrites: ClientWriteRequestOnDuplicateWrites.Error } },
      );
    } finally {
      await fga.stop();
    }
    const refused = await startMain(await npmStartEnv(dataDir));
    expect(refused.readyLine).toBeUndefined();
    expect(refused.exitCode()).toBe(1);
    const lines = refused.output().trim().split('\n');
    expect(lines).toEqual([
      'tiergate: OpenFGA store tiergate lacks 1 structural link the database has (first: tenant:acme-sales#division@division:emea) and holds 1 grant on nodes the database does not have (first: tenant:gone#admin@user:mallory): run `npm run reconcile` to see the repair, then `npm run reconcile -- --apply`.',
    ]);
  });

  it('`npm run reconcile` prints the repair and changes nothing', async () => {
    const env = await npmStartEnv(dataDir);
    const dry = await npmRun('reconcile', [], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('+ write  tenant:acme-sales#division@division:emea  (the database has this link; OpenFGA lacks it)');
    expect(dry.stdout).toContain('- delete tenant:gone#admin@user:mallory  (a grant on tenant:gone, which the database does not have)');
    expect(dry.stdout).toContain('dry run: nothing was changed');
    const again = await npmRun('reconcile', [], env);
    expect(again.stdout).toContain('differ in 2 tuple(s)');
  });

  it('`--apply` repairs, with an audit entry, bumps the decision cache epoch in Redis, and the next start succeeds with the same answers', async () => {
    // Replicas sharing this Redis would hold decisions cached before the repair.
    const redis = new Redis(inject('redisUrl'), { lazyConnect: true });
    await redis.connect();
    const epochKey = `tg:${first.store}:v:${GLOBAL_KEY}`;
    await redis.set(epochKey, '1000');
    try {
      const applied = await npmRun('reconcile', ['--apply'], await npmStartEnv(dataDir, { REDIS_URL: inject('redisUrl') }));
      expect(applied.code, applied.stderr).toBe(0);
      expect(applied.stdout).toContain('applied: wrote 1 and deleted 1 tuple(s) in 1 batch(es)');
      expect(applied.stdout).toContain('the decision cache epoch was bumped in Redis');
      expect(Number(await redis.get(epochKey))).toBeGreaterThan(1000);
    } finally {
      await redis.quit();
    }
    stack = await start();
    await expectDemoAnswers();
    const audit = await call(stack.gatewayUrl, 'GET', '/admin/v1/audit?action=reconcile.apply', { auth: as('olivia') });
    expect(audit.status, audit.text).toBe(200);
    expect(audit.body.items).toEqual([
      expect.objectContaining({
        actor: 'system:reconcile',
        action: 'reconcile.apply',
        outcome: 'success',
        detail: expect.objectContaining({
          writes: [{ user: 'division:emea', relation: 'division', object: 'tenant:acme-sales' }],
          deletes: [{ user: 'user:mallory', relation: 'admin', object: 'tenant:gone' }],
        }),
      }),
    ]);
  });
});
