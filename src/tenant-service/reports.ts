// Summaries over a given set of tenants: one tenant for the tenant report, the
// tenants the gateway resolved under a division or organization for theirs.
// Three grouped queries regardless of how many tenants, each bound to that set.
import type { Queryable } from '../db/index.js';
import { RESOURCE_KINDS } from '../shared/resource-kinds.js';
import { AGENT_STATUSES } from './validation.js';

const DISPOSITIONS = ['answered', 'missed', 'abandoned', 'voicemail', 'failed'] as const;
const DIRECTIONS = ['inbound', 'outbound', 'internal'] as const;

export interface CallStats {
  total: number;
  answered: number;
  missed: number;
  abandoned: number;
  voicemail: number;
  failed: number;
  inbound: number;
  outbound: number;
  internal: number;
  talkSeconds: number;
}

export interface SummaryFigures {
  /** Count per resource kind (path segment), call records included. */
  resources: Record<string, number>;
  agentsByStatus: Record<string, number>;
  calls: CallStats;
}

export interface TenantSummary extends SummaryFigures {
  tenantId: string;
}

export interface NodeSummary {
  scope: { type: 'division' | 'organization'; id: string };
  tenantCount: number;
  totals: SummaryFigures;
  tenants: TenantSummary[];
}

function emptyFigures(): SummaryFigures {
  return {
    resources: Object.fromEntries(RESOURCE_KINDS.map((k) => [k.segment, 0])),
    agentsByStatus: Object.fromEntries(AGENT_STATUSES.map((s) => [s, 0])),
    calls: {
      total: 0,
      answered: 0,
      missed: 0,
      abandoned: 0,
      voicemail: 0,
      failed: 0,
      inbound: 0,
      outbound: 0,
      internal: 0,
      talkSeconds: 0,
    },
  };
}

/** One summary per tenant in `tenantIds` (sorted, de-duplicated), zeros for tenants with no data. */
export async function summarizeTenants(db: Queryable, tenantIds: readonly string[]): Promise<TenantSummary[]> {
  const ids = [...new Set(tenantIds)].sort();
  if (ids.length === 0) return [];
  const byTenant = new Map<string, TenantSummary>(ids.map((id) => [id, { tenantId: id, ...emptyFigures() }]));

  const [kinds, statuses, calls] = await Promise.all([
    db.query<{ tenant_id: string; kind: string; n: number }>(
      `select tenant_id, kind, count(*)::int as n from tenant_service.resources
        where tenant_id = any($1::text[]) group by tenant_id, kind`,
      [ids],
    ),
    db.query<{ tenant_id: string; status: string | null; n: number }>(
      `select tenant_id, attrs->>'status' as status, count(*)::int as n from tenant_service.resources
        where tenant_id = any($1::text[]) and kind = 'agents' group by tenant_id, attrs->>'status'`,
      [ids],
    ),
    db.query<{ tenant_id: string; n: number; talk: number } & Record<string, number | string>>(
      `select tenant_id, count(*)::int as n, coalesce(sum(duration_s), 0)::float8 as talk,
              ${DISPOSITIONS.map((d) => `count(*) filter (where disposition = '${d}')::int as "${d}"`).join(', ')},
              ${DIRECTIONS.map((d) => `count(*) filter (where direction = '${d}')::int as "${d}"`).join(', ')}
         from tenant_service.call_records where tenant_id = any($1::text[]) group by tenant_id`,
      [ids],
    ),
  ]);

  for (const row of kinds.rows) {
    const s = byTenant.get(row.tenant_id);
    if (s) s.resources[row.kind] = Number(row.n);
  }
  for (const row of statuses.rows) {
    const s = byTenant.get(row.tenant_id);
    if (s && row.status !== null) s.agentsByStatus[row.status] = Number(row.n);
  }
  for (const row of calls.rows) {
    const s = byTenant.get(row.tenant_id);
    if (!s) continue;
    s.resources['call-records'] = Number(row.n);
    s.calls.total = Number(row.n);
    s.calls.talkSeconds = Number(row.talk);
    for (const d of [...DISPOSITIONS, ...DIRECTIONS]) s.calls[d] = Number(row[d]);
  }
  return ids.map((id) => byTenant.get(id)!);
}

export function addFigures(into: SummaryFigures, from: SummaryFigures): void {
  for (const [k, n] of Object.entries(from.resources)) into.resources[k] = (into.resources[k] ?? 0) + n;
  for (const [k, n] of Object.entries(from.agentsByStatus)) into.agentsByStatus[k] = (into.agentsByStatus[k] ?? 0) + n;
  for (const k of Object.keys(into.calls) as (keyof CallStats)[]) into.calls[k] += from.calls[k];
}

export async function summarizeNode(
  db: Queryable,
  scope: { type: 'division' | 'organization'; id: string },
  tenantIds: readonly string[],
): Promise<NodeSummary> {
  const tenants = await summarizeTenants(db, tenantIds);
  const totals = emptyFigures();
  for (const t of tenants) addFigures(totals, t);
  return { scope, tenantCount: tenants.length, totals, tenants };
}

/** Calls of one tenant started at or after `since`. */
export async function callsSince(db: Queryable, tenantId: string, since: string): Promise<number> {
  const r = await db.query<{ n: number }>(
    'select count(*)::int as n from tenant_service.call_records where tenant_id = $1 and started_at >= $2::timestamptz',
    [tenantId, since],
  );
  return Number(r.rows[0]?.n ?? 0);
}
