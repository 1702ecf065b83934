// Runs the tenant service on a real HTTP listener: used by main.ts and, in-process,
// by the stack runner and tests. Opens and migrates the database unless given one.
import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet } from 'jose';
import type { Logger } from 'pino';
import { migrate, openDb, type Db } from '../db/index.js';
import { createTenantServiceApp } from './app.js';
import type { AssertionKey } from './assertion-auth.js';
import { TENANT_SERVICE_COMPONENT, TENANT_SERVICE_MIGRATIONS } from './migrations.js';

export interface StartTenantServiceOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (the default) lets the OS pick a free port; read it from `url`. */
  port?: number;
  /** Expected `aud` of gateway assertions (ASSERTION_AUDIENCE). */
  audience: string;
  /** Gateway public key(s). Give this or `jwksUrl`. */
  verifyKey?: AssertionKey;
  /** The gateway's JWKS (GATEWAY_JWKS_URL), fetched lazily and cached by jose. */
  jwksUrl?: string;
  /** An open database the caller owns (not closed by close()); migrated here. */
  db?: Db;
  /** postgres://… when `db` is not given. */
  databaseUrl?: string;
  /** PGlite directory when neither `db` nor `databaseUrl` is given; absent = in memory. */
  pgliteDir?: string;
  log?: Logger;
  clockToleranceSec?: number;
  /** `reports`: serve only the report routes. */
  only?: 'reports';
}

export interface RunningTenantService {
  /** Base URL, e.g. http://127.0.0.1:8090 */
  url: string;
  db: Db;
  /** Stops listening, ends open connections, closes the database if it opened it. */
  close(): Promise<void>;
}

export async function startTenantService(opts: StartTenantServiceOptions): Promise<RunningTenantService> {
  const verifyKey = opts.verifyKey ?? (opts.jwksUrl ? createRemoteJWKSet(new URL(opts.jwksUrl), { timeoutDuration: 5000 }) : undefined);
  if (!verifyKey) throw new Error('startTenantService: give verifyKey or jwksUrl (the gateway JWKS)');

  const ownsDb = opts.db === undefined;
  const db = opts.db ?? (await openDb({ url: opts.databaseUrl, pgliteDir: opts.pgliteDir }));
  try {
    await migrate(db, TENANT_SERVICE_COMPONENT, TENANT_SERVICE_MIGRATIONS);
    const app = createTenantServiceApp({
      db,
      verifyKey,
      audience: opts.audience,
      log: opts.log,
      clockToleranceSec: opts.clockToleranceSec,
      ...(opts.only ? { only: opts.only } : {}),
    });
    const host = opts.host ?? '127.0.0.1';
    const server = await listen(app.fetch, host, opts.port ?? 0);
    const { port } = server.address() as AddressInfo;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    let closing: Promise<void> | undefined;
    return {
      url,
      db,
      close() {
        closing ??= (async () => {
          await stopServer(server);
          if (ownsDb) await db.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    if (ownsDb) await db.close().catch(() => undefined);
    throw err;
  }
}

function listen(fetch: (req: Request) => Response | Promise<Response>, hostname: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, hostname, port }) as Server;
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** Graceful: idle keep-alive sockets go now, busy ones get 5 s to finish. */
function stopServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    const force = setTimeout(() => server.closeAllConnections(), 5000);
    force.unref();
    server.close((err) => {
      clearTimeout(force);
      if (err) reject(err);
      else resolve();
    });
    server.closeIdleConnections();
  });
}
