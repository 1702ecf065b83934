// `npm start`: the whole stack on one machine with embedded defaults.
//   OpenFGA   built from tools/openfga and run on SQLite under TIERGATE_DATA_DIR, with a
//             preshared key only this process knows (PostgreSQL or memory with
//             OPENFGA_DATASTORE_URI; none at all with OPENFGA_API_URL)
//   database  PGlite under TIERGATE_DATA_DIR (PostgreSQL with DATABASE_URL)
//   cache     in-process (plus Redis with REDIS_URL)
//   tenant-resource service and gateway in this process, and the reports service (the
//             route policy's `reports` upstream: the tenant service's report routes on a
//             listener of their own, REPORTS_SERVICE_PORT, over the same database)
// Before anything listens, the database and OpenFGA must agree on the hierarchy
// (src/admin/agreement.ts); `npm run reconcile` repairs them when they do not.
// `npm start -- --demo` also loads demo/hierarchy.yaml through the admin API.
import { join } from 'node:path';
import pino from 'pino';
import { migrateAdmin } from '../admin/app.js';
import { ConfigError, loadConfig, toUserSubject, type Config } from '../config.js';
import { openDb } from '../db/index.js';
import { startCheck } from '../admin/agreement.js';
import { bootstrap } from '../fga/bootstrap.js';
import { createFgaClient } from '../fga/client.js';
import { loadModel } from '../fga/model.js';
import { startGateway } from './gateway-server.js';
import { startTracingIfRequested, stopTracing } from './tracing-env.js';
import { traceLogMixin } from '../shared/tracing.js';
import { loadPolicy, PolicyError } from '../gateway/policy.js';
import { ensurePrivateDir } from '../shared/private-dir.js';
import { DataDirLockedError, lockDataDir } from '../stack/data-lock.js';
import { describeDatastore, embeddedDatastore, startOpenFga, type OpenFgaServer } from '../stack/openfga-server.js';
import { ToolBuildError } from '../stack/go-tools.js';
import { REPO_ROOT } from '../shared/repo-root.js';
import { portInUse } from '../stack/ports.js';
import { startTenantService, type StartTenantServiceOptions } from '../tenant-service/server.js';
import { createLocalJWKSet } from 'jose';
import { ApplyError, applyDemo } from '../cli/apply.js';
import { ensureConsoleBuilt } from '../stack/console-build.js';

const DEMO_FILE = join(REPO_ROOT, 'demo', 'hierarchy.yaml');
/** The route policy's upstream that `npm start` serves with a reports-only listener. */
export const REPORTS_UPSTREAM = 'reports';
/** The demo file's platform operator; made a platform admin when --demo is given. */
export const DEMO_PLATFORM_ADMIN = 'platform-ops';
/** The demo's AuthZEN client: `npm run -s token -- --client demo-pep`. */
export const DEMO_AUTHZEN_CLIENT = 'demo-pep';

class StartError extends Error {}

async function requireFreePort(port: number, host: string, variable: string): Promise<void> {
  if (port !== 0 && (await portInUse(port, host))) {
    throw new StartError(`Port ${port} on ${host} is already in use: stop what is using it, or set ${variable} to a free port.`);
  }
}

async function main(): Promise<void> {
  const demo = process.argv.includes('--demo');
  const config: Config = loadConfig();
  // OTEL_* (docs/operations.md, "Tracing"): the gateway's spans; off unless asked for.
  const tracing = await startTracingIfRequested();
  const logger = pino({ level: config.LOG_LEVEL, base: undefined, ...(tracing ? { mixin: traceLogMixin } : {}) });
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const cleanups: Array<() => Promise<void>> = [];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await stopTracing();
    process.exit(code);
  };
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));
  // SIGHUP reloads the route policy (once the gateway runs; before, there is nothing to reload).
  let reloadPolicy: (() => void) | undefined;
  process.on('SIGHUP', () => reloadPolicy?.());

  try {
    ensurePrivateDir(config.TIERGATE_DATA_DIR, say);
    let releaseLock: () => void;
    try {
      releaseLock = lockDataDir(config.TIERGATE_DATA_DIR);
    } catch (err) {
      if (err instanceof DataDirLockedError) throw new StartError(`${err.message}: stop it first, or give this one another TIERGATE_DATA_DIR.`);
      throw err;
    }
    cleanups.push(async () => releaseLock());
    await requireFreePort(config.GATEWAY_PORT, config.GATEWAY_HOST, 'GATEWAY_PORT');
    if (!config.TENANT_SERVICE_URL) await requireFreePort(config.TENANT_SERVICE_PORT, config.TENANT_SERVICE_HOST, 'TENANT_SERVICE_PORT');
    const policy = loadPolicy(config.POLICY_FILE);
    // A bad shadow (candidate) policy stops the start too, before anything is started.
    if (config.SHADOW_POLICY_FILE !== undefined) loadPolicy(config.SHADOW_POLICY_FILE);
    // Beside an in-process tenant service, unless the operator named another reports service.
    const runReports = !config.TENANT_SERVICE_URL && policy.upstreams.has(REPORTS_UPSTREAM) && config.UPSTREAM_URLS?.[REPORTS_UPSTREAM] === undefined;
    if (runReports) await requireFreePort(config.REPORTS_SERVICE_PORT, config.TENANT_SERVICE_HOST, 'REPORTS_SERVICE_PORT');
    if (config.METRICS_PORT !== 0) await requireFreePort(config.METRICS_PORT, config.METRICS_HOST, 'METRICS_PORT');

    let openfga: OpenFgaServer | undefined;
    let fgaApiUrl = config.OPENFGA_API_URL;
    let fgaApiToken = config.OPENFGA_API_TOKEN;
    if (!fgaApiUrl) {
      // 0: any free port, picked as OpenFGA starts (and picked again if taken meanwhile).
      if (config.OPENFGA_HTTP_PORT !== 0) await requireFreePort(config.OPENFGA_HTTP_PORT, '127.0.0.1', 'OPENFGA_HTTP_PORT');
      if (config.OPENFGA_GRPC_PORT !== 0) await requireFreePort(config.OPENFGA_GRPC_PORT, '127.0.0.1', 'OPENFGA_GRPC_PORT');
      openfga = await startOpenFga({
        ...(config.OPENFGA_HTTP_PORT !== 0 ? { httpPort: config.OPENFGA_HTTP_PORT } : {}),
        ...(config.OPENFGA_GRPC_PORT !== 0 ? { grpcPort: config.OPENFGA_GRPC_PORT } : {}),
        datastore: embeddedDatastore(config),
        // Only this process talks to it: a fresh key each start.
        presharedKey: 'random',
        log: say,
      });
      cleanups.push(() => openfga!.stop());
      fgaApiUrl = openfga.apiUrl;
      fgaApiToken = openfga.apiToken;
    }

    const model = loadModel();
    const platformAdmins = demo ? [...config.PLATFORM_ADMINS, toUserSubject(DEMO_PLATFORM_ADMIN)] : config.PLATFORM_ADMINS;
    const boot = await bootstrap({
      apiUrl: fgaApiUrl,
      storeName: config.OPENFGA_STORE_NAME,
      ...(config.OPENFGA_STORE_ID ? { storeId: config.OPENFGA_STORE_ID } : {}),
      platformAdmins,
      authzenClients: demo ? [...config.AUTHZEN_CLIENTS, DEMO_AUTHZEN_CLIENT] : config.AUTHZEN_CLIENTS,
      timeoutMs: config.OPENFGA_TIMEOUT_MS,
      model,
      apiToken: fgaApiToken,
    }).catch((err: unknown) => {
      throw new StartError(`OpenFGA at ${fgaApiUrl} did not accept the bootstrap: ${err instanceof Error ? err.message : String(err)}`);
    });

    const db = await openDb(config.DATABASE_URL ? { url: config.DATABASE_URL } : { pgliteDir: join(config.TIERGATE_DATA_DIR, 'pglite') });
    cleanups.push(() => db.close());
    await migrateAdmin(db);

    if (config.TIERGATE_START_CHECK !== 'off') {
      const sentence = await startCheck({
        db,
        client: createFgaClient({ apiUrl: fgaApiUrl, storeId: boot.storeId, timeoutMs: Math.max(config.OPENFGA_TIMEOUT_MS, 5000), maxRetry: 3, apiToken: fgaApiToken }),
        storeName: config.OPENFGA_STORE_ID ?? config.OPENFGA_STORE_NAME,
        createdStore: boot.createdStore,
      }).catch((err: unknown) => {
        throw new StartError(`could not compare the database with OpenFGA at ${fgaApiUrl}: ${err instanceof Error ? err.message : String(err)}`);
      });
      if (sentence !== undefined) {
        if (config.TIERGATE_START_CHECK === 'refuse') throw new StartError(`${sentence}.`);
        say(`tiergate: warning: ${sentence} (TIERGATE_START_CHECK=warn: starting anyway).`);
      }
    }

    // The tenant service runs in this process unless an external one is configured;
    // it trusts the gateway's assertion key, read from the gateway's JWKS below.
    let upstreamUrl = config.TENANT_SERVICE_URL;
    const upstreamUrls: Record<string, string> = {};
    let setUpstreamKeys: ((jwks: Parameters<typeof createLocalJWKSet>[0]) => void) | undefined;
    if (!upstreamUrl) {
      let verify: ReturnType<typeof createLocalJWKSet> | undefined;
      setUpstreamKeys = (jwks) => {
        verify = createLocalJWKSet(jwks);
      };
      const service: StartTenantServiceOptions = {
        audience: config.ASSERTION_AUDIENCE,
        verifyKey: (header, token) => {
          if (!verify) throw new Error('gateway keys not loaded yet');
          return verify(header, token);
        },
        host: config.TENANT_SERVICE_HOST,
        db,
      };
      const tenantService = await startTenantService({ ...service, port: config.TENANT_SERVICE_PORT, log: logger.child({ component: 'tenant-service' }) });
      cleanups.push(() => tenantService.close());
      upstreamUrl = tenantService.url;
      if (runReports) {
        const reports = await startTenantService({ ...service, only: 'reports', port: config.REPORTS_SERVICE_PORT, log: logger.child({ component: 'reports-service' }) });
        cleanups.push(() => reports.close());
        upstreamUrls[REPORTS_UPSTREAM] = reports.url;
        logger.info({ url: reports.url }, 'reports service ready');
      }
    }

    await ensureConsoleBuilt(say).catch((err: unknown) => {
      throw new StartError(err instanceof Error ? err.message : String(err));
    });
    const gateway = await startGateway(config, {
      fgaApiUrl,
      fgaApiToken,
      storeId: boot.storeId,
      authorizationModelId: boot.authorizationModelId,
      model: model.request,
      upstreamUrl,
      upstreamUrls,
      db,
      logger: logger.child({ component: 'gateway' }),
    });
    cleanups.push(() => gateway.close());
    reloadPolicy = () => void gateway.policy.reload('signal');
    setUpstreamKeys?.(gateway.assertionJwks);

    if (demo) {
      await applyDemo({ gatewayUrl: gateway.url, file: DEMO_FILE, platformAdmin: DEMO_PLATFORM_ADMIN, config, log: say }).catch((err: unknown) => {
        throw err instanceof ApplyError ? new StartError(`the demo could not be loaded: ${err.message}`) : err;
      });
    }

    say(
      [
        `tiergate ready: gateway ${gateway.url} (API ${gateway.url}/api/v1, admin docs ${gateway.url}/admin/v1/docs)`,
        `tenant service ${upstreamUrl}`,
        `OpenFGA ${fgaApiUrl} (${openfga ? describeDatastore(openfga.datastore) : 'external'}, store ${boot.storeId}, model ${boot.authorizationModelId})`,
        `cache ${config.REDIS_URL ? 'in-process + Redis' : 'in-process'}`,
        `db ${config.DATABASE_URL ? 'PostgreSQL' : `PGlite ${join(config.TIERGATE_DATA_DIR, 'pglite')}`}`,
        ...(gateway.metricsUrl ? [`metrics ${gateway.metricsUrl}`] : []),
      ].join(' | '),
    );
  } catch (err) {
    if (err instanceof ConfigError || err instanceof StartError || err instanceof ToolBuildError || err instanceof PolicyError) {
      say(`tiergate: ${err.message}`);
    } else if ((err as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE') {
      // Free when checked, taken by another process before the listen.
      const { address, port } = err as NodeJS.ErrnoException & { address?: string; port?: number };
      say(`tiergate: ${address ?? 'an address'}:${port ?? '?'} was taken by another process while tiergate started: start it again, or choose other ports.`);
    } else {
      say(`tiergate: could not start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    await stop(1);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`tiergate: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
