// The shadow policy stage in process: the comparison of two decisions, the sampler,
// and that nothing the candidate does (an engine that throws) reaches the answer.
// The engine here is an in-memory Authorizer answering from a fixed table.
import { Hono } from 'hono';
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { authorize } from '../../../src/gateway/authorize.js';
import { matchPolicy, parsePolicy } from '../../../src/gateway/policy.js';
import { compareDecisions, ShadowPolicy, type SideDecision, type VersionedPolicy } from '../../../src/gateway/shadow.js';
import { Problem } from '../../../src/shared/problem.js';
import { loadModel } from '../../../src/fga/model.js';
import type { Authorizer, CheckRequest } from '../../../src/authz/types.js';
import type { GatewayEnv } from '../../../src/gateway/types.js';
import { useCleanup } from '../../support/cleanup.js';

useCleanup();

const model = loadModel();
const rule = (id: string, permission: string, path = '/api/v1/tenants/{tenantId}/agents') => `
  - id: ${id}
    methods: [GET]
    path: ${path}
    permission: ${permission}
    object: tenant:{tenantId}
    scope: tenant:{tenantId}
`;
const versioned = (file: string, rules: string): VersionedPolicy => ({
  policy: parsePolicy(`version: 1\nrules:${rules}`, { model, source: file }),
  file,
  version: file,
});

const ENFORCED = versioned('enforced.yaml', rule('agents.list', 'can_read_operational'));
const CANDIDATE = versioned('candidate.yaml', rule('agents.list', 'can_read_configuration'));

/** Allows exactly the listed `relation object` pairs; throws for relation `boom`. */
function tableAuthorizer(allowed: string[]): Authorizer & { asked: CheckRequest[] } {
  const asked: CheckRequest[] = [];
  return {
    asked,
    check(req) {
      asked.push(req);
      if (req.relation === 'can_read_configuration' && allowed.includes('boom')) return Promise.reject(new Error('engine down'));
      return Promise.resolve({ allowed: allowed.includes(`${req.relation} ${req.object}`), layer: 'openfga', durationMs: 1 });
    },
  };
}

function app(shadow: ShadowPolicy | undefined, authorizer: Authorizer, enforced = ENFORCED): Hono<GatewayEnv> {
  const a = new Hono<GatewayEnv>();
  a.use('*', async (c, next) => {
    const path = new URL(c.req.url).pathname;
    c.set('requestId', 'req-1');
    c.set('canonical', { method: c.req.method, path, segments: path.slice(1).split('/'), query: '' });
    c.set('principal', { subject: 'user:mia', sub: 'mia', issuer: 'test', expiresAt: 0 });
    await next();
  });
  const match = matchPolicy(enforced.policy);
  a.use('*', shadow ? shadow.wrap(match) : match, authorize({ authorizer }));
  a.get('*', (c) => c.text('forwarded'));
  a.onError((err) => (err instanceof Problem ? err.response({}) : new Response('boom', { status: 500 })));
  return a;
}

function shadowOf(authorizer: Authorizer, opts: { sampleRate?: number; random?: () => number; candidate?: VersionedPolicy } = {}) {
  const registry = new Registry();
  const shadow = new ShadowPolicy({
    enforced: ENFORCED,
    candidate: opts.candidate ?? CANDIDATE,
    sampleRate: opts.sampleRate ?? 1,
    authorizer,
    registry,
    log: pino({ level: 'silent' }),
    ...(opts.random ? { random: opts.random } : {}),
  });
  return { shadow, registry };
}

describe('compareDecisions', () => {
  const allow = (rule: string, permission = 'p', object = 'o'): SideDecision => ({ outcome: 'allow', rule, permission, object });
  const deny = (rule: string, permission = 'p', object = 'o'): SideDecision => ({ outcome: 'deny', rule, permission, object });
  it.each([
    ['allow, allow, same rule', allow('a'), allow('a'), undefined],
    ['allow → deny', allow('a'), deny('a'), 'allow_to_deny'],
    ['deny → allow', deny('a'), allow('b'), 'deny_to_allow'],
    ['allow by another rule', allow('a'), allow('b'), 'rule_changed'],
    ['deny on another permission', deny('a', 'p'), deny('a', 'q'), 'rule_changed'],
    ['allow on another object', allow('a', 'p', 'o1'), allow('a', 'p', 'o2'), 'rule_changed'],
    ['allow → no rule', allow('a'), { outcome: 'no-route', rule: '-' }, 'route_changed'],
    ['no rule → deny', { outcome: 'no-route', rule: '-' }, deny('a'), 'route_changed'],
    ['404 both', { outcome: 'no-route', rule: '-' }, { outcome: 'no-route', rule: '-' }, undefined],
    ['405 with other Allow', { outcome: 'method-not-allowed', rule: '-', allow: 'GET' }, { outcome: 'method-not-allowed', rule: '-', allow: 'GET, POST' }, 'route_changed'],
    ['405 → 404', { outcome: 'method-not-allowed', rule: '-', allow: 'GET' }, { outcome: 'no-route', rule: '-' }, 'route_changed'],
  ] as Array<[string, SideDecision, SideDecision, string | undefined]>)('%s', (_name, enforced, candidate, kind) => {
    expect(compareDecisions(enforced, candidate)).toBe(kind);
  });
});

describe('the shadow stage', () => {
  it('allow → deny: the answer is the enforced one; the candidate is asked after it, with the same subject', async () => {
    const authorizer = tableAuthorizer(['can_read_operational tenant:t1']);
    const { shadow, registry } = shadowOf(authorizer);
    const res = await app(shadow, authorizer).request('/api/v1/tenants/t1/agents');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('forwarded');
    await shadow.settled();
    expect(authorizer.asked.map((q) => `${q.user} ${q.relation}`)).toEqual(['user:mia can_read_operational', 'user:mia can_read_configuration']);
    const s = shadow.summary();
    expect(s).toMatchObject({ requestsEvaluated: 1, diverging: 1, byKind: { allow_to_deny: 1 } });
    expect(s.divergences[0]).toMatchObject({ kind: 'allow_to_deny', rule: 'agents.list', candidateRule: 'agents.list', count: 1 });
    const text = await registry.metrics();
    expect(text).toContain('tiergate_shadow_divergences_total{kind="allow_to_deny",rule="agents.list",candidate_rule="agents.list"} 1');
  });

  it('an engine that fails for the candidate is counted and logged, never thrown: the answer stays 200', async () => {
    const authorizer = tableAuthorizer(['can_read_operational tenant:t1', 'boom']);
    const { shadow, registry } = shadowOf(authorizer);
    const res = await app(shadow, authorizer).request('/api/v1/tenants/t1/agents');
    expect(res.status).toBe(200);
    await shadow.settled();
    expect(shadow.summary()).toMatchObject({ errors: 1, requestsEvaluated: 0, diverging: 0 });
    expect(await registry.metrics()).toContain('tiergate_shadow_evaluations_total{result="error"} 1');
  });

  it('an enforced refusal (404 here) is compared too, and the refusal is what the client gets', async () => {
    const authorizer = tableAuthorizer(['can_read_operational tenant:t1']);
    const candidate = versioned('candidate.yaml', `${rule('agents.list', 'can_read_operational')}${rule('queues.list', 'can_read_operational', '/api/v1/tenants/{tenantId}/queues')}`);
    const { shadow } = shadowOf(authorizer, { candidate });
    const res = await app(shadow, authorizer).request('/api/v1/tenants/t1/queues');
    expect(res.status).toBe(404);
    await shadow.settled();
    expect(shadow.summary().divergences[0]).toMatchObject({ kind: 'route_changed', rule: '-', candidateRule: 'queues.list' });
    expect(shadow.summary().divergences[0]!.examples[0]!.candidate).toMatchObject({ outcome: 'allow' });
  });

  it('samples the share SHADOW_SAMPLE_RATE gives: a request whose draw is not below the rate is not evaluated', async () => {
    const authorizer = tableAuthorizer(['can_read_operational tenant:t1']);
    const draws = [0.1, 0.9, 0.2, 0.5];
    const { shadow } = shadowOf(authorizer, { sampleRate: 0.5, random: () => draws.shift()! });
    const a = app(shadow, authorizer);
    for (let i = 0; i < 4; i++) expect((await a.request('/api/v1/tenants/t1/agents')).status).toBe(200);
    await shadow.settled();
    expect(shadow.summary().requestsEvaluated).toBe(2);
    expect(draws).toEqual([]);
  });

  it('rate 0 installs nothing: the wrapped stage is the enforced stage itself', () => {
    const { shadow } = shadowOf(tableAuthorizer([]), { sampleRate: 0 });
    const stage = matchPolicy(ENFORCED.policy);
    expect(shadow.wrap(stage)).toBe(stage);
  });

  it('a rate outside 0..1 is refused', () => {
    expect(() => shadowOf(tableAuthorizer([]), { sampleRate: 1.5 })).toThrow(RangeError);
  });
});
