// The tenant-resource service as its own process for the benchmark (the same
// startTenantService as `npm start`), trusting the gateway's assertion key read
// from BENCH_ASSERTION_KEY_FILE (the orchestrator creates it before anything starts,
// so the upstream never depends on a gateway being up to fetch a JWKS).
// Prints `READY <url>` on stdout; stops on SIGTERM.
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, type JWK } from 'jose';
import { startTenantService } from '../../src/tenant-service/server.js';

const keyFile = process.env.BENCH_ASSERTION_KEY_FILE;
if (!keyFile) throw new Error('BENCH_ASSERTION_KEY_FILE is required');
const { d: _private, ...publicJwk } = JSON.parse(readFileSync(keyFile, 'utf8')) as JWK;

const service = await startTenantService({
  host: '127.0.0.1',
  port: Number(process.env.PORT ?? 0),
  audience: process.env.ASSERTION_AUDIENCE ?? 'tenant-service',
  verifyKey: createLocalJWKSet({ keys: [publicJwk] }),
  ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : { pgliteDir: process.env.PGLITE_DIR }),
});
process.stdout.write(`READY ${service.url}\n`);
const stop = () => void service.close().then(() => process.exit(0), () => process.exit(1));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
