// The gateway alone (the Docker image's entry point): OpenFGA, the tenant-resource
// service and PostgreSQL run elsewhere and are named by the configuration.
import { join } from 'node:path';
import pino from 'pino';
import { ConfigError, loadConfig } from '../config.js';
import { openDb } from '../db/index.js';
import { bootstrap } from '../fga/bootstrap.js';
import { loadModel } from '../fga/model.js';
import { startGateway } from './server.js';

async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.OPENFGA_API_URL) throw new ConfigError(['OPENFGA_API_URL: the standalone gateway needs a running OpenFGA (npm start runs one for you)']);
  if (!config.TENANT_SERVICE_URL) throw new ConfigError(['TENANT_SERVICE_URL: the standalone gateway needs the tenant-resource service URL']);
  const logger = pino({ level: config.LOG_LEVEL, base: undefined });
  const model = loadModel();
  const boot = await bootstrap({
    apiUrl: config.OPENFGA_API_URL,
    storeName: config.OPENFGA_STORE_NAME,
    ...(config.OPENFGA_STORE_ID ? { storeId: config.OPENFGA_STORE_ID } : {}),
    platformAdmins: config.PLATFORM_ADMINS,
    timeoutMs: config.OPENFGA_TIMEOUT_MS,
    model,
  });
  const db = await openDb(config.DATABASE_URL ? { url: config.DATABASE_URL } : { pgliteDir: join(config.TIERGATE_DATA_DIR, 'pglite') });
  const gateway = await startGateway(config, {
    fgaApiUrl: config.OPENFGA_API_URL,
    storeId: boot.storeId,
    authorizationModelId: boot.authorizationModelId,
    model: model.request,
    upstreamUrl: config.TENANT_SERVICE_URL,
    db,
    logger,
  });
  logger.info({ url: gateway.url, metrics: gateway.metricsUrl }, 'gateway ready');
  const stop = async () => {
    await gateway.close();
    await db.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`tiergate gateway: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
