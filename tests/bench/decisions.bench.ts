// Decision latency by layer: in-process (L1, target ≤ 20 µs), Redis (L2), OpenFGA.
// Run: npx vitest bench --run tests/bench/decisions.bench.ts
import { Registry } from 'prom-client';
import { bench, describe, inject } from 'vitest';
import { DecisionCache, decisionKey } from '../../src/decisions/index.js';
import type { StructureSource } from '../../src/fga/hierarchy.js';
import type { Authorizer, CheckRequest, Decision } from '../../src/authz/types.js';
import { createTestStore } from '../support/fga.js';
import { MODEL, resourceCheck, startReplica, writeHierarchy } from '../support/decisions-fixture.js';

const allowAll: Authorizer = {
  check: async (): Promise<Decision> => ({ allowed: true, layer: 'openfga', durationMs: 0 }),
};

const structure: StructureSource = {
  parents: async (o) =>
    ({
      'tenant:tA': ['division:d2'],
      'division:d2': ['division:d1', 'organization:o1'],
      'division:d1': ['organization:o1'],
      'organization:o1': ['platform:root'],
    })[o] ?? [],
  children: async () => [],
};

const inProcessOptions = {
  engine: allowAll,
  storeId: '01JBENCHSTORE00000000000000',
  modelId: () => '01JBENCHMODEL00000000000000',
  model: MODEL,
  registry: new Registry(),
  redisTimeoutMs: 5,
  l1Enabled: true,
  l1MaxEntries: 100_000,
  allowTtlS: 300,
  denyTtlS: 30,
  ttlJitter: 0.1,
  pollMs: 1000,
  poller: false,
  structureSource: structure,
};
const inProcess = new DecisionCache(inProcessOptions);
// The same, each resource asked as it is (no parent question first): the cost of the
// parent question on a hit is the difference.
const resourceKeyed = new DecisionCache({ ...inProcessOptions, registry: new Registry(), parentQuestions: false });

// 1000 distinct warm requests (50 users' decisions on the tenant, 1000 on the agents as
// asked), round-robin (not one hot key).
const warm: CheckRequest[] = Array.from({ length: 1000 }, (_, i) => resourceCheck(`user:u${i % 50}`, 'tA', 'agent', String(i)));
await Promise.all(warm.flatMap((r) => [inProcess.authorizer.check(r), resourceKeyed.authorizer.check(r)]));
let i = 0;
let asIs = 0;

describe('in-process layer (L1)', () => {
  bench('decision served from L1 (key hash + LRU + version check)', async () => {
    const d = await inProcess.authorizer.check(warm[i++ % warm.length]!);
    if (d.layer !== 'l1') throw new Error(`expected an L1 hit, got ${d.layer}`);
  });
  bench('decision served from L1, each resource asked as it is (no parent question)', async () => {
    const d = await resourceKeyed.authorizer.check(warm[asIs++ % warm.length]!);
    if (d.layer !== 'l1') throw new Error(`expected an L1 hit, got ${d.layer}`);
  });
  bench('cache key alone (canonical encoding + SHA-256)', () => {
    decisionKey('01JBENCHSTORE00000000000000', '01JBENCHMODEL00000000000000', warm[i++ % warm.length]!);
  });
});

// Redis and OpenFGA layers against the real servers of the test run.
const store = await createTestStore();
await writeHierarchy(store.client);
const shared = await startReplica(store, { redisUrl: inject('redisUrl'), poller: false, l1Enabled: false, redisTimeoutMs: 50 });
const sharedReqs = Array.from({ length: 200 }, (_, n) => resourceCheck('user:tAadmin', 'tA', 'queue', String(n)));
for (const r of sharedReqs) await shared.cache.authorizer.check(r);
await new Promise((r) => setTimeout(r, 200)); // let the fire-and-forget L2 writes land
let j = 0;

// The in-process layer as deployed with Redis: versions validated against the bounded
// in-process copy of Redis' versions (the replica must be subscribed and fenced in).
const withRedis = await startReplica(store, { redisUrl: inject('redisUrl'), poller: false });
const withRedisReqs = Array.from({ length: 1000 }, (_, n) => resourceCheck(`user:u${n % 50}`, 'tA', 'agent', String(n)));
for (const r of withRedisReqs) await withRedis.cache.authorizer.check(r);
let m = 0;

describe('in-process layer (L1) with Redis configured', () => {
  bench('decision served from L1, Redis configured (in-process version copy)', async () => {
    const d = await withRedis.cache.authorizer.check(withRedisReqs[m++ % withRedisReqs.length]!);
    if (d.layer !== 'l1') throw new Error(`expected an L1 hit, got ${d.layer}`);
  });
});

describe('shared layer (Redis) and engine (OpenFGA)', () => {
  bench('decision served from Redis (L1 disabled)', async () => {
    const d = await shared.cache.authorizer.check(sharedReqs[j++ % sharedReqs.length]!);
    if (d.layer !== 'redis') throw new Error(`expected a Redis hit, got ${d.layer}`);
  });
  bench('decision from OpenFGA (strong consistency, past the cache)', async () => {
    await shared.cache.authorizer.check({ ...sharedReqs[j++ % sharedReqs.length]!, consistency: 'strong' });
  });
});

// Revocation across two replicas: how long tuplesChanged takes to bump, publish and
// collect both replicas' acks — after it resolves, replica B denies (see
// tests/integration/decisions-replicas.test.ts for the proof of that part).
// Replica B is never called: it only has to be up, since its ack is part of what A waits for.
await startReplica(store, { redisUrl: inject('redisUrl'), poller: false });
const A = await startReplica(store, { redisUrl: inject('redisUrl'), poller: false });
let k = 0;

describe('invalidation across two replicas', () => {
  bench('tuplesChanged: bump + publish + acks from both replicas', async () => {
    const t = { user: `user:rev${k++ % 50}`, relation: 'admin', object: 'tenant:tA' };
    await A.cache.invalidator.tuplesChanged({ writes: [], deletes: [t] });
  });
});
