// The gateway alone (the Docker image's entry point): OpenFGA, the tenant-resource
// service and PostgreSQL run elsewhere and are named by the configuration.
//
// GATEWAY_WORKERS: 1 (the default) runs the gateway in this process. More than one
// (0 = one per core) runs a node:cluster: this process becomes the primary and
// each worker is a whole gateway (pipeline, decision cache, admin API) sharing the
// one listening port (the primary hands out connections round-robin). The primary
// does the once-only work before forking, so workers never race each other:
//   - bootstrap OpenFGA (store + model) and pin the model id for every worker
//     (each worker bootstrapping on its own could write the model N times and end
//     up with N model ids, i.e. N disjoint cache key spaces);
//   - run the database migrations (PostgreSQL only: PGlite is one process's
//     embedded database, so more than one worker needs DATABASE_URL);
//   - create the assertion signing key and the development issuer key, so every
//     worker signs with the same key and trusts the same tokens.
// Workers share revocations through Redis pub/sub (config.ts requires REDIS_URL).
// Metrics: the primary serves /metrics on METRICS_PORT, aggregated over every
// worker by prom-client's AggregatorRegistry (histograms and counters summed);
// workers open no metrics listener of their own.
// Policy reloads: every process watches POLICY_FILE itself. SIGHUP to the primary is
// passed to every worker; an admin reload in one worker is passed, through the
// primary, to the others (node:cluster IPC), so they all read the file again.
import cluster, { type Worker } from 'node:cluster';
import { createServer, type Server } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { migrateAdmin } from '../admin/app.js';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { openDb, type Db } from '../db/index.js';
import { startCheck } from '../admin/agreement.js';
import { bootstrap } from '../fga/bootstrap.js';
import { createFgaClient } from '../fga/client.js';
import { loadModel } from '../fga/model.js';
import { withHeapFlags } from '../shared/node-flags.js';
import { ASSERTION_KEY_FILE, createAssertionSigner } from '../gateway/assertion-signer.js';
import { resolveTrustedIssuers } from '../gateway/dev-issuer.js';
import { startGateway } from './gateway-server.js';
import { startTracingIfRequested, stopTracing } from './tracing-env.js';
import { traceLogMixin } from '../shared/tracing.js';

/** What the primary hands every worker (environment variable, JSON). */
const CLUSTER_ENV = 'TIERGATE_CLUSTER_BOOT';
interface ClusterBoot {
  storeId: string;
  authorizationModelId: string;
  createdStore?: boolean;
}
type WorkerMessage = { type: 'tiergate:ready'; url: string } | { type: 'tiergate:failed'; error: string } | PolicyReloadMessage;
/** Worker → primary: the admin endpoint reloaded the policy here; primary → worker: reload it. */
interface PolicyReloadMessage {
  type: 'tiergate:policy-reload';
}
const POLICY_RELOAD: PolicyReloadMessage = { type: 'tiergate:policy-reload' };

/** How many gateway processes GATEWAY_WORKERS asks for. */
export function workerCount(config: Pick<Config, 'GATEWAY_WORKERS'>): number {
  return config.GATEWAY_WORKERS === 0 ? availableParallelism() : config.GATEWAY_WORKERS;
}

function requireUpstreams(config: Config): { fgaApiUrl: string; upstreamUrl: string } {
  if (!config.OPENFGA_API_URL) throw new ConfigError(['OPENFGA_API_URL: the standalone gateway needs a running OpenFGA (npm start runs one for you)']);
  if (!config.TENANT_SERVICE_URL) throw new ConfigError(['TENANT_SERVICE_URL: the standalone gateway needs the tenant-resource service URL']);
  return { fgaApiUrl: config.OPENFGA_API_URL, upstreamUrl: config.TENANT_SERVICE_URL };
}

async function bootstrapOnce(config: Config, fgaApiUrl: string, model: ReturnType<typeof loadModel>): Promise<ClusterBoot> {
  const boot = await bootstrap({
    apiUrl: fgaApiUrl,
    storeName: config.OPENFGA_STORE_NAME,
    ...(config.OPENFGA_STORE_ID ? { storeId: config.OPENFGA_STORE_ID } : {}),
    platformAdmins: config.PLATFORM_ADMINS,
    authzenClients: config.AUTHZEN_CLIENTS,
    timeoutMs: config.OPENFGA_TIMEOUT_MS,
    model,
    apiToken: config.OPENFGA_API_TOKEN,
  });
  return { storeId: boot.storeId, authorizationModelId: boot.authorizationModelId, createdStore: boot.createdStore };
}

/**
 * The database and OpenFGA must agree on the hierarchy (TIERGATE_START_CHECK); the
 * admin tables are migrated first, so a fresh database reads as empty.
 */
async function checkAgreement(config: Config, fgaApiUrl: string, boot: ClusterBoot, db: Db, logger: Logger): Promise<void> {
  if (config.TIERGATE_START_CHECK === 'off') return;
  await migrateAdmin(db);
  const sentence = await startCheck({
    db,
    client: createFgaClient({ apiUrl: fgaApiUrl, storeId: boot.storeId, timeoutMs: Math.max(config.OPENFGA_TIMEOUT_MS, 5000), maxRetry: 3, apiToken: config.OPENFGA_API_TOKEN }),
    storeName: config.OPENFGA_STORE_ID ?? config.OPENFGA_STORE_NAME,
    createdStore: boot.createdStore === true,
  });
  if (sentence === undefined) return;
  if (config.TIERGATE_START_CHECK === 'refuse') throw new StartRefused(`${sentence}.`);
  logger.warn({ disagreement: sentence }, 'the database and OpenFGA disagree (TIERGATE_START_CHECK=warn: starting anyway)');
}

/** A start refused for a reason stated in one sentence (no stack trace). */
class StartRefused extends Error {}

/** One gateway in this process: the single-process mode, and each cluster worker. */
async function runGateway(config: Config, logger: Logger, boot: ClusterBoot | undefined, worker: boolean): Promise<void> {
  const { fgaApiUrl, upstreamUrl } = requireUpstreams(config);
  // SIGHUP reloads the route policy; it no longer ends the process (before the gateway runs, it is ignored).
  let reloadPolicy: (() => void) | undefined;
  process.on('SIGHUP', () => reloadPolicy?.());
  const model = loadModel();
  const pinned = boot ?? (await bootstrapOnce(config, fgaApiUrl, model));
  const db = await openDb(config.DATABASE_URL ? { url: config.DATABASE_URL } : { pgliteDir: join(config.TIERGATE_DATA_DIR, 'pglite') });
  // A cluster's primary checked before forking.
  if (!worker) {
    try {
      await checkAgreement(config, fgaApiUrl, pinned, db, logger);
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
  }
  const gateway = await startGateway(config, {
    fgaApiUrl,
    storeId: pinned.storeId,
    authorizationModelId: pinned.authorizationModelId,
    model: model.request,
    upstreamUrl,
    db,
    logger,
    metricsListener: !worker,
    ...(worker ? { onAdminReload: () => process.send?.(POLICY_RELOAD) } : {}),
  });
  reloadPolicy = () => void gateway.policy.reload('signal');
  if (worker) {
    process.on('message', (msg: WorkerMessage) => {
      if (msg?.type === POLICY_RELOAD.type) void gateway.policy.reload('peer');
    });
  }
  if (worker) {
    // Answer the primary's metric requests from this worker's own registry.
    AggregatorRegistry.setRegistries(gateway.registry);
    new AggregatorRegistry();
    process.send?.({ type: 'tiergate:ready', url: gateway.url } satisfies WorkerMessage);
  } else {
    logger.info({ url: gateway.url, metrics: gateway.metricsUrl }, 'gateway ready');
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await gateway.close().catch(() => undefined);
    await db.close().catch(() => undefined);
    await stopTracing();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  if (worker) {
    // Ctrl-C reaches every process of the group: the primary stops the workers (SIGTERM),
    // so a worker does not leave on its own and look like a crash to be replaced.
    process.on('SIGINT', () => undefined);
    // A worker whose primary is gone has no one to hand it connections: leave too.
    process.once('disconnect', () => void stop());
  } else {
    process.once('SIGINT', () => void stop());
  }
}

async function runPrimary(config: Config, logger: Logger, workers: number): Promise<void> {
  const { fgaApiUrl } = requireUpstreams(config);
  const liveWorkers = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  process.on('SIGHUP', () => {
    logger.info({ workers: liveWorkers().length }, 'SIGHUP: every worker reloads the route policy');
    for (const w of liveWorkers()) w.send(POLICY_RELOAD);
  });
  if (!config.DATABASE_URL) {
    throw new ConfigError([
      `DATABASE_URL: GATEWAY_WORKERS=${config.GATEWAY_WORKERS} runs ${workers} worker processes, and PGlite (the embedded default) cannot be shared between processes; set DATABASE_URL to PostgreSQL or use GATEWAY_WORKERS=1`,
    ]);
  }
  const model = loadModel();
  const boot = await bootstrapOnce(config, fgaApiUrl, model);
  const db = await openDb({ url: config.DATABASE_URL });
  try {
    await migrateAdmin(db);
    await checkAgreement(config, fgaApiUrl, boot, db, logger);
  } finally {
    await db.close();
  }
  // Keys every worker must share: created here, read from disk by the workers.
  await createAssertionSigner({
    audience: config.ASSERTION_AUDIENCE,
    ttlSeconds: config.ASSERTION_TTL_S,
    keyFile: join(config.TIERGATE_DATA_DIR, ASSERTION_KEY_FILE),
  });
  await resolveTrustedIssuers(config);

  const aggregator = new AggregatorRegistry();
  let metricsServer: Server | undefined;
  let metricsUrl: string | undefined;
  if (config.METRICS_PORT !== 0) {
    metricsServer = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      aggregator.clusterMetrics().then(
        (text) => res.writeHead(200, { 'content-type': aggregator.contentType }).end(text),
        (err: unknown) => {
          const message = err instanceof Error ? err.message : String(err);
          logger.warn({ err: message }, 'metrics: aggregating the workers failed');
          res.writeHead(500).end(message);
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      metricsServer!.once('error', reject);
      metricsServer!.listen(config.METRICS_PORT, config.METRICS_HOST, () => resolve());
    });
    metricsUrl = `http://${config.METRICS_HOST}:${config.METRICS_PORT}/metrics`;
  }

  const env = { [CLUSTER_ENV]: JSON.stringify(boot) };
  // Workers run with tiergate's heap flag even when this process was started without it.
  cluster.setupPrimary({ execArgv: withHeapFlags(process.execArgv) });
  let stopping = false;
  const restarts: number[] = [];
  const fork = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const w: Worker = cluster.fork(env);
      const onMessage = (msg: WorkerMessage) => {
        if (msg?.type === 'tiergate:ready') {
          w.off('message', onMessage);
          w.off('exit', onEarlyExit);
          resolve(msg.url);
        } else if (msg?.type === 'tiergate:failed') {
          reject(new Error(msg.error));
        }
      };
      const onEarlyExit = (code: number | null, signal: string | null) =>
        reject(new Error(`gateway worker ${w.process.pid} exited while starting (${signal ?? `code ${code}`})`));
      w.on('message', onMessage);
      w.once('exit', onEarlyExit);
    });

  const urls = await Promise.all(Array.from({ length: workers }, () => fork()));
  // A worker that dies later is replaced, unless they keep dying (then the primary gives up).
  cluster.on('exit', (w, code, signal) => {
    if (stopping) return;
    const now = Date.now();
    restarts.push(now);
    while (restarts.length > 0 && restarts[0]! < now - 60_000) restarts.shift();
    logger.error({ pid: w.process.pid, code, signal }, 'gateway worker exited; starting another');
    if (restarts.length > 5) {
      logger.fatal('gateway workers keep exiting (more than 5 in a minute); stopping');
      void stop(1);
      return;
    }
    fork().catch((err: unknown) => logger.error({ err: err instanceof Error ? err.message : String(err) }, 'replacement worker failed'));
  });
  logger.info({ url: urls[0], workers, metrics: metricsUrl, db: 'postgres' }, 'gateway ready');

  // A reload the admin endpoint made in one worker: the others read the file too.
  cluster.on('message', (from: Worker, msg: WorkerMessage) => {
    if (msg?.type !== POLICY_RELOAD.type) return;
    for (const w of liveWorkers()) if (w !== from) w.send(POLICY_RELOAD);
  });

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    const live = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
    await Promise.all(
      live.map(
        (w) =>
          new Promise<void>((resolve) => {
            const kill = setTimeout(() => w.process.kill('SIGKILL'), 10_000);
            w.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            w.process.kill('SIGTERM');
          }),
      ),
    );
    metricsServer?.close();
    process.exit(code);
  };
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));
}

async function main(): Promise<void> {
  const config = loadConfig();
  // OTEL_* (docs/operations.md, "Tracing"): off unless asked for; then every log line
  // written inside a traced request carries its trace_id and span_id.
  const tracing = await startTracingIfRequested();
  const logger = pino({ level: config.LOG_LEVEL, base: undefined, ...(tracing ? { mixin: traceLogMixin } : {}) });
  if (cluster.isWorker) {
    const boot = JSON.parse(process.env[CLUSTER_ENV] ?? 'null') as ClusterBoot | null;
    if (boot === null) throw new Error(`${CLUSTER_ENV} missing: workers are started by the primary`);
    try {
      await runGateway(config, logger.child({ worker: cluster.worker?.id }), boot, true);
    } catch (err) {
      process.send?.({ type: 'tiergate:failed', error: err instanceof Error ? err.message : String(err) } satisfies WorkerMessage);
      throw err;
    }
    return;
  }
  const workers = workerCount(config);
  if (workers <= 1) await runGateway(config, logger, undefined, false);
  else await runPrimary(config, logger, workers);
}

main().catch((err: unknown) => {
  process.stderr.write(`tiergate gateway: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
