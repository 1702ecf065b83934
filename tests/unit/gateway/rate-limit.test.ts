// The rate-limit stage without a server: bucket keys, the RateLimit fields, the `min`
// merge of the limit keys, and the stage's answers with this process's own counter (the
// shared Redis counter and its outage are in tests/e2e/rate-limit-replicas.test.ts).
import { Hono } from 'hono';
import { Redis } from 'ioredis';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { renderGatewayError } from '../../../src/gateway/app.js';
import type { SignedSettings } from '../../../src/gateway/assertion-signer.js';
import {
  bucketsFor,
  createRequestCounter,
  limitOf,
  principalDigest,
  rateLimit,
  rateLimitFields,
  secondsUntil,
  type RequestCounter,
} from '../../../src/gateway/rate-limit.js';
import type { GatewayEnv } from '../../../src/gateway/types.js';
import type { StoredEntry } from '../../../src/settings/document.js';
import { effectiveValue, lowerLimit, type ChainLevel } from '../../../src/settings/effective.js';
import { loadRegistry, parseRegistry } from '../../../src/settings/registry.js';
import { useCleanup } from '../../support/cleanup.js';

useCleanup();

const ann = { issuer: 'https://idp.example', sub: 'ann' };

describe('bucket keys', () => {
  it('no limit set: no bucket, so nothing is counted', () => {
    expect(bucketsFor('tenant:acme-sales', ann, {})).toEqual([]);
    expect(bucketsFor('tenant:acme-sales', ann, { 'api.rate_limit_per_minute': 0, 'api.rate_limit_per_principal_per_minute': 0 })).toEqual([]);
  });

  it('the node limit counts in the node bucket, the principal limit in the principal bucket within the node', () => {
    const b = bucketsFor('tenant:acme-sales', ann, { 'api.rate_limit_per_minute': 100, 'api.rate_limit_per_principal_per_minute': 10 });
    expect(b).toEqual([
      { policy: 'node', key: 'tenant:acme-sales', limit: 100 },
      { policy: 'principal', key: `tenant:acme-sales/p:${principalDigest(ann)}`, limit: 10 },
    ]);
    expect(principalDigest(ann)).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it('a principal bucket belongs to one issuer and subject within one node', () => {
    const key = (node: string, p: { issuer: string; sub: string }) => bucketsFor(node, p, { 'api.rate_limit_per_principal_per_minute': 5 })[0]!.key;
    const keys = new Set([
      key('tenant:a', ann),
      key('tenant:b', ann),
      key('tenant:a', { issuer: 'https://other.example', sub: 'ann' }),
      key('tenant:a', { issuer: 'https://idp.example', sub: 'bob' }),
      // A separator inside the values must not make two principals one.
      key('tenant:a', { issuer: 'https://idp.example\0ann', sub: '' }),
    ]);
    expect(keys.size).toBe(5);
  });

  it('reads only positive integers as limits', () => {
    for (const v of [undefined, null, 0, -5, 1.5, '10', Number.NaN, [10]]) expect(limitOf(v), String(v)).toBe(0);
    expect(limitOf(7)).toBe(7);
  });
});

describe('RateLimit fields', () => {
  it('one item per bucket: quota and window, remaining and seconds to reset', () => {
    expect(
      rateLimitFields([
        { policy: 'node', key: 'tenant:t', limit: 100, consumed: 58, msBeforeNext: 16_200 },
        { policy: 'principal', key: 'tenant:t/p:x', limit: 10, consumed: 12, msBeforeNext: 40_000 },
      ]),
    ).toEqual({
      'ratelimit-policy': '"node";q=100;w=60, "principal";q=10;w=60',
      ratelimit: '"node";r=42;t=17, "principal";r=0;t=40',
    });
  });

  it('rounds the time left up to whole seconds, never to 0 while some remains', () => {
    expect(secondsUntil(0)).toBe(0);
    expect(secondsUntil(1)).toBe(1);
    expect(secondsUntil(1000)).toBe(1);
    expect(secondsUntil(1001)).toBe(2);
    expect(secondsUntil(59_999)).toBe(60);
  });
});

describe('merge: min', () => {
  const registry = loadRegistry('policy/settings.yaml');
  const def = registry.get('api.rate_limit_per_minute')!;
  const e = (entry: StoredEntry['entry']): StoredEntry => ({ entry, author: 'user:a', at: '2026-01-01T00:00:00.000Z' });
  const chain = (...levels: Array<[string, StoredEntry['entry'] | undefined]>): ChainLevel[] =>
    levels.map(([node, entry]) => ({ node, entries: entry ? { [def.key]: e(entry) } : {} }));

  it('ships both limit keys unlimited by default, merged as min', () => {
    for (const k of ['api.rate_limit_per_minute', 'api.rate_limit_per_principal_per_minute']) {
      expect(registry.get(k)).toMatchObject({ default: 0, min: 0, merge: 'min', type: 'integer' });
    }
  });

  it('0 is no limit: the tighter of two limits ignores it', () => {
    expect(lowerLimit(0, 0)).toBe(0);
    expect(lowerLimit(0, 5)).toBe(5);
    expect(lowerLimit(5, 0)).toBe(5);
    expect(lowerLimit(5, 3)).toBe(3);
    expect(lowerLimit(3, 5)).toBe(3);
  });

  it('a node below can lower the limit, never raise or remove it', () => {
    const org = 'organization:acme';
    const div = 'division:d1';
    const ten = 'tenant:t1';
    expect(effectiveValue(def, chain([org, undefined], [div, undefined], [ten, undefined]))).toMatchObject({ value: 0, source: 'default' });
    expect(effectiveValue(def, chain([org, { set: 100 }], [div, undefined], [ten, { set: 500 }]))).toMatchObject({ value: 100, source: org });
    expect(effectiveValue(def, chain([org, { set: 100 }], [div, { set: 0 }], [ten, undefined]))).toMatchObject({ value: 100, source: org });
    expect(effectiveValue(def, chain([org, { set: 100 }], [div, { reset: true }], [ten, undefined]))).toMatchObject({ value: 100, source: org });
    expect(effectiveValue(def, chain([org, { set: 100 }], [div, { set: 40 }], [ten, { set: 60 }]))).toMatchObject({ value: 40, source: div });
    expect(effectiveValue(def, chain([org, undefined], [div, undefined], [ten, { set: 20 }]))).toMatchObject({ value: 20, source: ten });
    // A lock above still makes the entries below void.
    expect(effectiveValue(def, chain([org, { set: 100, lock: true }], [div, { set: 10 }], [ten, undefined]))).toMatchObject({ value: 100, source: org, lockedBy: org });
  });

  it('only a non-negative integer key may merge as min', () => {
    const text = (type: string, extra: string[]) => ['version: 1', 'keys:', '  a.b:', '    description: x', `    type: ${type}`, ...extra, '    merge: min'].join('\n');
    expect(() => parseRegistry(text('boolean', ['    default: false']), 'r.yaml')).toThrow(/keys\.a\.b\.merge: only a non-negative integer key merges as min/);
    expect(() => parseRegistry(text('integer', ['    default: 0', '    min: -1', '    max: 5']), 'r.yaml')).toThrow(/merges as min/);
    expect(parseRegistry(text('integer', ['    default: 0', '    min: 0', '    max: 5']), 'r.yaml').get('a.b')!.merge).toBe('min');
  });
});

function settings(values: Record<string, unknown>): SignedSettings {
  return { claim: { node: 'tenant:t1', values, sources: {} }, digest: 'd' } as unknown as SignedSettings;
}

function appWith(opts: { values: Record<string, unknown> | (() => Record<string, unknown>); counter: RequestCounter; outcomes?: string[]; sub?: string }) {
  const app = new Hono<GatewayEnv>();
  app.onError(renderGatewayError);
  app.use('*', async (c, next) => {
    c.set('requestId', 'rid-1');
    c.set('log', pino({ level: 'silent' }));
    c.set('principal', { subject: `user:${c.req.header('x-sub') ?? 'ann'}`, sub: c.req.header('x-sub') ?? 'ann', issuer: 'test', expiresAt: 0 });
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
  let resolved = 0;
  app.use(
    '*',
    rateLimit({
      settingsFor: async () => {
        resolved++;
        return settings(typeof opts.values === 'function' ? opts.values() : opts.values);
      },
      counter: opts.counter,
      onOutcome: (o) => opts.outcomes?.push(o),
    }),
  );
  app.get('*', (c) => c.text('forwarded'));
  return { app, resolved: () => resolved };
}

describe('rate-limit stage', () => {
  it('with no limit set, passes without counting and without headers', async () => {
    const taken: string[] = [];
    const counter: RequestCounter = { take: async (key) => (taken.push(key), { consumed: 1, msBeforeNext: 60_000, degraded: false }) };
    const outcomes: string[] = [];
    const { app } = appWith({ values: { 'api.rate_limit_per_minute': 0 }, counter, outcomes });
    const res = await app.request('/x');
    expect(res.status).toBe(200);
    expect(res.headers.get('ratelimit')).toBeNull();
    expect(res.headers.get('ratelimit-policy')).toBeNull();
    expect(taken).toEqual([]);
    expect(outcomes).toEqual([]);
  });

  it('answers 429 rate-limited after N requests, with Retry-After and the RateLimit fields', async () => {
    const outcomes: string[] = [];
    const { app } = appWith({ values: { 'api.rate_limit_per_minute': 3 }, counter: createRequestCounter({ keyPrefix: 'unit' }), outcomes });
    for (let i = 1; i <= 3; i++) {
      const ok = await app.request('/x');
      expect(ok.status).toBe(200);
      expect(ok.headers.get('ratelimit-policy')).toBe('"node";q=3;w=60');
      expect(ok.headers.get('ratelimit')).toMatch(new RegExp(`^"node";r=${3 - i};t=\\d+$`));
    }
    const refused = await app.request('/x');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toBe('application/problem+json');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect(refused.headers.get('ratelimit-policy')).toBe('"node";q=3;w=60');
    expect(refused.headers.get('ratelimit')).toMatch(/^"node";r=0;t=\d+$/);
    expect(await refused.json()).toMatchObject({
      type: 'https://tiergate.dev/problems/rate-limited',
      status: 429,
      policy: 'node',
      limit: 3,
      window: 60,
      requestId: 'rid-1',
    });
    expect(outcomes).toEqual(['passed', 'passed', 'passed', 'refused']);
  });

  it('a refused bucket is refused again without counting, until its limit changes', async () => {
    const taken: string[] = [];
    const local = createRequestCounter({ keyPrefix: 'unit-over' });
    const counter: RequestCounter = { take: (key) => (taken.push(key), local.take(key)) };
    let limit = 1;
    const { app } = appWith({ values: () => ({ 'api.rate_limit_per_minute': limit }), counter });
    expect((await app.request('/x')).status).toBe(200);
    expect((await app.request('/x')).status).toBe(429);
    expect((await app.request('/x')).status).toBe(429);
    expect(taken).toHaveLength(2);
    // Raised: the next request is counted against the new limit (3 counted so far, 5 allowed).
    limit = 5;
    const res = await app.request('/x');
    expect(res.status).toBe(200);
    expect(res.headers.get('ratelimit')).toMatch(/^"node";r=2;t=\d+$/);
    expect(taken).toHaveLength(3);
  });

  it('the principal limit refuses one principal while others go on', async () => {
    const { app } = appWith({ values: { 'api.rate_limit_per_principal_per_minute': 2 }, counter: createRequestCounter({ keyPrefix: 'unit-p' }) });
    const as = (sub: string) => app.request('/x', { headers: { 'x-sub': sub } });
    expect((await as('ann')).status).toBe(200);
    expect((await as('ann')).status).toBe(200);
    const refused = await as('ann');
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ policy: 'principal', limit: 2 });
    const bob = await as('bob');
    expect(bob.status).toBe(200);
    expect(bob.headers.get('ratelimit-policy')).toBe('"principal";q=2;w=60');
  });

  it('fails closed with 503 when the settings cannot be resolved', async () => {
    const app = new Hono<GatewayEnv>();
    app.onError(renderGatewayError);
    app.use('*', async (c, next) => {
      c.set('policy', { scope: { type: 'tenant', id: 't1' } } as never);
      await next();
    });
    app.use('*', rateLimit({ settingsFor: () => Promise.reject(new Error('db down')), counter: createRequestCounter({ keyPrefix: 'x' }) }));
    app.get('*', (c) => c.text('forwarded'));
    const res = await app.request('/x');
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
  });

  it('a Redis that is not connected degrades to this process counting, never to an error or no limit', async () => {
    // A real ioredis client that has not connected (lazyConnect): not ready, so every count goes to the insurance limiter.
    const redis = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    const counter = createRequestCounter({ redis, keyPrefix: 'unit-degraded' });
    const outcomes: string[] = [];
    const { app } = appWith({ values: { 'api.rate_limit_per_minute': 2 }, counter, outcomes });
    expect((await app.request('/x')).status).toBe(200);
    expect((await app.request('/x')).status).toBe(200);
    expect((await app.request('/x')).status).toBe(429);
    expect(outcomes).toEqual(['degraded', 'passed', 'degraded', 'passed', 'degraded', 'refused']);
    redis.disconnect();
  });
});
