// The rate-limit stage's cost per request, in process, through a Hono app that runs
// what the stages around it do with the scope settings: without the stage (the
// pipeline as it was: the settings resolved once, for the assertion), with the stage
// and no limit set (the default), with a limit counted in this process, and with a
// limit counted in a real redis-server (one Lua call per request; the round trip is
// most of it). The settings resolver answers from memory here, as the claim cache does
// on the warm path. Benchmarks, not tests.
// Run: npx vitest bench --run tests/bench/rate-limit.bench.ts
import { Hono, type MiddlewareHandler } from 'hono';
import { Redis } from 'ioredis';
import { afterAll, bench, describe } from 'vitest';
import type { SignedSettings } from '../../src/gateway/assertion-signer.js';
import { createRequestCounter, rateLimit, type RequestCounter } from '../../src/gateway/rate-limit.js';
import { scopeSettings, type SettingsForScope } from '../../src/gateway/scope-settings.js';
import type { GatewayEnv } from '../../src/gateway/types.js';
import { startRedis } from '../../src/stack/redis-server.js';

const claim = (values: Record<string, unknown>): SignedSettings => ({ claim: { node: 'tenant:acme-sales', values, sources: {} }, digest: 'd' }) as unknown as SignedSettings;
const unlimited = claim({ 'api.rate_limit_per_minute': 0, 'recording.retention_days': 90 });
const limited = claim({ 'api.rate_limit_per_minute': 1_000_000_000, 'recording.retention_days': 90 });

function app(settings: SignedSettings, counter?: RequestCounter): Hono<GatewayEnv> {
  const settingsFor: SettingsForScope = async () => settings;
  const a = new Hono<GatewayEnv>();
  const context: MiddlewareHandler<GatewayEnv> = async (c, next) => {
    c.set('principal', { subject: 'user:u1', sub: 'u1', issuer: 'bench', expiresAt: 0 });
    c.set('policy', { scope: { type: 'tenant', id: 'acme-sales' } } as never);
    await next();
  };
  a.use('*', context);
  if (counter) a.use('*', rateLimit({ settingsFor, counter }));
  // The forward stage's assertion reads the same settings (resolved once per request).
  a.get('*', async (c) => c.text((await scopeSettings(c, settingsFor)).digest));
  return a;
}

const redisServer = await startRedis();
const redis = new Redis(redisServer.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 1000 });
await new Promise((r) => redis.once('ready', r));
afterAll(async () => {
  redis.disconnect();
  await redisServer.stop();
});

const before = app(unlimited);
const noLimit = app(unlimited, createRequestCounter({ keyPrefix: 'bench-none' }));
const inMemory = app(limited, createRequestCounter({ keyPrefix: 'bench-memory' }));
const viaRedis = app(limited, createRequestCounter({ redis, keyPrefix: 'bench-redis' }));
const request = (a: Hono<GatewayEnv>) => a.request('/api/v1/tenants/acme-sales/agents');

describe('per request', () => {
  bench('without the rate-limit stage', async () => {
    await request(before);
  });
  bench('rate-limit stage, no limit set (default)', async () => {
    await request(noLimit);
  });
  bench('rate-limit stage, limit counted in this process', async () => {
    await request(inMemory);
  });
  bench('rate-limit stage, limit counted in Redis', async () => {
    await request(viaRedis);
  });
});
