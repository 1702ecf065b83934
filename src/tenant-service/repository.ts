// Every query the service runs against tenant data. Each function takes the
// tenant id as its own parameter and binds it in the WHERE clause or the primary
// key: there is no query here that can reach across tenants.
import { z } from 'zod';
import type { Db, Queryable } from '../db/index.js';
import { ID_PATTERN, type ResourceKind } from '../shared/resource-kinds.js';
import type { PageRequest } from './validation.js';

export type Resource = Record<string, unknown>;

export interface Page<T> {
  items: T[];
  /** Last id of this page when more may follow; pass it back as `after`. */
  lastId: string | null;
}

interface ResourceRow {
  tenant_id: string;
  resource_id: string;
  attrs: Record<string, unknown> | string;
  created_at: Date | string;
  updated_at: Date | string;
}

const RESOURCE_COLUMNS = 'tenant_id, resource_id, attrs, created_at, updated_at';

function iso(v: Date | string | null): string | null {
  return v === null ? null : new Date(v).toISOString();
}

function toResource(kind: ResourceKind, row: ResourceRow): Resource {
  const attrs = typeof row.attrs === 'string' ? (JSON.parse(row.attrs) as Record<string, unknown>) : row.attrs;
  return {
    tenantId: row.tenant_id,
    [kind.idParam]: row.resource_id,
    ...attrs,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}

/** Fetches limit+1 rows to know whether another page follows without a count. */
function toPage<R, T>(rows: R[], limit: number, map: (r: R) => T, idOf: (r: R) => string): Page<T> {
  const more = rows.length > limit;
  const pageRows = more ? rows.slice(0, limit) : rows;
  const last = pageRows[pageRows.length - 1];
  return { items: pageRows.map(map), lastId: more && last !== undefined ? idOf(last) : null };
}

export async function listResources(db: Queryable, tenantId: string, kind: ResourceKind, page: PageRequest): Promise<Page<Resource>> {
  const r = await db.query<ResourceRow>(
    `select ${RESOURCE_COLUMNS} from tenant_service.resources
      where tenant_id = $1 and kind = $2 and ($3::text is null or resource_id > $3::text)
      order by resource_id limit $4`,
    [tenantId, kind.segment, page.after ?? null, page.limit + 1],
  );
  return toPage(r.rows, page.limit, (row) => toResource(kind, row), (row) => row.resource_id);
}

export async function getResource(db: Queryable, tenantId: string, kind: ResourceKind, id: string): Promise<Resource | null> {
  const r = await db.query<ResourceRow>(
    `select ${RESOURCE_COLUMNS} from tenant_service.resources where tenant_id = $1 and kind = $2 and resource_id = $3`,
    [tenantId, kind.segment, id],
  );
  const row = r.rows[0];
  return row ? toResource(kind, row) : null;
}

/** Inserts; null when the id is already taken in this tenant (the caller answers 409). */
export async function createResource(
  db: Queryable,
  tenantId: string,
  kind: ResourceKind,
  id: string,
  attrs: Record<string, unknown>,
): Promise<Resource | null> {
  // ON CONFLICT instead of catching 23505: same behaviour on pg and PGlite, no aborted transaction.
  const r = await db.query<ResourceRow>(
    `insert into tenant_service.resources (tenant_id, kind, resource_id, attrs) values ($1, $2, $3, $4::jsonb)
     on conflict (tenant_id, kind, resource_id) do nothing
     returning ${RESOURCE_COLUMNS}`,
    [tenantId, kind.segment, id, JSON.stringify(attrs)],
  );
  const row = r.rows[0];
  return row ? toResource(kind, row) : null;
}

/**
 * createResource under a cap on the tenant's resources of `kind`: counted and inserted
 * under a per-tenant, per-kind advisory lock, so concurrent creates cannot pass the cap
 * together. `{ over: n }` when the tenant already has `limit` or more.
 */
export async function createResourceCapped(
  db: Db,
  tenantId: string,
  kind: ResourceKind,
  id: string,
  attrs: Record<string, unknown>,
  limit: number,
): Promise<{ created: Resource | null } | { over: number }> {
  return db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [`tenant-service:cap:${tenantId}:${kind.segment}`]);
    const n = await tx.query<{ n: number }>('select count(*)::int as n from tenant_service.resources where tenant_id = $1 and kind = $2', [tenantId, kind.segment]);
    const count = Number(n.rows[0]?.n ?? 0);
    if (count >= limit) return { over: count };
    return { created: await createResource(tx, tenantId, kind, id, attrs) };
  });
}

/** Replaces the attributes, keeping the named operational keys (agent status); null when missing. */
export async function replaceResource(
  db: Queryable,
  tenantId: string,
  kind: ResourceKind,
  id: string,
  attrs: Record<string, unknown>,
  keepKeys: string[],
): Promise<Resource | null> {
  const r = await db.query<ResourceRow>(
    `update tenant_service.resources
        set attrs = $4::jsonb || (select coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb)
                                    from jsonb_each(attrs) e where e.key = any($5::text[])),
            updated_at = now()
      where tenant_id = $1 and kind = $2 and resource_id = $3
      returning ${RESOURCE_COLUMNS}`,
    [tenantId, kind.segment, id, JSON.stringify(attrs), keepKeys],
  );
  const row = r.rows[0];
  return row ? toResource(kind, row) : null;
}

/**
 * Shallow merge in one statement (no read-modify-write race). The patch is
 * validated field by field and the stored row already holds every required
 * field, so the merge is valid by construction.
 */
export async function patchResource(
  db: Queryable,
  tenantId: string,
  kind: ResourceKind,
  id: string,
  patch: Record<string, unknown>,
): Promise<Resource | null> {
  const r = await db.query<ResourceRow>(
    `update tenant_service.resources set attrs = attrs || $4::jsonb, updated_at = now()
      where tenant_id = $1 and kind = $2 and resource_id = $3
      returning ${RESOURCE_COLUMNS}`,
    [tenantId, kind.segment, id, JSON.stringify(patch)],
  );
  const row = r.rows[0];
  return row ? toResource(kind, row) : null;
}

export async function deleteResource(db: Queryable, tenantId: string, kind: ResourceKind, id: string): Promise<boolean> {
  const r = await db.query(
    'delete from tenant_service.resources where tenant_id = $1 and kind = $2 and resource_id = $3 returning resource_id',
    [tenantId, kind.segment, id],
  );
  return r.rows.length > 0;
}

/** Changes only the agent's operational status; null when the agent does not exist. */
export async function setAgentStatus(
  db: Queryable,
  tenantId: string,
  agents: ResourceKind,
  agentNo: string,
  status: string,
): Promise<Resource | null> {
  const r = await db.query<ResourceRow>(
    `update tenant_service.resources
        set attrs = jsonb_set(attrs, '{status}', to_jsonb($4::text)), updated_at = now()
      where tenant_id = $1 and kind = $2 and resource_id = $3
      returning ${RESOURCE_COLUMNS}`,
    [tenantId, agents.segment, agentNo, status],
  );
  const row = r.rows[0];
  return row ? toResource(agents, row) : null;
}

// --- call records: written by the telephony platform (here: seed/demo code), read through the API ---

const timestamp = z.iso.datetime({ offset: true });

export const callRecordSchema = z.strictObject({
  callId: z.string().regex(ID_PATTERN),
  direction: z.enum(['inbound', 'outbound', 'internal']),
  from: z.string().min(1).max(64),
  to: z.string().min(1).max(64),
  agentNo: z.string().regex(ID_PATTERN).optional(),
  queueNo: z.string().regex(ID_PATTERN).optional(),
  startedAt: timestamp,
  answeredAt: timestamp.optional(),
  endedAt: timestamp.optional(),
  durationSeconds: z.int().min(0).max(2_147_483_647).optional(),
  disposition: z.enum(['answered', 'missed', 'abandoned', 'voicemail', 'failed']),
});
export type CallRecordInput = z.input<typeof callRecordSchema>;

export interface CallRecord {
  tenantId: string;
  callId: string;
  direction: string;
  from: string;
  to: string;
  agentNo: string | null;
  queueNo: string | null;
  startedAt: string | null;
  answeredAt: string | null;
  endedAt: string | null;
  durationSeconds: number;
  disposition: string;
}

interface CallRecordRow {
  tenant_id: string;
  call_id: string;
  direction: string;
  from_number: string;
  to_number: string;
  agent_no: string | null;
  queue_no: string | null;
  started_at: Date | string;
  answered_at: Date | string | null;
  ended_at: Date | string | null;
  duration_s: number;
  disposition: string;
}

const CALL_COLUMNS =
  'tenant_id, call_id, direction, from_number, to_number, agent_no, queue_no, started_at, answered_at, ended_at, duration_s, disposition';

function toCallRecord(row: CallRecordRow): CallRecord {
  return {
    tenantId: row.tenant_id,
    callId: row.call_id,
    direction: row.direction,
    from: row.from_number,
    to: row.to_number,
    agentNo: row.agent_no,
    queueNo: row.queue_no,
    startedAt: iso(row.started_at),
    answeredAt: iso(row.answered_at),
    endedAt: iso(row.ended_at),
    durationSeconds: Number(row.duration_s),
    disposition: row.disposition,
  };
}

/**
 * Stores one call record for `tenantId` (demo and seed data; the API has no write
 * route for call records). Validates the record; returns false when that callId
 * already exists in the tenant, so seeding is idempotent.
 */
export async function insertCallRecord(db: Queryable, tenantId: string, record: CallRecordInput): Promise<boolean> {
  if (!ID_PATTERN.test(tenantId)) throw new Error(`invalid tenant id ${JSON.stringify(tenantId)}`);
  const c = callRecordSchema.parse(record);
  const r = await db.query(
    `insert into tenant_service.call_records (${CALL_COLUMNS})
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     on conflict (tenant_id, call_id) do nothing returning call_id`,
    [
      tenantId,
      c.callId,
      c.direction,
      c.from,
      c.to,
      c.agentNo ?? null,
      c.queueNo ?? null,
      c.startedAt,
      c.answeredAt ?? null,
      c.endedAt ?? null,
      c.durationSeconds ?? 0,
      c.disposition,
    ],
  );
  return r.rows.length > 0;
}

/** `since`: only records started at or after it are visible (the tenant's retention). */
export async function listCallRecords(db: Queryable, tenantId: string, page: PageRequest, since?: string): Promise<Page<CallRecord>> {
  const r = await db.query<CallRecordRow>(
    `select ${CALL_COLUMNS} from tenant_service.call_records
      where tenant_id = $1 and ($2::text is null or call_id > $2::text) and ($4::timestamptz is null or started_at >= $4::timestamptz)
      order by call_id limit $3`,
    [tenantId, page.after ?? null, page.limit + 1, since ?? null],
  );
  return toPage(r.rows, page.limit, toCallRecord, (row) => row.call_id);
}

export async function getCallRecord(db: Queryable, tenantId: string, callId: string, since?: string): Promise<CallRecord | null> {
  const r = await db.query<CallRecordRow>(
    `select ${CALL_COLUMNS} from tenant_service.call_records
      where tenant_id = $1 and call_id = $2 and ($3::timestamptz is null or started_at >= $3::timestamptz)`,
    [tenantId, callId, since ?? null],
  );
  const row = r.rows[0];
  return row ? toCallRecord(row) : null;
}
