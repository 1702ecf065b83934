// Settings documents in the admin database (table admin_settings, admin migration 4):
// one row per node and key. Reads for the effective values and writes of a document's
// changes; the caller holds the advisory locks and the transaction.
import type { Queryable } from '../db/index.js';
import type { SettingEntry, StoredEntry } from './document.js';
import type { DocumentDiff } from './effective.js';

interface Row {
  node: string;
  key: string;
  entry: unknown;
  author: string;
  at: Date | string;
}

const iso = (v: Date | string) => (v instanceof Date ? v : new Date(v)).toISOString();
const parsed = (v: unknown): SettingEntry => (typeof v === 'string' ? (JSON.parse(v) as SettingEntry) : (v as SettingEntry));

/** The stored entries of each of `nodes` (a node without a document maps to {}). */
export async function readEntries(q: Queryable, nodes: readonly string[]): Promise<Map<string, Record<string, StoredEntry>>> {
  const out = new Map<string, Record<string, StoredEntry>>(nodes.map((n) => [n, {}]));
  if (nodes.length === 0) return out;
  const r = await q.query<Row>('select node, key, entry, author, at from admin_settings where node = any($1::text[]) order by node, key', [[...nodes]]);
  for (const row of r.rows) out.get(row.node)![row.key] = { entry: parsed(row.entry), author: row.author, at: iso(row.at) };
  return out;
}

/** Applies a document's changes at `node`; returns the time written (every upsert gets it). */
export async function writeDiff(q: Queryable, node: string, diff: DocumentDiff, author: string): Promise<void> {
  if (diff.deletes.length > 0) await q.query('delete from admin_settings where node = $1 and key = any($2::text[])', [node, diff.deletes]);
  for (const [key, entry] of Object.entries(diff.upserts)) {
    await q.query(
      `insert into admin_settings (node, key, entry, author) values ($1, $2, $3::jsonb, $4)
       on conflict (node, key) do update set entry = excluded.entry, author = excluded.author, at = clock_timestamp()`,
      [node, key, JSON.stringify(entry), author],
    );
  }
}

/** Removes a deleted node's document. */
export async function deleteDocument(q: Queryable, node: string): Promise<void> {
  await q.query('delete from admin_settings where node = $1', [node]);
}

/**
 * Every node of one organization with its parent (`organization:o` → null), as object
 * refs: the tree effective values, dry runs and allocations are computed over.
 */
export async function organizationTree(q: Queryable, organizationId: string): Promise<Map<string, string | null>> {
  const parents = new Map<string, string | null>([[`organization:${organizationId}`, null]]);
  const d = await q.query<{ id: string; parent_division_id: string | null }>(
    'select id, parent_division_id from admin_divisions where organization_id = $1',
    [organizationId],
  );
  for (const row of d.rows) parents.set(`division:${row.id}`, row.parent_division_id ? `division:${row.parent_division_id}` : `organization:${organizationId}`);
  const t = await q.query<{ id: string; division_id: string }>(
    'select t.id, t.division_id from admin_tenants t join admin_divisions d on d.id = t.division_id where d.organization_id = $1',
    [organizationId],
  );
  for (const row of t.rows) parents.set(`tenant:${row.id}`, `division:${row.division_id}`);
  return parents;
}

/** Every entry of `key` at the given nodes (for allocations). */
export async function entriesOfKey(q: Queryable, key: string, nodes: readonly string[]): Promise<Map<string, SettingEntry>> {
  const r = await q.query<{ node: string; entry: unknown }>('select node, entry from admin_settings where key = $1 and node = any($2::text[])', [key, [...nodes]]);
  return new Map(r.rows.map((row) => [row.node, parsed(row.entry)]));
}
