// Edge policies over the demo hierarchy (demo/hierarchy.yaml, applied through the admin
// API as `npm run apply` does), on a whole gateway: a real OpenFGA store, Redis, the
// tenant service, the admin API. The test connects from 127.0.0.1, which is the trusted
// proxy (TRUSTED_PROXIES), and says who the client is in X-Forwarded-For; proxy mode
// (/api/v1) and forward-auth mode (/forward-auth/nginx) must give the same answers.
// Every change is made through the admin API and must hold on the very next request.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { applyHierarchy, parseHierarchy } from '../../src/cli/apply.js';
import { useCleanup } from '../support/cleanup.js';
import { call, type JsonResponse } from '../support/json-call.js';
import { startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

let stack: TestStack;
const PROBLEM = 'https://tiergate.dev/problems/';
const ACR = 'urn:tiergate:test:mfa';

beforeAll(async () => {
  stack = await startTestStack({
    platformAdmins: ['platform-ops'],
    redisUrl: inject('redisUrl'),
    env: { TRUSTED_PROXIES: '127.0.0.1,::1', AUTH_MFA_ACR_VALUES: ACR },
  });
  const file = 'demo/hierarchy.yaml';
  const mfa = { claims: { amr: ['pwd', 'mfa'] } };
  await applyHierarchy({
    spec: parseHierarchy(readFileSync(file, 'utf8'), file),
    gateway: stack.gatewayUrl,
    token: await stack.issuer.token('platform-ops', mfa),
    orgTokens: { acme: await stack.issuer.token('olivia', mfa) },
    out: () => undefined,
  });
});

afterAll(async () => {
  await stack?.stop();
});

type Claims = Record<string, unknown>;
const MFA: Claims = { amr: ['pwd', 'mfa'] };

async function bearer(sub: string, claims: Claims = MFA): Promise<string> {
  return `Bearer ${await stack.issuer.token(sub, { claims })}`;
}

async function admin(sub: string, method: string, path: string, body?: unknown): Promise<JsonResponse> {
  const res = await call(stack.gatewayUrl, method, `/admin/v1${path}`, { auth: await bearer(sub), ...(body !== undefined ? { body } : {}) });
  expect(res.status, `${sub} ${method} ${path}: ${res.text}`).toBeLessThan(300);
  return res;
}

interface Answer {
  status: number;
  body: JsonResponse['body'];
  challenge: string | null;
}

/** The same question in proxy mode and in forward-auth mode: both answers, which must agree. */
async function ask(sub: string, path: string, client: string | undefined, claims: Claims = MFA): Promise<Answer> {
  const auth = await bearer(sub, claims);
  const forwarded: Record<string, string> = client === undefined ? {} : { 'x-forwarded-for': client };
  const proxied = await call(stack.gatewayUrl, 'GET', `/api/v1${path}`, { auth, headers: forwarded });
  const decided = await call(stack.gatewayUrl, 'GET', '/forward-auth/nginx', {
    auth,
    headers: { ...forwarded, 'x-original-method': 'GET', 'x-original-uri': `/api/v1${path}` },
  });
  expect({ status: decided.status, challenge: decided.headers.get('www-authenticate') }, `forward-auth ${path} from ${client}`).toEqual({
    status: proxied.status,
    challenge: proxied.headers.get('www-authenticate'),
  });
  if (proxied.status >= 400) expect(decided.body).toMatchObject({ type: (proxied.body as { type: string }).type });
  return { status: proxied.status, body: proxied.body, challenge: proxied.headers.get('www-authenticate') };
}

async function edgeCounts(): Promise<string> {
  return stack.gateway.registry.getSingleMetricAsString('tiergate_edge_policy_total');
}

describe('network: security.ip_allowlist', () => {
  it('an allowlist set at the organization and narrowed at a division admits only what both admit', async () => {
    // Nothing set: any network.
    expect((await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5')).status).toBe(200);

    await admin('olivia', 'PUT', '/organizations/acme/settings/document/security.ip_allowlist', { set: ['10.0.0.0/8', '192.168.0.0/16'] });
    await admin('dana', 'PUT', '/divisions/emea/settings/document/security.ip_allowlist', { set: ['10.1.0.0/16', '2001:db8::/32'] });

    expect((await ask('tom', '/tenants/acme-sales/agents', '10.1.2.3')).status).toBe(200);
    // The organization allows it, the division does not.
    const refused = await ask('tom', '/tenants/acme-sales/agents', '10.2.0.1');
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ type: `${PROBLEM}ip-not-allowed`, policy: 'security.ip_allowlist' });
    expect(JSON.stringify(refused.body)).not.toMatch(/acme|emea|division|organization/);
    // The division's IPv6 range adds nothing the organization did not allow.
    expect((await ask('tom', '/tenants/acme-sales/agents', '2001:db8::1')).status).toBe(403);
    expect((await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5')).status).toBe(403);
    // No X-Forwarded-For: the peer (127.0.0.1) is the client, and it is not allowed.
    expect((await ask('tom', '/tenants/acme-sales/agents', undefined)).status).toBe(403);
    // A hop the client wrote itself to the left is not believed.
    expect((await ask('tom', '/tenants/acme-sales/agents', '10.1.2.3, 203.0.113.5')).status).toBe(403);
    // APAC is outside the division: only the organization's list holds there.
    expect((await ask('olivia', '/tenants/apac-sales/agents', '10.2.0.1')).status).toBe(200);
    expect((await ask('olivia', '/tenants/apac-sales/agents', '203.0.113.5')).status).toBe(403);

    const counts = await edgeCounts();
    expect(counts).toMatch(/tiergate_edge_policy_total\{policy="security.ip_allowlist",outcome="refused"\} [1-9]/);
    expect(counts).toMatch(/tiergate_edge_policy_total\{policy="security.ip_allowlist",outcome="passed"\} [1-9]/);
  });

  it('a division admin cannot widen it: the write is kept, the effective value and the next request do not change', async () => {
    await admin('dana', 'PUT', '/divisions/emea/settings/document/security.ip_allowlist', { set: ['0.0.0.0/0', '::/0'] });
    const effective = await admin('dana', 'GET', '/tenants/acme-sales/settings/keys/security.ip_allowlist');
    expect(effective.body).toMatchObject({ value: ['10.0.0.0/8', '192.168.0.0/16'], source: 'organization:acme' });
    expect((await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5')).status).toBe(403);
    expect((await ask('tom', '/tenants/acme-sales/agents', '10.2.0.1')).status).toBe(200);
    // A dry run of widening shows nothing would change.
    const dry = await admin('dana', 'POST', '/divisions/emea/settings/dry-run', { settings: { 'security.ip_allowlist': { set: ['0.0.0.0/0'] } } });
    expect(JSON.stringify(dry.body)).not.toContain('security.ip_allowlist');
  });

  it('two levels with no network in common allow no network at all', async () => {
    await admin('dana', 'PUT', '/divisions/emea/settings/document/security.ip_allowlist', { set: ['172.16.0.0/12'] });
    const effective = await admin('dana', 'GET', '/tenants/acme-sales/settings/keys/security.ip_allowlist');
    expect(effective.body).toMatchObject({ value: ['none'], source: 'division:emea' });
    for (const client of ['10.1.2.3', '172.16.0.1', '192.168.0.1', '203.0.113.5']) expect((await ask('tom', '/tenants/acme-sales/agents', client)).status, client).toBe(403);
  });

  it('the admin explanation names the policies in force at the object\'s node and where they were set', async () => {
    const res = await admin('olivia', 'POST', '/check', { user: 'tom', permission: 'can_read', object: 'agent:acme-sales/2000' });
    expect((res.body as { edgePolicies: unknown[] }).edgePolicies).toEqual([
      { policy: 'security.ip_allowlist', value: ['none'], inForce: true, source: 'division:emea', lockedBy: null },
      { policy: 'security.require_mfa', value: true, inForce: true, source: 'organization:acme', lockedBy: 'organization:acme' },
      { policy: 'security.session_max_age', value: '12h', inForce: true, source: 'default', lockedBy: null },
    ]);
    // Back to no restriction, for the tests below.
    await admin('dana', 'DELETE', '/divisions/emea/settings/document/security.ip_allowlist');
    await admin('olivia', 'DELETE', '/organizations/acme/settings/document/security.ip_allowlist');
    expect((await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5')).status).toBe(200);
  });
});

describe('authentication strength: security.require_mfa and security.session_max_age', () => {
  const challenge = `Bearer error="insufficient_user_authentication", error_description="A multi-factor authentication is required", acr_values="${ACR}"`;

  it('the demo requires MFA for all of acme: a password-only token gets the step-up challenge', async () => {
    const res = await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5', { amr: ['pwd'] });
    expect(res.status).toBe(401);
    expect(res.challenge).toBe(challenge);
    expect(res.body).toMatchObject({ type: `${PROBLEM}insufficient-user-authentication`, policy: 'security.require_mfa' });
    expect((await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5', { amr: ['pwd', 'otp'] })).status).toBe(200);
    expect((await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5', { amr: ['pwd'], acr: ACR })).status).toBe(200);
  });

  it('MFA required at a division: refused below it without mfa, accepted with it; elsewhere not required', async () => {
    await admin('olivia', 'DELETE', '/organizations/acme/settings/document/security.require_mfa');
    expect((await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5', { amr: ['pwd'] })).status).toBe(200);

    await admin('dana', 'PUT', '/divisions/emea/settings/document/security.require_mfa', { set: true });
    const res = await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5', { amr: ['pwd'] });
    expect(res.status).toBe(401);
    expect(res.challenge).toBe(challenge);
    expect((await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5', { amr: ['mfa'] })).status).toBe(200);
    // Nested below emea too; APAC does not require it.
    expect((await ask('dana', '/tenants/north-support/agents', '203.0.113.5', { amr: ['pwd'] })).status).toBe(401);
    expect((await ask('olivia', '/tenants/apac-sales/agents', '203.0.113.5', { amr: ['pwd'] })).status).toBe(200);
    // The tenant admin cannot switch it off for his tenant.
    await admin('tom', 'PUT', '/tenants/acme-sales/settings/document/security.require_mfa', { set: false });
    expect((await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5', { amr: ['pwd'] })).status).toBe(401);
  });

  it('session_max_age refuses an old sign-in with max_age; a tenant cannot lengthen it', async () => {
    const now = Math.floor(Date.now() / 1000);
    await admin('dana', 'PUT', '/divisions/emea/settings/document/security.session_max_age', { set: '1h' });
    await admin('tom', 'PUT', '/tenants/acme-sales/settings/document/security.session_max_age', { set: '7d' });
    const old = { ...MFA, auth_time: now - 2 * 3600 };
    const res = await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5', old);
    expect(res.status).toBe(401);
    expect(res.challenge).toBe('Bearer error="insufficient_user_authentication", error_description="More recent authentication is required", max_age=3600');
    expect(res.body).toMatchObject({ type: `${PROBLEM}insufficient-user-authentication`, policy: 'security.session_max_age', maxAge: 3600 });
    expect((await ask('tom', '/tenants/acme-sales/agents', '203.0.113.5', { ...MFA, auth_time: now - 600 })).status).toBe(200);
    // Outside emea the default (12h) holds.
    expect((await ask('olivia', '/tenants/apac-sales/agents', '203.0.113.5', old)).status).toBe(200);
    expect((await ask('olivia', '/tenants/apac-sales/agents', '203.0.113.5', { ...MFA, auth_time: now - 13 * 3600 })).status).toBe(401);
    const counts = await edgeCounts();
    expect(counts).toMatch(/tiergate_edge_policy_total\{policy="security.session_max_age",outcome="refused"\} [1-9]/);
    expect(counts).toMatch(/tiergate_edge_policy_total\{policy="security.require_mfa",outcome="refused"\} [1-9]/);
  });

  it('the edge policies come before the permission: a caller without it is refused by them first', async () => {
    await admin('dana', 'PUT', '/divisions/emea/settings/document/security.ip_allowlist', { set: ['10.0.0.0/8'] });
    expect((await ask('uma', '/tenants/acme-sales/configurations', '10.0.0.1')).status).toBe(403);
    expect((await ask('uma', '/tenants/acme-sales/configurations', '10.0.0.1')).body).toMatchObject({ type: `${PROBLEM}forbidden` });
    expect((await ask('uma', '/tenants/acme-sales/configurations', '203.0.113.5')).body).toMatchObject({ type: `${PROBLEM}ip-not-allowed` });
  });
});
