// Standalone entry: `node dist/tenant-service/main.js` (npm run start:tenant-service), or
// `tsx src/tenant-service/main.ts` in development. Reads the configuration,
// opens PostgreSQL (DATABASE_URL) or PGlite under TIERGATE_DATA_DIR, migrates,
// trusts only the gateway's JWKS, and stops cleanly on SIGTERM/SIGINT.
// `--reports-only` serves only the report routes (the route policy's `reports` upstream).
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { GATEWAY_JWKS_PATH } from '../shared/assertion.js';
import { startTenantService } from './server.js';

export { startTenantService } from './server.js';
export type { RunningTenantService, StartTenantServiceOptions } from './server.js';

/** GATEWAY_JWKS_URL, or the JWKS the gateway serves at its own address. */
export function gatewayJwksUrl(config: Config): string {
  if (config.GATEWAY_JWKS_URL) return config.GATEWAY_JWKS_URL;
  const base = config.GATEWAY_PUBLIC_URL ?? `http://${config.GATEWAY_HOST}:${config.GATEWAY_PORT}`;
  return new URL(GATEWAY_JWKS_PATH, base).toString();
}

async function main(): Promise<void> {
  const config = loadConfig();
  const log = pino({ level: config.LOG_LEVEL, base: { service: 'tenant-service' } });
  const jwksUrl = gatewayJwksUrl(config);
  const reportsOnly = process.argv.includes('--reports-only');
  const service = await startTenantService({
    ...(reportsOnly ? { only: 'reports' as const } : {}),
    host: config.TENANT_SERVICE_HOST,
    port: config.TENANT_SERVICE_PORT,
    audience: config.ASSERTION_AUDIENCE,
    jwksUrl,
    databaseUrl: config.DATABASE_URL,
    pgliteDir: config.DATABASE_URL ? undefined : join(config.TIERGATE_DATA_DIR, 'pglite-tenant'),
    log,
  });
  log.info({ url: service.url, db: service.db.kind, jwksUrl, routes: reportsOnly ? 'reports' : 'all' }, 'tenant service ready');

  const stop = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'stopping');
    service.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

// Runs only as the entry point, so the stack runner can import startTenantService from here.
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false; // argv[1] is not a file (REPL, -e): not started as the entry point
  }
}

if (isEntryPoint()) {
  main().catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
    else if (code === 'EADDRINUSE') process.stderr.write('tenant service: the port is already in use; set TENANT_SERVICE_PORT to a free one\n');
    else process.stderr.write(`tenant service failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
