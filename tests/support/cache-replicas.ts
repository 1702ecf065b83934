// Two standalone gateway processes (replicas A and B) sharing one Redis, one
// OpenFGA store and one tenant-resource service, for the decision cache's
// end-to-end tests (tests/e2e/cache-replicas*.test.ts).
//
// What the replicas share, and how:
//   - the store and model: the store is bootstrapped here first and pinned in both
//     (OPENFGA_STORE_ID); bootstrapping the same model.fga again finds the same model id;
//   - Redis: a redis-server of the test file's own (startRedis), so a test can kill it
//     and start it again on the same port; optionally reached through a TCP relay, so a
//     test can also cut the replicas off a Redis that keeps its data;
//   - the assertion signing key: created here in A's data dir and copied into B's
//     before either starts (the gateway loads the key file when it exists), so the one
//     tenant service trusts both. The data dirs stay separate: each process has its own
//     PGlite under TIERGATE_DATA_DIR/pglite, which cannot be shared between processes;
//   - the trusted issuer (AUTH_ISSUERS with a jwksFile).
// Each process has its own PGlite, so the admin API's hierarchy and role writes all go
// through replica A (which knows the nodes); replica B serves the data path only.
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalJWKSet } from 'jose';
import { inject } from 'vitest';
import { ASSERTION_KEY_FILE, createAssertionSigner } from '../../src/gateway/assertion-signer.js';
import { startRedis, type RedisServer } from '../../src/stack/redis-server.js';
import { startTenantService, type RunningTenantService } from '../../src/tenant-service/server.js';
import { scrape, type Scrape } from '../../load/lib/prom.js';
import { createTestStore, type TestStore } from './fga.js';
import { tempDir } from './cleanup.js';
import { startGatewayProcess, type GatewayProcess } from './gateway-process.js';
import { call, type JsonResponse } from './json-call.js';
import { startTcpRelay, type TcpRelay } from './tcp-relay.js';
import { createTestIssuer, type TestIssuer } from './test-issuer.js';
import { waitFor } from './wait.js';
import { freeListenPort } from './listen-port.js';

export const POLL_MS = 300;
const ASSERTION_AUDIENCE = 'tenant-service';

export interface Replica {
  name: 'A' | 'B';
  proc: GatewayProcess;
  url: string;
  metricsUrl: string;
}

/** Parsed Prometheus text: `name{label="v",…}` → value. */

export interface ReplicaPair {
  store: TestStore;
  redis: RedisServer;
  /** The TCP relay the replicas reach Redis through (with `redisRelay`). */
  relay?: TcpRelay;
  tenantService: RunningTenantService;
  issuer: TestIssuer;
  A: Replica;
  B: Replica;
  /** `Bearer …` for `sub` (one token per subject). */
  auth(sub: string): Promise<string>;
  /** An admin API call through replica A. */
  admin(sub: string, method: string, path: string, body?: unknown): Promise<JsonResponse>;
  /** Like admin(), but fails the test unless the answer is 2xx. */
  adminOk(sub: string, method: string, path: string, body?: unknown): Promise<JsonResponse>;
  /** A data-path request through replica `r`. */
  get(r: Replica, sub: string, path: string): Promise<JsonResponse>;
  /** Starts (again) a redis-server on the port the gateways were given. */
  restartRedis(): Promise<void>;
  stop(): Promise<void>;
}

export async function startReplicaPair(opts: {
  platformAdmin: string;
  redisRelay?: boolean;
  /** One PostgreSQL for both replicas (DATABASE_URL), as production replicas share one; each its own PGlite otherwise. */
  databaseUrl?: string;
}): Promise<ReplicaPair> {
  const fgaApiUrl = inject('openfgaUrl');
  const [store, redis0, issuer] = await Promise.all([
    createTestStore({ apiUrl: fgaApiUrl, platformAdmins: [opts.platformAdmin] }),
    startRedis(),
    createTestIssuer(tempDir()),
  ]);
  let redis = redis0;

  // One signing key for both replicas, written where each one's TIERGATE_DATA_DIR looks.
  const dirA = tempDir('tiergate-replica-a-');
  const dirB = tempDir('tiergate-replica-b-');
  const signer = await createAssertionSigner({ audience: ASSERTION_AUDIENCE, ttlSeconds: 60, keyFile: join(dirA, ASSERTION_KEY_FILE) });
  copyFileSync(join(dirA, ASSERTION_KEY_FILE), join(dirB, ASSERTION_KEY_FILE));
  const tenantService = await startTenantService({ audience: ASSERTION_AUDIENCE, verifyKey: createLocalJWKSet(signer.jwks) });
  const relay = opts.redisRelay ? await startTcpRelay(redis.port) : undefined;

  const base: Record<string, string> = {
    OPENFGA_API_URL: fgaApiUrl,
    OPENFGA_API_TOKEN: store.apiToken,
    OPENFGA_STORE_ID: store.storeId,
    TENANT_SERVICE_URL: tenantService.url,
    // The tenant service serves the report routes too: the policy's `reports` upstream.
    UPSTREAM_URLS: `reports=${tenantService.url}`,
    REDIS_URL: relay ? `redis://127.0.0.1:${relay.port}` : redis.url,
    AUTH_ISSUERS: issuer.authIssuers,
    ASSERTION_AUDIENCE,
    READCHANGES_POLL_MS: String(POLL_MS),
    // A generous request-path Redis budget: this 2-core machine is shared and slow at
    // times, and a spurious timeout would turn a hit into a (correct) miss, blurring the
    // hit counts asserted here. A killed Redis refuses at once whatever the budget.
    REDIS_TIMEOUT_MS: '100',
    ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
  };
  const start = async (name: 'A' | 'B', dataDir: string): Promise<Replica> => {
    const metricsPort = await freeListenPort();
    const proc = await startGatewayProcess({ ...base, TIERGATE_DATA_DIR: dataDir, METRICS_PORT: String(metricsPort) });
    return { name, proc, url: proc.url, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
  };
  // One after the other: two tsx start-ups at once on two cores gain nothing.
  const A = await start('A', dirA);
  const B = await start('B', dirB);

  // Both processes must sign with the key the tenant service trusts.
  for (const r of [A, B]) {
    const jwks = (await call(r.url, 'GET', '/.well-known/tiergate/jwks.json')).body as { keys: Array<{ kid?: string }> };
    if (jwks.keys.length !== 1 || jwks.keys[0]!.kid !== signer.jwks.keys[0]!.kid) {
      throw new Error(`replica ${r.name} does not sign with the shared assertion key: ${JSON.stringify(jwks)}`);
    }
  }

  const tokens = new Map<string, Promise<string>>();
  const auth = async (sub: string) => {
    if (!tokens.has(sub)) tokens.set(sub, issuer.token(sub));
    return `Bearer ${await tokens.get(sub)!}`;
  };
  const admin = async (sub: string, method: string, path: string, body?: unknown) =>
    call(A.url, method, `/admin/v1${path}`, { auth: await auth(sub), ...(body !== undefined ? { body } : {}) });
  let stopped = false;
  return {
    store,
    get redis() {
      return redis;
    },
    ...(relay ? { relay } : {}),
    tenantService,
    issuer,
    A,
    B,
    auth,
    admin,
    async adminOk(sub, method, path, body) {
      const res = await admin(sub, method, path, body);
      if (res.status >= 300) throw new Error(`${sub} ${method} /admin/v1${path} answered ${res.status}: ${res.text}`);
      return res;
    },
    get: async (r, sub, path) => call(r.url, 'GET', path, { auth: await auth(sub) }),
    async restartRedis() {
      redis = await startRedis({ port: redis.port });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all([A.proc.stop(), B.proc.stop()]);
      await Promise.all([tenantService.close(), relay?.stop(), redis.stop()]);
    },
  };
}

// ---------------------------------------------------------------- metrics

/** The value of one series, 0 when absent (prom-client omits never-touched labelled series). */
export function metric(m: Scrape, series: string): number {
  return m.get(series) ?? 0;
}

/** The decision cache counters the tests read, from one scrape. */
export interface CacheCounts {
  l1Hit: number;
  l1Miss: number;
  l1Stale: number;
  l1Bypass: number;
  redisHit: number;
  redisMiss: number;
  redisBypass: number;
  redisError: number;
  /** Checks answered by OpenFGA on a miss (allowed + denied + error). */
  engine: number;
  pollsOk: number;
  /** Changes the ReadChanges poller read and left alone: tiergate's own writes, bumped by their writer. */
  ownWritesSkipped: number;
  /** Invalidations some replica did not acknowledge in time (the write is then bumped by the poller too). */
  ackTimeouts: number;
  redisUp: number;
  subscriberUp: number;
  /** Full drops of the in-process layer after (re)subscribing. */
  resyncs: number;
  /** invalidations_total by `kind/source`, e.g. `role_revoke/readchanges`. */
  invalidations: Record<string, number>;
}

export async function cacheCounts(r: Replica): Promise<CacheCounts> {
  const m = await scrape(r.metricsUrl);
  const lookups = (layer: string, result: string) => metric(m, `tiergate_decision_cache_lookups_total{layer=${layer},result=${result}}`);
  const invalidations: Record<string, number> = {};
  for (const [k, v] of m) {
    const hit = /^tiergate_decision_invalidations_total\{kind=([a-z_]+),source=([a-z]+)\}$/.exec(k);
    if (hit) invalidations[`${hit[1]}/${hit[2]}`] = v;
  }
  return {
    l1Hit: lookups('l1', 'hit'),
    l1Miss: lookups('l1', 'miss'),
    l1Stale: lookups('l1', 'stale'),
    l1Bypass: lookups('l1', 'bypass'),
    redisHit: lookups('redis', 'hit'),
    redisMiss: lookups('redis', 'miss'),
    redisBypass: lookups('redis', 'bypass'),
    redisError: lookups('redis', 'error'),
    engine: ['allowed', 'denied', 'error'].reduce((n, o) => n + metric(m, `tiergate_decision_engine_calls_total{outcome=${o}}`), 0),
    pollsOk: metric(m, 'tiergate_decision_readchanges_polls_total{outcome=ok}'),
    ownWritesSkipped: metric(m, 'tiergate_decision_readchanges_changes_total{outcome=own_write_skipped}'),
    ackTimeouts: metric(m, 'tiergate_decision_invalidation_ack_timeouts_total{}'),
    redisUp: metric(m, 'tiergate_decision_redis_up{}'),
    subscriberUp: metric(m, 'tiergate_decision_subscriber_up{}'),
    resyncs: metric(m, 'tiergate_decision_resyncs_total{}'),
    invalidations,
  };
}

/** after - before, field by field (the invalidations map by key). */
export function delta(before: CacheCounts, after: CacheCounts): Omit<CacheCounts, 'invalidations'> & { invalidations: Record<string, number> } {
  const out = {} as Record<string, unknown>;
  for (const k of Object.keys(after) as Array<keyof CacheCounts>) {
    if (k === 'invalidations') continue;
    out[k] = (after[k] as number) - (before[k] as number);
  }
  const inv: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.invalidations)) {
    const d = v - (before.invalidations[k] ?? 0);
    if (d !== 0) inv[k] = d;
  }
  out.invalidations = inv;
  return out as ReturnType<typeof delta>;
}

/**
 * Waits until the ReadChanges poller has caught up with every write acknowledged so
 * far: three successful polls (counted over both replicas: only the lease holder
 * polls) after this call. The first may have started before it; the second started
 * after the first ended, so it read every change made before this call and applied
 * it (bumped in Redis, published) before counting; the third leaves one more poll
 * interval for the other replica to receive that publish. The poller bumps every change
 * made straight in OpenFGA, and a write of tiergate's own when its invalidation was not
 * acknowledged in time (harmless: one extra miss), so a test that counts hits waits for
 * this before warming its decisions.
 */
export async function pollerCaughtUp(pair: Pick<ReplicaPair, 'A' | 'B'>, timeoutMs = 15_000): Promise<void> {
  const polls = async () => (await cacheCounts(pair.A)).pollsOk + (await cacheCounts(pair.B)).pollsOk;
  const start = await polls();
  if (!(await waitFor(async () => (await polls()) >= start + 3, timeoutMs, 100))) {
    throw new Error(`the ReadChanges poller did not complete 3 polls within ${timeoutMs} ms`);
  }
}

/**
 * Requests `path` as `sub` through `r` (each answer must have `status`) until one
 * request is, by r's own /metrics, exactly one in-process hit and no OpenFGA call.
 */
export async function warm(pair: Pick<ReplicaPair, 'get'>, r: Replica, sub: string, path: string, status: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const before = await cacheCounts(r);
    const res = await pair.get(r, sub, path);
    if (res.status !== status) throw new Error(`warming ${sub} GET ${path} on ${r.name}: ${res.status} (expected ${status}): ${res.text}`);
    const d = delta(before, await cacheCounts(r));
    if (d.l1Hit === 1 && d.engine === 0) return;
    if (Date.now() > deadline) throw new Error(`${sub} GET ${path} never became an in-process hit on ${r.name}: ${JSON.stringify(d)}`);
  }
}
