// The append-only audit trail: every admin change, every denied or failed admin
// attempt, and (through recordGatewayDenial) the gateway's denials, one entry per
// principal, rule, scope node and minute with the minute's count.
// Each entry stores the target's ancestor path (`scope`), so "what may this
// reader see" is an array-overlap query, not a graph walk.
import { createCountedBatches } from './counted-batches.js';
import type { Db, Queryable } from '../db/index.js';
import type { Scope } from '../authz/types.js';
import type { AuditOutcome } from './schemas.js';
import { ancestorPath, getNode } from './store.js';

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
  /** The id of the policy rule that matched (policy/routes.yaml), when one did. */
  rule?: string;
  /** The permission the policy required (e.g. `can_write`), when a rule matched. */
  permission?: string;
  /** The OpenFGA object checked (e.g. `agent:acme-sales/2000`). */
  object?: string;
  /** The hierarchy node the object lives under: decides who may read the entry. */
  scope?: Scope;
  /** The HTTP status returned (403 by default). */
  status?: number;
  /** The route policy version the request was matched under (the first denial's, for the minute's entry). */
  policyVersion?: string | undefined;
}

const MINUTE_MS = 60_000;

/** The rule recorded for a denial that matched none (and so named no permission). */
const NO_RULE = '-';

/**
 * Records `count` denials of one principal for one rule and scope node in the minute of
 * `atMs` (the gateway's clock when they were denied). Denials are audited per minute,
 * not per request, so a caller cannot grow the trail without bound:
 *   - gateway_denial_counts (minute, actor, rule, node) gets `count` added;
 *   - the first call for that key and minute appends the one `gateway.deny` entry
 *     (request id, method, path and object of the first denial seen); later calls,
 *     from this gateway or any other sharing the database, find it there and add nothing
 *     (a unique index and on conflict do nothing). GET /audit shows the entry with the
 *     minute's count.
 * It is visible to admins of the scope node and of its ancestors (see denialNode).
 */
export async function recordGatewayDenial(db: Db, d: GatewayDenial, count = 1, atMs = Date.now()): Promise<void> {
  const { node, scope } = await denialNode(db, d.scope);
  const rule = d.rule ?? NO_RULE;
  const minute = new Date(Math.floor(atMs / MINUTE_MS) * MINUTE_MS).toISOString();
  await db.transaction(async (tx) => {
    // Counter first, entry second, in every gateway: the same lock order, so no deadlock.
    await tx.query(
      `insert into gateway_denial_counts (minute, actor, rule, node, count) values ($1::timestamptz, $2, $3, $4, $5)
       on conflict (minute, actor, rule, node) do update set count = gateway_denial_counts.count + excluded.count`,
      [minute, d.actor, rule, node, count],
    );
    await tx.query(
      `insert into admin_audit (actor, action, target, scope, outcome, request_id, detail)
       values ($1, 'gateway.deny', $2, $3::text[], 'denied', $4, $5::jsonb)
       on conflict do nothing`,
      [
        d.actor,
        d.object ?? d.path,
        [...new Set(scope)],
        d.requestId ?? null,
        JSON.stringify({
          method: d.method,
          path: d.path,
          status: d.status ?? 403,
          ...(d.permission ? { permission: d.permission } : {}),
          rule,
          node,
          minute,
          ...(d.policyVersion ? { policyVersion: d.policyVersion } : {}),
        }),
      ],
    );
  });
}

/**
 * The node a denial is audited under and its ancestor path. A node that does not exist
 * (any well-formed id can be asked for) is audited at the platform, so made-up ids
 * neither add an entry each nor go unseen: platform admins read them, one entry per
 * principal, rule and minute.
 */
async function denialNode(db: Queryable, s: Scope | undefined): Promise<{ node: string; scope: string[] }> {
  const platform = { node: PLATFORM_SCOPE, scope: [PLATFORM_SCOPE] };
  if (s === undefined) return platform;
  const ref = `${s.type}:${s.id}`;
  if (s.type === 'organization') return (await getNode(db, 'organization', s.id)) ? { node: ref, scope: [ref] } : platform;
  // An existing division or tenant has its organization above it; an unknown one is [ref] alone.
  const path = await ancestorPath(db, ref);
  return path.length > 1 ? { node: ref, scope: path } : platform;
}

export interface DenialAuditOptions {
  db: Db;
  /** How long denials are counted in memory before they are written (ms). */
  flushMs?: number;
  /** Distinct (minute, principal, rule, node) keys held between writes; denials of further keys are dropped and reported. */
  maxKeys?: number;
  /** Clock in ms since the epoch; tests move it. */
  now?: () => number;
  /** A write that failed (its denials are lost), or denials dropped because maxKeys was reached. */
  onError?: (err: unknown, lost: number) => void;
}

export interface DenialAudit {
  /** Counts one denial; never waits and never throws (the refusal is not delayed). */
  record(d: GatewayDenial): void;
  /** Writes what has been counted so far. */
  flush(): Promise<void>;
  /** Stops the timer and writes what is left. */
  close(): Promise<void>;
}

/**
 * The gateway's side of recordGatewayDenial: denials are counted in memory per key and
 * minute and written once per `flushMs`, so a flood of refused requests costs a map
 * lookup each and one small transaction per key and second, not a database write each.
 */
export function createDenialAudit(opts: DenialAuditOptions): DenialAudit {
  const flushMs = opts.flushMs ?? 1000;
  const maxKeys = opts.maxKeys ?? 10_000;
  const now = opts.now ?? Date.now;
  const onError = opts.onError ?? (() => undefined);
  type Pending = { denial: GatewayDenial; atMs: number; count: number };
  const batches = createCountedBatches<Pending>({
    flushMs,
    maxKeys,
    async write(batch, lost) {
      if (lost > 0) onError(new Error(`${lost} gateway denials not audited: more than ${maxKeys} distinct keys between two writes`), lost);
      for (const p of batch.values()) {
        try {
          await recordGatewayDenial(opts.db, p.denial, p.count, p.atMs);
        } catch (err) {
          onError(err, p.count);
        }
      }
    },
    merge(into, from) {
      into.count += from.count;
    },
  });

  return {
    record(d) {
      const atMs = now();
      const minute = Math.floor(atMs / MINUTE_MS);
      // Ids, rule ids and subjects hold no NUL, so NUL separates unambiguously.
      const key = `${minute}\0${d.actor}\0${d.rule ?? NO_RULE}\0${d.scope?.type ?? ''}\0${d.scope?.id ?? ''}`;
      batches.count(
        key,
        (hit) => hit.count++,
        () => ({ denial: d, atMs, count: 1 }),
      );
    },
    flush: batches.flush,
    close: batches.close,
  };
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
  /** Denials a gateway.deny entry stands for (its key's count in its minute); 1 for every other entry. */
  count: number;
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
    denials: string | number | null;
  }>(
    `select seq, at, actor, action, target, outcome, request_id, before, after, detail, scope,
            case when action = 'gateway.deny' then
              (select g.count from gateway_denial_counts g
               where g.minute = (admin_audit.detail->>'minute')::timestamptz and g.actor = admin_audit.actor
                 and g.rule = admin_audit.detail->>'rule' and g.node = admin_audit.detail->>'node')
            end as denials
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
    // Entries without a count row (other actions, denials recorded one by one before counting) stand for one.
    count: row.denials === null || row.denials === undefined ? 1 : Number(row.denials),
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
