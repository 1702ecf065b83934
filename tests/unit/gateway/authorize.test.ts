// The authorize stage in isolation: the Authorizer is a stand-in here (this is a
// unit test of the stage's contract); the real OpenFGA path is covered by the
// integration tests.
import { Hono } from 'hono';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { authorize, type DeniedRequest } from '../../../src/gateway/authorize.js';
import type { Authorizer, CheckRequest } from '../../../src/authz/types.js';
import type { GatewayEnv } from '../../../src/gateway/types.js';
import { renderGatewayError } from '../../../src/gateway/app.js';

function appWith(authorizer: Authorizer, denied: DeniedRequest[] = [], header = 'X-Tiergate-Deny-Reason') {
  const app = new Hono<GatewayEnv>();
  app.onError(renderGatewayError);
  app.use('*', async (c, next) => {
    c.set('requestId', 'rid-1');
    c.set('log', pino({ level: 'silent' }));
    c.set('canonical', { method: 'GET', path: '/api/v1/tenants/t1/agents', segments: [], query: '' });
    c.set('principal', { subject: 'user:ann', sub: 'ann', issuer: 'test', expiresAt: 0 });
    c.set('policy', {
      ruleId: 'agents.list',
      route: '/tenants/{tenantId}/agents',
      permission: 'can_read_operational',
      object: 'tenant:t1',
      contextualTuples: [],
      params: { tenantId: 't1' },
      scope: { type: 'tenant', id: 't1' },
      consistency: 'cached',
      upstream: 'tenant-service',
    });
    await next();
  });
  app.use('*', authorize({ authorizer, denyReasonHeader: header, onDenied: (d) => denied.push(d) }));
  app.get('*', (c) => c.text('forwarded'));
  return app;
}

describe('authorize stage', () => {
  it('passes the rule permission, object, scope and principal to the authorizer and forwards on allow', async () => {
    const seen: CheckRequest[] = [];
    const app = appWith({
      check: async (req) => {
        seen.push(req);
        return { allowed: true, layer: 'openfga', durationMs: 1 };
      },
    });
    const res = await app.request('/x');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('forwarded');
    expect(seen).toEqual([
      { user: 'user:ann', relation: 'can_read_operational', object: 'tenant:t1', contextualTuples: [], scope: { type: 'tenant', id: 't1' }, consistency: 'cached' },
    ]);
  });

  it('a decision at hand (a warm cache answers without a promise): allowed forwards, denied is 403, a thrown failure 503', async () => {
    const allowed = await appWith({ check: () => ({ allowed: true, layer: 'l1', durationMs: 0 }) }).request('/x');
    expect(allowed.status).toBe(200);
    expect(await allowed.text()).toBe('forwarded');
    const denied: DeniedRequest[] = [];
    const refused = await appWith({ check: () => ({ allowed: false, layer: 'l1', durationMs: 0 }) }, denied).request('/x');
    expect(refused.status).toBe(403);
    expect(denied).toHaveLength(1);
    const failed = await appWith({
      check: () => {
        throw new Error('engine gone');
      },
    }).request('/x');
    expect(failed.status).toBe(503);
    expect((await failed.json()).type).toMatch(/authorization-unavailable$/);
    expect(failed.headers.get('retry-after')).toBe('1');
  });

  it('denies with 403 problem+json naming only the missing permission, and reports the denial', async () => {
    const denied: DeniedRequest[] = [];
    const app = appWith({ check: async () => ({ allowed: false, layer: 'l1', durationMs: 0 }) }, denied);
    const res = await app.request('/x');
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.headers.get('x-tiergate-deny-reason')).toBe('missing can_read_operational');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status: 403, permission: 'can_read_operational', requestId: 'rid-1' });
    expect(JSON.stringify(body)).not.toContain('tenant:t1');
    expect(denied).toEqual([
      { requestId: 'rid-1', subject: 'user:ann', rule: 'agents.list', permission: 'can_read_operational', object: 'tenant:t1', scope: { type: 'tenant', id: 't1' }, method: 'GET', path: '/api/v1/tenants/t1/agents' },
    ]);
  });

  it('sends no deny-reason header when it is switched off', async () => {
    const res = await appWith({ check: async () => ({ allowed: false, layer: 'l1', durationMs: 0 }) }, [], '').request('/x');
    expect(res.status).toBe(403);
    expect([...res.headers.keys()].filter((k) => k.startsWith('x-tiergate'))).toEqual([]);
  });

  it('fails closed with 503 when the engine errors, and never forwards', async () => {
    const res = await appWith({ check: async () => Promise.reject(new Error('connect ECONNREFUSED')) }).request('/x');
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status: 503, type: 'https://tiergate.dev/problems/authorization-unavailable', requestId: 'rid-1' });
  });

  it('treats anything but an explicit allowed === true as a denial', async () => {
    const res = await appWith({ check: async () => ({ allowed: 'yes' as unknown as boolean, layer: 'openfga', durationMs: 0 }) }).request('/x');
    expect(res.status).toBe(403);
  });
});
