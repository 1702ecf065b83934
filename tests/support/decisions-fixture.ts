// Shared pieces of the decision cache tests: a hierarchy in a real OpenFGA store,
// cache instances standing in for gateway replicas, and small helpers.
import { Registry } from 'prom-client';
import type { OpenFgaClient } from '@openfga/sdk';
import { FgaRequestClient } from '../../src/fga/request-client.js';
import { OpenFgaAuthorizer } from '../../src/fga/authorizer.js';
import { loadModel } from '../../src/fga/model.js';
import { DecisionCache, type DecisionCacheOptions } from '../../src/decisions/index.js';
import type { Authorizer, CheckRequest, Decision, TupleChange, TupleKey } from '../../src/authz/types.js';
import type { TestStore } from './fga.js';

export const MODEL = loadModel().request;

/** Wraps a real Authorizer and counts the calls that reach it. */
export class CountingAuthorizer implements Authorizer {
  calls = 0;
  constructor(readonly inner: Authorizer) {}
  check(req: CheckRequest): Decision | Promise<Decision> {
    this.calls++;
    return this.inner.check(req);
  }
}

export function engineFor(store: Pick<TestStore, 'apiUrl' | 'apiToken' | 'storeId' | 'authorizationModelId'>, timeoutMs = 5000): OpenFgaAuthorizer {
  return new OpenFgaAuthorizer({
    api: new FgaRequestClient({ apiUrl: store.apiUrl, apiToken: store.apiToken, storeId: store.storeId, timeoutMs }),
    authorizationModelId: store.authorizationModelId,
  });
}

export interface Replica {
  cache: DecisionCache;
  engine: CountingAuthorizer;
  registry: Registry;
  check(user: string, relation: string, object: string, extra?: Partial<CheckRequest>): Promise<Decision>;
}

export async function startReplica(
  store: Pick<TestStore, 'apiUrl' | 'apiToken' | 'storeId' | 'authorizationModelId' | 'client' | 'api'>,
  opts: Partial<DecisionCacheOptions> & { engine?: Authorizer } = {},
): Promise<Replica> {
  const engine = new CountingAuthorizer(opts.engine ?? engineFor(store));
  const registry = new Registry();
  const cache = new DecisionCache({
    api: store.api,
    storeId: store.storeId,
    modelId: () => store.authorizationModelId,
    model: MODEL,
    registry,
    // Generous budgets: the shared 2-core test machine is slow at times, and a
    // spurious timeout would only turn a hit into a (correct) miss.
    redisTimeoutMs: 500,
    l1Enabled: true,
    l1MaxEntries: 10_000,
    allowTtlS: 300,
    denyTtlS: 30,
    ttlJitter: 0.1,
    pollMs: 200,
    heartbeatMs: 100,
    ackTimeoutMs: 3000,
    fenceMs: 3000,
    ...opts,
    engine,
  });
  await cache.start();
  return {
    cache,
    engine,
    registry,
    check: async (user, relation, object, extra = {}) => cache.authorizer.check({ user, relation, object, contextualTuples: [], ...extra }),
  };
}

/** Two replicas of the same kind (each its own cache, started one after the other). */
export async function startReplicaPair(
  store: Parameters<typeof startReplica>[0],
  opts: Parameters<typeof startReplica>[1] = {},
): Promise<[Replica, Replica]> {
  const first = await startReplica(store, opts);
  return [first, await startReplica(store, opts)];
}

/** Closes every replica that was started; ones a failed setup never made are skipped. */
export async function closeReplicas(...replicas: Array<Replica | undefined>): Promise<void> {
  for (const r of replicas) await r?.cache.close();
}

export function tuple(user: string, relation: string, object: string): TupleKey {
  return { user, relation, object };
}

/** Writes to OpenFGA, then tells the invalidator (what the admin API does). */
export async function writeThrough(client: OpenFgaClient, replica: Replica, change: Partial<TupleChange>): Promise<void> {
  const full: TupleChange = { writes: change.writes ?? [], deletes: change.deletes ?? [] };
  await client.write({ writes: full.writes, deletes: full.deletes });
  await replica.cache.invalidator.tuplesChanged(full);
}

/**
 * The hierarchy most tests use:
 *   platform:root ── organization:o1 ── division:d1 ── division:d2 (nested) ── tenant:tA, tenant:tB
 *                                    └─ division:d3 ── tenant:tC
 * with an admin on each node and a member in tA.
 */
export const HIERARCHY: TupleKey[] = [
  tuple('user:plat', 'admin', 'platform:root'),
  tuple('platform:root', 'platform', 'organization:o1'),
  tuple('user:orgadmin', 'admin', 'organization:o1'),
  tuple('organization:o1', 'organization', 'division:d1'),
  tuple('organization:o1', 'organization', 'division:d2'),
  tuple('division:d1', 'parent', 'division:d2'),
  tuple('organization:o1', 'organization', 'division:d3'),
  tuple('user:d1admin', 'admin', 'division:d1'),
  tuple('user:d2admin', 'admin', 'division:d2'),
  tuple('user:d3admin', 'admin', 'division:d3'),
  tuple('division:d2', 'division', 'tenant:tA'),
  tuple('division:d2', 'division', 'tenant:tB'),
  tuple('division:d3', 'division', 'tenant:tC'),
  tuple('user:tAadmin', 'admin', 'tenant:tA'),
  tuple('user:tAuser', 'member', 'tenant:tA'),
  tuple('user:tBadmin', 'admin', 'tenant:tB'),
  tuple('user:tCadmin', 'admin', 'tenant:tC'),
];

export async function writeHierarchy(client: OpenFgaClient): Promise<void> {
  await client.write({ writes: HIERARCHY });
}

/** A tenant resource check the way the gateway makes it: the tenant link is contextual. */
export function resourceCheck(user: string, tenant: string, kind: string, id: string, relation = 'can_read'): CheckRequest {
  const object = `${kind}:${tenant}/${id}`;
  return {
    user,
    relation,
    object,
    contextualTuples: [tuple(`tenant:${tenant}`, 'tenant', object)],
    scope: { type: 'tenant', id: tenant },
  };
}
