// Reads both sides of the agreement (the admin tables, OpenFGA's tuples on hierarchy
// nodes), compares them with ./reconcile.ts, and writes the repair. Used at start
// (src/server/stack-main.ts, src/server/gateway-main.ts) and by `npm run reconcile`.
import { ClientWriteRequestOnDuplicateWrites, ClientWriteRequestOnMissingDeletes, ConsistencyPreference, type OpenFgaClient } from '@openfga/sdk';
import { recordAudit, PLATFORM_SCOPE } from './audit.js';
import { ancestorPath, hierarchyRows } from './store.js';
import type { Db } from '../db/index.js';
import { compareHierarchy, disagreementSentence, repairBatches, type Comparison, type Difference, type RepairBatch } from '../fga/reconcile.js';
import type { FgaTuple } from '../fga/request-client.js';

const NODE_PREFIXES = ['organization:', 'division:', 'tenant:'];

/**
 * Every tuple on organization, division and tenant objects. OpenFGA's Read takes an
 * object type only together with a user, so the whole store is read (an empty filter
 * pages through every tuple, 100 a page) and the rest is skipped.
 */
export async function readNodeTuples(client: OpenFgaClient): Promise<FgaTuple[]> {
  const out: FgaTuple[] = [];
  let continuationToken: string | undefined;
  do {
    const page = await client.read(
      {},
      { pageSize: 100, consistency: ConsistencyPreference.HigherConsistency, ...(continuationToken ? { continuationToken } : {}) },
    );
    for (const t of page.tuples) {
      const { user, relation, object } = t.key;
      if (NODE_PREFIXES.some((p) => object.startsWith(p))) out.push({ user, relation, object });
    }
    continuationToken = page.continuation_token || undefined;
  } while (continuationToken);
  return out;
}

/** Reads the database and OpenFGA and compares them. */
export async function compareWithDatabase(db: Db, client: OpenFgaClient): Promise<Comparison> {
  const [rows, tuples] = await Promise.all([hierarchyRows(db), readNodeTuples(client)]);
  return compareHierarchy(rows, tuples);
}

export interface StartCheckOptions {
  db: Db;
  client: OpenFgaClient;
  storeName: string;
  createdStore: boolean;
  /**
   * Compare again after this long before calling a disagreement real (default 1500 ms):
   * while another replica's admin write is half done (OpenFGA written, its database
   * transaction not yet committed), the two sides differ for a moment.
   */
  settleMs?: number;
}

/** The sentence to refuse the start with, or undefined when the database and OpenFGA agree. */
export async function startCheck(opts: StartCheckOptions): Promise<string | undefined> {
  let comparison = await compareWithDatabase(opts.db, opts.client);
  if (comparison.differences.length > 0 && !opts.createdStore) {
    await new Promise((r) => setTimeout(r, opts.settleMs ?? 1500));
    comparison = await compareWithDatabase(opts.db, opts.client);
  }
  return disagreementSentence(comparison, { storeName: opts.storeName, createdStore: opts.createdStore });
}

export interface RepairResult {
  batches: RepairBatch[];
  written: number;
  deleted: number;
}

/** The audit actor of every repair. */
export const RECONCILE_ACTOR = 'system:reconcile';

/**
 * Writes the repair, one atomic OpenFGA write per batch (≤ 100 tuples), each with its
 * audit entry in the same database transaction: the entry is committed only when
 * OpenFGA accepted the batch. Writing a tuple that exists or deleting one that is gone
 * meanwhile is not an error, so a repair run twice ends in the same state.
 */
export async function applyRepair(db: Db, client: OpenFgaClient, differences: readonly Difference[], storeName: string, log: (line: string) => void = () => undefined): Promise<RepairResult> {
  const batches = repairBatches(differences);
  let written = 0;
  let deleted = 0;
  for (const [i, batch] of batches.entries()) {
    const objects = [...new Set([...batch.writes, ...batch.deletes].map((t) => t.object))];
    await db.transaction(async (tx) => {
      const scope = [PLATFORM_SCOPE];
      for (const object of objects) scope.push(...(await ancestorPath(tx, object)));
      await recordAudit(tx, {
        actor: RECONCILE_ACTOR,
        action: 'reconcile.apply',
        target: `store:${storeName}`,
        scope,
        outcome: 'success',
        detail: { batch: i + 1, of: batches.length, writes: batch.writes, deletes: batch.deletes },
      });
      await client.write(
        { writes: batch.writes, deletes: batch.deletes },
        { conflict: { onDuplicateWrites: ClientWriteRequestOnDuplicateWrites.Ignore, onMissingDeletes: ClientWriteRequestOnMissingDeletes.Ignore } },
      );
    });
    written += batch.writes.length;
    deleted += batch.deletes.length;
    log(`batch ${i + 1} of ${batches.length}: wrote ${batch.writes.length}, deleted ${batch.deletes.length}`);
  }
  return { batches, written, deleted };
}
