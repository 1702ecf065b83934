// The edge-policy stage in isolation: settings snapshots made here, the request's
// socket peer and headers given as the Node request @hono/node-server would pass.
import { Hono } from 'hono';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { renderGatewayError } from '../../../src/gateway/app.js';
import type { SignedSettings } from '../../../src/gateway/assertion-signer.js';
import { edgePoliciesOf, edgePolicy, multiFactor, parseEdgePolicies } from '../../../src/gateway/edge-policy.js';
import type { GatewayEnv } from '../../../src/gateway/types.js';
import type { Principal } from '../../../src/authz/types.js';
import { trustedPeers } from '../../../src/shared/trusted-proxies.js';
import { useCleanup } from '../../support/cleanup.js';

useCleanup();

const NOW = 1_800_000_000;
const ACR = 'urn:example:mfa';

function snapshot(values: Record<string, unknown>): SignedSettings {
  return { claim: { node: 'tenant:t1', values, sources: {} }, digest: 'd' } as unknown as SignedSettings;
}

function appWith(settings: SignedSettings | (() => Promise<SignedSettings>), principal: Partial<Principal> = {}, trusted: string[] = []) {
  const counts: string[] = [];
  let resolved = 0;
  const app = new Hono<GatewayEnv>();
  app.onError(renderGatewayError);
  app.use('*', async (c, next) => {
    c.set('requestId', 'rid-1');
    c.set('log', pino({ level: 'silent' }));
    c.set('principal', { subject: 'user:ann', sub: 'ann', issuer: 'test', expiresAt: NOW + 600, authTime: NOW - 60, amr: ['pwd', 'mfa'], ...principal });
    c.set('policy', {
      ruleId: 'r',
      route: '/tenants/{tenantId}/agents',
      permission: 'can_read_operational',
      object: 'tenant:t1',
      contextualTuples: [],
      params: {},
      scope: { type: 'tenant', id: 't1' },
      consistency: 'cached',
      upstream: 'tenant-service',
    });
    await next();
  });
  app.use(
    '*',
    edgePolicy({
      settings: async () => {
        resolved++;
        return typeof settings === 'function' ? settings() : settings;
      },
      trustedProxies: trustedPeers(trusted),
      metrics: { countEdgePolicy: (p, o) => counts.push(`${p} ${o}`) },
      mfaAcrValues: [ACR],
      now: () => NOW,
    }),
  );
  app.get('*', (c) => c.text('next'));
  const send = (peer: string, headers: Record<string, string> = {}) =>
    app.request('/x', { headers }, { incoming: { socket: { remoteAddress: peer }, headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])) } });
  return { send, counts, resolved: () => resolved };
}

const defaults = snapshot({ 'security.ip_allowlist': [], 'security.require_mfa': false, 'security.session_max_age': '12h' });

describe('edge policies: network', () => {
  const listed = snapshot({ 'security.ip_allowlist': ['10.0.0.0/8', '2001:db8::/32'], 'security.require_mfa': false, 'security.session_max_age': '12h' });

  it('admits an address inside the list, IPv4, IPv6 and IPv4-mapped IPv6', async () => {
    const { send, counts } = appWith(listed);
    for (const peer of ['10.1.2.3', '2001:db8::7', '::ffff:10.1.2.3']) expect((await send(peer)).status, peer).toBe(200);
    expect(counts.filter((c) => c.startsWith('security.ip_allowlist'))).toEqual(Array(3).fill('security.ip_allowlist passed'));
  });

  it('refuses an address outside with 403 ip-not-allowed naming the policy, not the node', async () => {
    const { send, counts } = appWith(listed);
    const res = await send('192.168.1.1');
    expect(res.status).toBe(403);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ type: 'https://tiergate.dev/problems/ip-not-allowed', status: 403, policy: 'security.ip_allowlist' });
    expect(JSON.stringify(body)).not.toContain('tenant:t1');
    expect(counts).toContain('security.ip_allowlist refused');
  });

  it('believes X-Forwarded-For only from a trusted proxy, taking the rightmost untrusted hop', async () => {
    const { send } = appWith(listed, {}, ['127.0.0.1', '172.16.0.0/12']);
    // From a trusted proxy: the client behind it.
    expect((await send('127.0.0.1', { 'x-forwarded-for': '10.9.9.9' })).status).toBe(200);
    expect((await send('127.0.0.1', { 'x-forwarded-for': '192.168.0.1' })).status).toBe(403);
    // A client-written hop on the left is not believed: the rightmost untrusted one is the client.
    expect((await send('127.0.0.1', { 'x-forwarded-for': '10.0.0.1, 192.168.0.1' })).status).toBe(403);
    expect((await send('127.0.0.1', { 'x-forwarded-for': '192.168.0.1, 10.0.0.1, 172.16.0.5' })).status).toBe(200);
    // Garbage in the chain: the client cannot be known.
    expect((await send('127.0.0.1', { 'x-forwarded-for': 'unknown, 10.0.0.1' })).status).toBe(200);
    expect((await send('127.0.0.1', { 'x-forwarded-for': '10.0.0.1, unknown' })).status).toBe(403);
    // From anyone else the header is ignored: the peer is the client.
    expect((await send('192.168.0.9', { 'x-forwarded-for': '10.0.0.1' })).status).toBe(403);
    expect((await send('10.0.0.9', { 'x-forwarded-for': '192.168.0.1' })).status).toBe(200);
  });

  it('an allowlist with no network in common admits nothing', async () => {
    const { send } = appWith(snapshot({ 'security.ip_allowlist': ['none'] }));
    expect((await send('10.0.0.1')).status).toBe(403);
    expect((await send('::1')).status).toBe(403);
  });
});

describe('edge policies: authentication strength', () => {
  const mfa = snapshot({ 'security.ip_allowlist': [], 'security.require_mfa': true, 'security.session_max_age': '1h' });

  it('accepts amr mfa, two factors, or a configured acr', async () => {
    for (const p of [{ amr: ['mfa'] }, { amr: ['pwd', 'otp'] }, { amr: ['hwk', 'pin'] }, { amr: ['pwd'], acr: ACR }]) {
      const { send } = appWith(mfa, p);
      expect((await send('10.0.0.1')).status, JSON.stringify(p)).toBe(200);
    }
  });

  it('refuses one factor with the RFC 9470 challenge and acr_values', async () => {
    for (const p of [{ amr: ['pwd'] }, { amr: ['otp', 'sms'] }, { amr: undefined }, { amr: ['pwd', 'user', 'geo'], acr: 'urn:other' }]) {
      const { send, counts } = appWith(mfa, p);
      const res = await send('10.0.0.1');
      expect(res.status, JSON.stringify(p)).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe(
        `Bearer error="insufficient_user_authentication", error_description="A multi-factor authentication is required", acr_values="${ACR}"`,
      );
      expect(await res.json()).toMatchObject({ type: 'https://tiergate.dev/problems/insufficient-user-authentication', policy: 'security.require_mfa' });
      expect(counts).toContain('security.require_mfa refused');
    }
  });

  it('refuses a sign-in older than session_max_age with max_age, and one of unknown age', async () => {
    for (const authTime of [NOW - 3601, undefined]) {
      const { send, counts } = appWith(mfa, { authTime });
      const res = await send('10.0.0.1');
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer error="insufficient_user_authentication", error_description="More recent authentication is required", max_age=3600');
      expect(await res.json()).toMatchObject({ policy: 'security.session_max_age', maxAge: 3600 });
      expect(counts).toContain('security.session_max_age refused');
    }
    expect((await appWith(mfa, { authTime: NOW - 3600 }).send('10.0.0.1')).status).toBe(200);
  });

  it('asks for both in one challenge when both are lacking', async () => {
    const res = await appWith(mfa, { amr: ['pwd'], authTime: NOW - 7200 }).send('10.0.0.1');
    expect(res.headers.get('www-authenticate')).toContain(`acr_values="${ACR}", max_age=3600`);
  });
});

describe('edge policies: snapshots', () => {
  it('defaults: passes, and only the session age is counted', async () => {
    const { send, counts } = appWith(defaults);
    expect((await send('203.0.113.1')).status).toBe(200);
    expect(counts).toEqual(['security.session_max_age passed']);
  });

  it('parses a snapshot once, and a malformed one admits nothing', () => {
    expect(edgePoliciesOf(defaults)).toBe(edgePoliciesOf(defaults));
    expect(parseEdgePolicies({ 'security.ip_allowlist': 'oops' }).allowlist).toEqual({ v4: [], v6: [] });
    expect(parseEdgePolicies({ 'security.session_max_age': 5 }).maxAgeS).toBe(0);
    expect(parseEdgePolicies({})).toEqual({ allowlist: undefined, requireMfa: false, maxAgeS: undefined });
  });

  it('fails closed when the settings cannot be read', async () => {
    const { send, counts } = appWith(() => Promise.reject(new Error('db down')));
    const res = await send('10.0.0.1');
    expect(res.status).toBe(503);
    expect(counts).toContain('security.ip_allowlist unavailable');
  });

  it('multiFactor ignores unknown methods and inherited object keys', () => {
    expect(multiFactor({ amr: ['toString', 'constructor'] }, [])).toBe(false);
    expect(multiFactor({ amr: ['pwd', 'face'] }, [])).toBe(true);
  });
});
