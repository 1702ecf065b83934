// The append-only audit trail: every admin change, every denied or failed admin
// attempt, and (through recordGatewayDenial) every denied gateway request.
// Each entry stores the target's ancestor path (`scope`), so "what may this
// reader see" is an array-overlap query, not a graph walk.
import type { Queryable } from '../db/index.js';
import type { Scope } from '../gateway/types.js';
import type { AuditOutcome } from './schemas.js';
import { ancestorPath } from './store.js';

/** The platform object as it appears in audit scopes (same value as PLATFORM_OBJECT). */
export const PLATFORM_SCOPE = 'platform:root';

export interface AuditRecord {
  actor: string;
  action: string;
  target: string;
  scope: string[];
  outcome: AuditOutcome;
  requestId?: string | undefined;
  before?: unknown;
  after?: unknown;
  detail?: unknown;
}

const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));

export async function recordAudit(q: Queryable, e: AuditRecord): Promise<void> {
  await q.query(
    `insert into admin_audit (actor, action, target, scope, outcome, request_id, before, after, detail)
     values ($1, $2, $3, $4::text[], $5, $6, $7::jsonb, $8::jsonb, $9::jsonb)`,
    [e.actor, e.action, e.target, [...new Set(e.scope)], e.outcome, e.requestId ?? null, json(e.before), json(e.after), json(e.detail)],
  );
}

export interface GatewayDenial {
  /** `user:<sub>`, or `anonymous` when the request carried no valid token. */
  actor: string;
  requestId?: string;
  method: string;
  /** The canonical path that was refused. */
  path: string;
  /** The permission the policy required (e.g. `can_write`), when a rule matched. */
  permission?: string;
  /** The OpenFGA object checked (e.g. `agent:acme-sales/2000`). */
  object?: string;
  /** The hierarchy node the object lives under: decides who may read the entry. */
  scope?: Scope;
  /** The HTTP status returned (403 by default). */
  status?: number;
}

/**
 * Appends one `gateway.deny` entry. The lead's gateway calls this for every denied
 * request; it is visible to admins of the scope node and of its ancestors.
 */
export async function recordGatewayDenial(db: Queryable, d: GatewayDenial): Promise<void> {
  const scopeRef = d.scope ? `${d.scope.type}:${d.scope.id}` : undefined;
  const scope = scopeRef ? await ancestorPath(db, scopeRef) : [PLATFORM_SCOPE];
  await recordAudit(db, {
    actor: d.actor,
    action: 'gateway.deny',
    target: d.object ?? d.path,
    scope,
    outcome: 'denied',
    requestId: d.requestId,
    detail: {
      method: d.method,
      path: d.path,
      status: d.status ?? 403,
      ...(d.permission ? { permission: d.permission } : {}),
    },
  });
}

export interface AuditFilter {
  /** Entries whose scope overlaps these nodes (the reader's audit roots). */
  visibleTo: string[];
  actor?: string | undefined;
  action?: string | undefined;
  target?: string | undefined;
  under?: string | undefined;
  outcome?: AuditOutcome | undefined;
  since?: string | undefined;
  until?: string | undefined;
  /** Entries strictly older than this sequence number (the previous page's cursor). */
  before?: string | undefined;
  limit: number;
}

export interface AuditRow {
  seq: string;
  at: string;
  actor: string;
  action: string;
  target: string;
  outcome: AuditOutcome;
  requestId: string | null;
  before: unknown;
  after: unknown;
  detail: unknown;
  scope: string[];
}

/** Newest first, `limit` per page; `nextCursor` is the last seq when more may follow. */
export async function queryAudit(q: Queryable, f: AuditFilter): Promise<{ items: AuditRow[]; nextCursor: string | null }> {
  const where = ['scope && $1::text[]'];
  const params: unknown[] = [f.visibleTo];
  const add = (clause: string, value: unknown) => {
    params.push(value);
    where.push(clause.replace('?', `$${params.length}`));
  };
  if (f.actor) add('actor = ?', f.actor);
  if (f.action) add('action = ?', f.action);
  if (f.target) add('target = ?', f.target);
  if (f.under) add('scope @> array[?]::text[]', f.under);
  if (f.outcome) add('outcome = ?', f.outcome);
  if (f.since) add('at >= ?::timestamptz', f.since);
  if (f.until) add('at < ?::timestamptz', f.until);
  if (f.before) add('seq < ?::bigint', f.before);
  params.push(f.limit + 1);
  const r = await q.query<{
    seq: string | number;
    at: Date | string;
    actor: string;
    action: string;
    target: string;
    outcome: AuditOutcome;
    request_id: string | null;
    before: unknown;
    after: unknown;
    detail: unknown;
    scope: string[];
  }>(
    `select seq, at, actor, action, target, outcome, request_id, before, after, detail, scope
     from admin_audit where ${where.join(' and ')} order by seq desc limit $${params.length}`,
    params,
  );
  const rows = r.rows.slice(0, f.limit).map((row) => ({
    seq: String(row.seq),
    at: (row.at instanceof Date ? row.at : new Date(row.at)).toISOString(),
    actor: row.actor,
    action: row.action,
    target: row.target,
    outcome: row.outcome,
    requestId: row.request_id,
    before: parseJson(row.before),
    after: parseJson(row.after),
    detail: parseJson(row.detail),
    scope: row.scope,
  }));
  const more = r.rows.length > f.limit;
  return { items: rows, nextCursor: more && rows.length > 0 ? rows[rows.length - 1]!.seq : null };
}

// node-postgres and PGlite both parse jsonb; keep a string fallback for other drivers.
function parseJson(v: unknown): unknown {
  if (typeof v !== 'string') return v ?? null;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    return v;
  }
}
