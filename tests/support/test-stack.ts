// A complete gateway in the test process, on free loopback ports: a fresh store on the
// shared (or a given) OpenFGA, an in-memory PGlite, the real tenant-resource service (or
// a given upstream URL), and the gateway built by startGateway(loadConfig(env)) exactly as
// `npm start` builds it, trusting a test issuer through AUTH_ISSUERS. Stopped at the end
// of the file through useCleanup().
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLocalJWKSet, type JWK } from 'jose';
import pino from 'pino';
import { expect, inject } from 'vitest';
import { loadConfig, type Config } from '../../src/config.js';
import { openDb, type Db } from '../../src/db/index.js';
import { loadModel } from '../../src/fga/model.js';
import { ASSERTION_KEY_FILE } from '../../src/gateway/assertion-signer.js';
import { startGateway, type RunningGateway } from '../../src/server/gateway-server.js';
import { startTenantService, type RunningTenantService } from '../../src/tenant-service/server.js';
import { owned, tempDir } from './cleanup.js';
import { createTestStore, type TestStore } from './fga.js';
import { call } from './json-call.js';
import { createTestIssuer, type TestIssuer } from './test-issuer.js';

export interface TestStackOptions {
  /** OpenFGA to use; default the run's shared server (inject('openfgaUrl')). */
  fgaApiUrl?: string;
  /** An existing store; default a fresh one bootstrapped on `fgaApiUrl`. */
  store?: TestStore;
  /** Bootstrapped as platform admins (PLATFORM_ADMINS) when a fresh store is made. */
  platformAdmins?: string[];
  /** Client ids granted the AuthZEN API (AUTHZEN_CLIENTS) when a fresh store is made. */
  authzenClients?: string[];
  /**
   * Forward to this URL (e.g. a recording upstream) instead of the real tenant service:
   * the built-in tenant-service upstream and, unless UPSTREAM_URLS in `env` names others,
   * the policy's `reports` upstream too.
   */
  upstreamUrl?: string;
  /** REDIS_URL for the decision cache (e.g. inject('redisUrl')); none by default. */
  redisUrl?: string;
  /** More configuration, as environment variables (they win over the defaults here). */
  env?: Record<string, string>;
  /** Keep the gateway's (and tenant service's) JSON log lines in `logs`. */
  captureLogs?: boolean;
  /** The database of the admin API and the tenant service (e.g. openDb({url}) on a PostgreSQL); the caller closes it. Default an in-memory PGlite. */
  db?: Db;
}

export interface TestStack {
  /** Base URL of the gateway, e.g. http://127.0.0.1:40123 */
  gatewayUrl: string;
  gatewayPort: number;
  /** Where requests are forwarded: the tenant service, or the given upstream. */
  upstreamUrl: string;
  /** The real tenant service, unless `upstreamUrl` was given. */
  tenantService?: RunningTenantService;
  gateway: RunningGateway;
  config: Config;
  /** The environment the configuration was parsed from. */
  env: Record<string, string>;
  store: TestStore;
  /** The database shared by the admin API and the tenant service (an in-memory PGlite unless given). */
  db: Db;
  dataDir: string;
  issuer: TestIssuer;
  /** A token for `sub` from the trusted test issuer. */
  token(sub: string): Promise<string>;
  /** `Authorization: Bearer …` for `sub` (tokens are minted once per subject). */
  authHeader(sub: string): Promise<string>;
  /** JSON log lines written so far (with `captureLogs`). */
  logs: string[];
  /**
   * Environment for another gateway (startGatewayProcess) serving the same store,
   * issuer and upstream, and signing assertions with this gateway's key, with its
   * own data dir (and so its own PGlite: PGlite cannot be shared between processes).
   */
  replicaEnv(extra?: Record<string, string>): Record<string, string>;
  stop(): Promise<void>;
}

function collector(lines: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(line);
      done();
    },
  });
}

export async function startTestStack(opts: TestStackOptions = {}): Promise<TestStack> {
  const dataDir = tempDir();
  const fgaApiUrl = opts.store?.apiUrl ?? opts.fgaApiUrl ?? inject('openfgaUrl');
  const [store, db, issuer] = await Promise.all([
    opts.store ?? createTestStore({ apiUrl: fgaApiUrl, platformAdmins: opts.platformAdmins ?? [], authzenClients: opts.authzenClients ?? [] }),
    opts.db ?? openDb({}),
    createTestIssuer(dataDir),
  ]);
  const stopDb = opts.db ? async () => undefined : owned(() => db.close());

  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: opts.captureLogs ? 'info' : 'silent',
    TIERGATE_DATA_DIR: dataDir,
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: '0',
    METRICS_PORT: '0',
    AUTH_ISSUERS: issuer.authIssuers,
    DEV_ISSUER: 'false',
    OPENFGA_API_URL: fgaApiUrl,
    OPENFGA_API_TOKEN: store.apiToken,
    OPENFGA_STORE_ID: store.storeId,
    PLATFORM_ADMINS: (opts.platformAdmins ?? []).join(','),
    AUTHZEN_CLIENTS: (opts.authzenClients ?? []).join(','),
    ...(opts.redisUrl ? { REDIS_URL: opts.redisUrl } : {}),
    ...(opts.upstreamUrl ? { TENANT_SERVICE_URL: opts.upstreamUrl } : {}),
    ...opts.env,
  };
  const config = loadConfig(env);
  const logs: string[] = [];
  const logger = opts.captureLogs ? pino({ level: config.LOG_LEVEL, base: undefined }, collector(logs)) : pino({ level: 'silent' });

  // The real tenant service trusts the gateway's assertion key, known once the gateway is built.
  let tenantService: RunningTenantService | undefined;
  let upstreamUrl = opts.upstreamUrl;
  let gatewayKeys: { keys: JWK[] } | undefined;
  if (upstreamUrl === undefined) {
    let verify: ReturnType<typeof createLocalJWKSet> | undefined;
    tenantService = await startTenantService({
      audience: config.ASSERTION_AUDIENCE,
      verifyKey: (header, token) => {
        if (!gatewayKeys) throw new Error('gateway keys not loaded yet');
        verify ??= createLocalJWKSet(gatewayKeys);
        return verify(header, token);
      },
      db,
      log: logger.child({ component: 'tenant-service' }),
    });
    owned(() => tenantService!.close());
    upstreamUrl = tenantService.url;
  }

  const gateway = await startGateway(config, {
    fgaApiUrl,
    storeId: store.storeId,
    authorizationModelId: store.authorizationModelId,
    model: loadModel().request,
    upstreamUrl,
    // The tenant service serves the report routes too.
    upstreamUrls: { reports: upstreamUrl },
    db,
    logger: logger.child({ component: 'gateway' }),
  });
  const stopGateway = owned(() => gateway.close());
  gatewayKeys = gateway.assertionJwks;

  const tokens = new Map<string, Promise<string>>();
  const token = (sub: string) => issuer.token(sub);
  const gatewayPort = Number(new URL(gateway.url).port);
  const finalUpstream = upstreamUrl;
  return {
    gatewayUrl: gateway.url,
    gatewayPort,
    upstreamUrl: finalUpstream,
    ...(tenantService ? { tenantService } : {}),
    gateway,
    config,
    env,
    store,
    db,
    dataDir,
    issuer,
    token,
    async authHeader(sub) {
      if (!tokens.has(sub)) tokens.set(sub, token(sub));
      return `Bearer ${await tokens.get(sub)!}`;
    },
    logs,
    replicaEnv(extra = {}) {
      const replicaDir = tempDir('tiergate-replica-');
      const keyFile = join(dataDir, ASSERTION_KEY_FILE);
      if (existsSync(keyFile)) copyFileSync(keyFile, join(replicaDir, ASSERTION_KEY_FILE));
      const { GATEWAY_PORT: _port, LOG_LEVEL: _level, ...rest } = env;
      return { UPSTREAM_URLS: `reports=${finalUpstream}`, ...rest, TENANT_SERVICE_URL: finalUpstream, TIERGATE_DATA_DIR: replicaDir, ...extra };
    },
    async stop() {
      await stopGateway();
      if (tenantService) await tenantService.close();
      await stopDb();
    },
  };
}

/**
 * The smallest hierarchy through the admin API: organization acme (created by platform
 * admin pat, admin olivia), division d1, tenant t1 with tenant admin tom. Resolves with
 * tom's Authorization header.
 */
export async function seedTenantT1(stack: TestStack): Promise<string> {
  await adminOk(stack, 'pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await adminOk(stack, 'olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await adminOk(stack, 'olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  await adminOk(stack, 'olivia', 'PUT', '/tenants/t1/roles/admin/tom');
  return stack.authHeader('tom');
}

/** A call to the admin API as `sub` that must succeed (2xx): building a test hierarchy. */
export async function adminOk(stack: TestStack, sub: string, method: string, path: string, body?: unknown): Promise<void> {
  const res = await call(stack.gatewayUrl, method, `/admin/v1${path}`, { auth: await stack.authHeader(sub), ...(body ? { body } : {}) });
  expect(res.status, `${sub} ${method} ${path}: ${res.text}`).toBeLessThan(300);
}
