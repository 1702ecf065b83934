// `npm run reconcile [-- --apply]`: compares the database's hierarchy with OpenFGA's
// structural links and grants (src/fga/reconcile.ts), prints each difference and what
// --apply does about it, and with --apply rewrites OpenFGA from the database in atomic
// batches of at most 100 tuples, each with an audit entry (actor system:reconcile).
//
// Same configuration as `npm start`: with no OPENFGA_API_URL it runs the embedded
// OpenFGA on the data folder's datastore itself (on ports of its own), which it may only
// do while no tiergate runs on that folder (tiergate.pid), and likewise for PGlite.
// With REDIS_URL it bumps the decision cache's global epoch after a repair, so running
// replicas drop every cached decision.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { migrateAdmin } from '../admin/store.js';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { openDb, type Db } from '../db/index.js';
import { DecisionCache, decisionCacheSettings } from '../decisions/index.js';
import { applyRepair, compareWithDatabase } from '../admin/agreement.js';
import { OpenFgaAuthorizer } from '../fga/authorizer.js';
import { bootstrap } from '../fga/bootstrap.js';
import { createFgaClient } from '../fga/client.js';
import { loadModel } from '../fga/model.js';
import { describeDifference } from '../fga/reconcile.js';
import { FgaRequestClient } from '../fga/request-client.js';
import { ensurePrivateDir } from '../shared/private-dir.js';
import { DataDirLockedError, lockDataDir } from '../stack/data-lock.js';
import { describeDatastore, embeddedDatastore, startOpenFga, type OpenFgaServer } from '../stack/openfga-server.js';

const USAGE = 'usage: npm run reconcile [-- --apply]\n  without --apply: print what differs and what --apply would write and delete; nothing is changed';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

class ReconcileError extends Error {}

/** Tells running replicas (through Redis) to drop every cached decision. */
async function dropCachedDecisions(config: Config, apiUrl: string, apiToken: string | undefined, storeId: string, modelId: string): Promise<void> {
  const api = new FgaRequestClient({ apiUrl, storeId, timeoutMs: Math.max(config.OPENFGA_TIMEOUT_MS, 5000), apiToken });
  const cache = new DecisionCache({
    engine: new OpenFgaAuthorizer({ api, authorizationModelId: modelId }),
    api,
    storeId,
    modelId: () => modelId,
    model: loadModel().request,
    registry: new Registry(),
    ...decisionCacheSettings(config),
    poller: false,
  });
  try {
    await cache.start();
    await cache.invalidator.modelChanged();
  } finally {
    await cache.close();
    await api.close();
  }
}

/** Returns the exit code: 0 agreed or repaired (or a dry run), 1 failure, 2 usage. */
export async function runReconcile(argv: readonly string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  let apply: boolean;
  try {
    const args = parseArgs({ args: [...argv], options: { apply: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } } });
    if (args.values.help) {
      io.out(USAGE);
      return 0;
    }
    apply = args.values.apply;
  } catch (err) {
    io.err(`reconcile: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }

  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const config = loadConfig(env);
    // The data folder is needed when OpenFGA or the database lives in it.
    if (!config.OPENFGA_API_URL || !config.DATABASE_URL) {
      ensurePrivateDir(config.TIERGATE_DATA_DIR, io.err);
      try {
        cleanups.push(lockDataDir(config.TIERGATE_DATA_DIR));
      } catch (err) {
        if (err instanceof DataDirLockedError) {
          throw new ReconcileError(
            `${err.message}: stop it (Ctrl-C) and run the reconcile again; it opens the same OpenFGA datastore and database, which only one process may use`,
          );
        }
        throw err;
      }
    }

    let apiUrl = config.OPENFGA_API_URL;
    let apiToken = config.OPENFGA_API_TOKEN;
    let openfga: OpenFgaServer | undefined;
    if (!apiUrl) {
      const datastore = embeddedDatastore(config);
      if (datastore.engine === 'memory') throw new ReconcileError('OPENFGA_DATASTORE_URI=memory keeps nothing between runs: there is nothing to reconcile');
      openfga = await startOpenFga({ datastore, presharedKey: 'random', log: io.err });
      cleanups.push(() => openfga!.stop());
      apiUrl = openfga.apiUrl;
      apiToken = openfga.apiToken;
    }
    const storeName = config.OPENFGA_STORE_ID ?? config.OPENFGA_STORE_NAME;
    // The store and model as `npm start` has them (created when missing, as it would).
    const boot = await bootstrap({
      apiUrl,
      apiToken,
      storeName: config.OPENFGA_STORE_NAME,
      ...(config.OPENFGA_STORE_ID ? { storeId: config.OPENFGA_STORE_ID } : {}),
      platformAdmins: config.PLATFORM_ADMINS,
      authzenClients: config.AUTHZEN_CLIENTS,
      timeoutMs: config.OPENFGA_TIMEOUT_MS,
    }).catch((err: unknown) => {
      throw new ReconcileError(`OpenFGA at ${apiUrl} did not accept the bootstrap: ${err instanceof Error ? err.message : String(err)}`);
    });
    const client = createFgaClient({ apiUrl, apiToken, storeId: boot.storeId, timeoutMs: Math.max(config.OPENFGA_TIMEOUT_MS, 5000), maxRetry: 3 });
    const db: Db = await openDb(config.DATABASE_URL ? { url: config.DATABASE_URL } : { pgliteDir: join(config.TIERGATE_DATA_DIR, 'pglite') });
    cleanups.push(() => db.close());
    await migrateAdmin(db);

    const where = `OpenFGA ${openfga ? describeDatastore(openfga.datastore) : apiUrl} store ${storeName} (${boot.storeId}) and database ${config.DATABASE_URL ? 'PostgreSQL' : `PGlite ${join(config.TIERGATE_DATA_DIR, 'pglite')}`}`;
    const comparison = await compareWithDatabase(db, client);
    if (comparison.differences.length === 0) {
      io.out(`${where} agree: ${comparison.nodes} node(s), ${comparison.nodeTuples} tuple(s) on them; nothing to do`);
      return 0;
    }
    io.out(`${where} differ in ${comparison.differences.length} tuple(s):`);
    for (const d of comparison.differences) io.out(`  ${describeDifference(d)}`);
    if (comparison.nodeTuples === 0 && comparison.nodes > 0) {
      io.out(
        `OpenFGA holds nothing for the database's ${comparison.nodes} node(s): the structure can be rewritten from the database, the role grants cannot (they were only in OpenFGA); grant them again afterwards (GET /admin/v1/audit lists past grants)`,
      );
    }
    if (!apply) {
      io.out('dry run: nothing was changed; `npm run reconcile -- --apply` makes these changes');
      return 0;
    }
    const result = await applyRepair(db, client, comparison.differences, storeName, (line) => io.out(line));
    io.out(`applied: wrote ${result.written} and deleted ${result.deleted} tuple(s) in ${result.batches.length} batch(es), each recorded in the audit trail as system:reconcile`);
    if (config.REDIS_URL) {
      await dropCachedDecisions(config, apiUrl, apiToken, boot.storeId, boot.authorizationModelId);
      io.out('the decision cache epoch was bumped in Redis: running replicas drop every cached decision');
    }
    return 0;
  } catch (err) {
    if (err instanceof ReconcileError || err instanceof ConfigError) io.err(`reconcile: ${err.message}`);
    else io.err(`reconcile failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const code = await runReconcile(process.argv.slice(2), process.env, {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  });
  process.exit(code);
}
