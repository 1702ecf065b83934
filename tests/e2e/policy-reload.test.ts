// The route policy reloaded while the gateway runs (src/server/policy-holder.ts,
// src/server/active-policy.ts): an edit of the file changes the next request's
// decision with no restart; a broken edit changes nothing and says why (/readyz,
// metrics, log); the admin endpoint is for platform admins only and is audited; a
// request already past the policy stage finishes under the policy it was matched by.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyVersion } from '../../src/server/policy-holder.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { owned, tempDir, useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { adminOk, seedTenantT1, startTestStack, type TestStack } from '../support/test-stack.js';
import { waitFor } from '../support/wait.js';

useCleanup();

const ORIGINAL = readFileSync(join(REPO_ROOT, 'policy/routes.yaml'), 'utf8');
const LIST_RULE = 'path: /api/v1/tenants/{tenantId}/agents\n    permission: can_read_operational';
/** agents.list asks for a tenant admin's permission instead of a member's. */
const STRICTER = ORIGINAL.replace(LIST_RULE, 'path: /api/v1/tenants/{tenantId}/agents\n    permission: can_read_configuration');
/** agents.list asks for a relation model.fga does not have. */
const BROKEN = ORIGINAL.replace(LIST_RULE, 'path: /api/v1/tenants/{tenantId}/agents\n    permission: can_fly');

let dir: string;
let file: string;
let s: TestStack;
let uma: string;
/** Requests to /api/v1/tenants/t1/agents/held wait here until released. */
const held: Array<() => void> = [];

/** Replaces the file the way editors do: write a new file, rename it over the old one. */
function replaceFile(text: string): void {
  const tmp = join(dir, '.routes.yaml.swp');
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

const listAgents = async () => (await call(s.gatewayUrl, 'GET', '/api/v1/tenants/t1/agents', { auth: uma })).status;
const enforced = () => s.gateway.policy.current().version;
async function metric(series: string): Promise<number> {
  const text = await s.gateway.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

beforeAll(async () => {
  dir = tempDir('tiergate-policy-');
  file = join(dir, 'routes.yaml');
  copyFileSync(join(REPO_ROOT, 'policy/routes.yaml'), file);
  // An upstream that answers 200 at once, except for …/agents/held, which waits to be released.
  const upstream = createServer((req: IncomingMessage, res: ServerResponse) => {
    const answer = () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }));
    if (req.url?.endsWith('/agents/held')) held.push(answer);
    else answer();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  owned(
    () =>
      new Promise<void>((r) => {
        upstream.closeAllConnections();
        upstream.close(() => r());
      }),
  );
  s = await startTestStack({
    platformAdmins: ['pat'],
    upstreamUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    captureLogs: true,
    env: { POLICY_FILE: file, POLICY_RELOAD_DEBOUNCE_MS: '50', UPSTREAM_URLS: `reports=http://127.0.0.1:${(upstream.address() as AddressInfo).port}` },
  });
  await seedTenantT1(s);
  await adminOk(s, 'olivia', 'PUT', '/tenants/t1/roles/member/uma');
  uma = await s.authHeader('uma');
});

afterAll(() => {
  for (const release of held) release();
});

describe('reloading the route policy while the gateway runs', () => {
  it('an edit of the file changes the decision for the next request, with no restart', async () => {
    expect(await listAgents()).toBe(200);
    const before = enforced();
    expect(before).toBe(policyVersion(ORIGINAL));

    replaceFile(STRICTER);
    expect(await waitFor(() => enforced() === policyVersion(STRICTER), 10_000)).toBe(true);
    // A tenant member is not a tenant admin: the rule now asks a question uma fails.
    expect(await listAgents()).toBe(403);
    // The denial's audit entry names the version it was denied under.
    const deniedUnder = async () =>
      (await s.db.query<{ v: string | null }>("select detail->>'policyVersion' as v from admin_audit where action = 'gateway.deny' and actor = 'user:uma'")).rows.map((r) => r.v);
    expect(await waitFor(async () => (await deniedUnder()).includes(policyVersion(STRICTER)), 10_000)).toBe(true);
    expect(s.logs.some((l) => l.includes('"msg":"policy reloaded"') && l.includes(`"policyVersion":"${policyVersion(STRICTER)}"`) && l.includes('"trigger":"file"'))).toBe(true);
    const access = s.logs.filter((l) => l.includes('"msg":"request"') && l.includes('/api/v1/tenants/t1/agents')).at(-1)!;
    expect(JSON.parse(access)).toMatchObject({ status: 403, policyVersion: policyVersion(STRICTER) });
    expect(await metric(`tiergate_policy_info{version="${policyVersion(STRICTER)}"}`)).toBe(1);
    expect(await metric(`tiergate_policy_info{version="${before}"}`)).toBe(0);

    replaceFile(ORIGINAL);
    expect(await waitFor(() => enforced() === before, 10_000)).toBe(true);
    expect(await listAgents()).toBe(200);
  });

  it('a broken edit changes nothing and says why: /readyz detail, the reloads metric and the log name file:line:col', async () => {
    const refusedBefore = await metric('tiergate_policy_reloads_total{result="refused"}');
    const before = enforced();
    replaceFile(BROKEN);
    expect(await waitFor(async () => (await metric('tiergate_policy_reloads_total{result="refused"}')) > refusedBefore, 10_000)).toBe(true);
    expect(enforced()).toBe(before);
    expect(await listAgents()).toBe(200);

    const line = BROKEN.split('\n').findIndex((l) => l.includes('can_fly')) + 1;
    const ready = await call(s.gatewayUrl, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    const check = (ready.body as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks.find((c) => c.name === 'policy')!;
    expect(check.ok).toBe(true);
    expect(check.detail).toContain(`version ${before} enforced`);
    expect(check.detail).toContain(`${file}:${line}:17: rules[0].permission: "can_fly" is not a relation of type "tenant"`);
    const logged = s.logs.filter((l) => l.includes('policy reload refused')).at(-1)!;
    expect(JSON.parse(logged)).toMatchObject({ policyVersion: before, trigger: 'file' });
    expect(logged).toContain(`${file}:${line}:17`);

    replaceFile(ORIGINAL);
    expect(await waitFor(async () => !(await call(s.gatewayUrl, 'GET', '/readyz')).text.includes('refused'), 10_000)).toBe(true);
  });

  it('POST /admin/v1/policy/reload: platform admins reload (audited with both versions); others get 403', async () => {
    const denied = await call(s.gatewayUrl, 'POST', '/admin/v1/policy/reload', { auth: await s.authHeader('olivia') });
    expect(denied.status).toBe(403);

    const pat = await s.authHeader('pat');
    const same = await call(s.gatewayUrl, 'POST', '/admin/v1/policy/reload', { auth: pat });
    expect(same.status).toBe(200);
    expect(same.body).toEqual({ result: 'unchanged', version: policyVersion(ORIGINAL), previousVersion: policyVersion(ORIGINAL) });

    // The file changes under a watcher that has not fired yet: the endpoint reads it now.
    s.gateway.policy.close();
    writeFileSync(file, STRICTER);
    const applied = await call(s.gatewayUrl, 'POST', '/admin/v1/policy/reload', { auth: pat });
    expect(applied.status).toBe(200);
    expect(applied.body).toEqual({ result: 'applied', version: policyVersion(STRICTER), previousVersion: policyVersion(ORIGINAL) });
    expect(await listAgents()).toBe(403);

    writeFileSync(file, BROKEN);
    const refused = await call(s.gatewayUrl, 'POST', '/admin/v1/policy/reload', { auth: pat });
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({ type: expect.stringContaining('policy-invalid'), policyVersion: policyVersion(STRICTER) });
    expect(refused.body.detail).toContain('"can_fly" is not a relation');
    expect(await listAgents()).toBe(403);

    const audit = await s.db.query<{ actor: string; outcome: string; before: unknown; after: unknown }>(
      "select actor, outcome, before, after from admin_audit where action = 'policy.reload' order by seq",
    );
    expect(audit.rows.map((r) => [r.actor, r.outcome])).toEqual([
      ['user:olivia', 'denied'],
      ['user:pat', 'success'],
      ['user:pat', 'success'],
      ['user:pat', 'failed'],
    ]);
    expect(audit.rows[2]).toMatchObject({ before: { policyVersion: policyVersion(ORIGINAL) }, after: { policyVersion: policyVersion(STRICTER) } });

    writeFileSync(file, ORIGINAL);
    expect((await call(s.gatewayUrl, 'POST', '/admin/v1/policy/reload', { auth: pat })).body).toMatchObject({ result: 'applied' });
    expect(await listAgents()).toBe(200);
  });

  it('a request already past the policy stage finishes under the policy it was matched by', async () => {
    const tom = await s.authHeader('tom');
    const pat = await s.authHeader('pat');
    const inFlight = call(s.gatewayUrl, 'GET', '/api/v1/tenants/t1/agents/held', { auth: tom });
    expect(await waitFor(() => held.length === 1, 10_000)).toBe(true);

    // agents.read is gone from the new policy: the same request now is refused.
    const withoutRead = ORIGINAL.replace(/ {2}- id: agents\.read\n(?: {4}.*\n| {6}.*\n)+/, '');
    expect(withoutRead).not.toContain('agents.read');
    writeFileSync(file, withoutRead);
    expect((await call(s.gatewayUrl, 'POST', '/admin/v1/policy/reload', { auth: pat })).body).toMatchObject({ result: 'applied' });
    // (the path stays for the other methods: 405 with Allow)
    expect((await call(s.gatewayUrl, 'GET', '/api/v1/tenants/t1/agents/other', { auth: tom })).status).toBe(405);

    held.shift()!();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ path: '/api/v1/tenants/t1/agents/held' });
    const access = s.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request' && l.path === '/api/v1/tenants/t1/agents/held')!;
    expect(access).toMatchObject({ status: 200, policyVersion: policyVersion(ORIGINAL) });

    writeFileSync(file, ORIGINAL);
    await call(s.gatewayUrl, 'POST', '/admin/v1/policy/reload', { auth: pat });
  });
});
