// Names and metadata of the hierarchy in PostgreSQL (relationships live in OpenFGA).
// Parent columns mirror the structural tuples exactly; write-through.ts keeps
// the two in step.
import { migrate, type Db, type Migration, type Queryable } from '../db/index.js';
import type { NodeKind, NodeView } from './schemas.js';

export const ADMIN_MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'hierarchy and audit',
    sql: `
      create table admin_organizations (
        id text primary key,
        name text not null,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now()
      );
      create table admin_divisions (
        id text primary key,
        name text not null,
        organization_id text not null references admin_organizations(id),
        parent_division_id text references admin_divisions(id),
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        check (parent_division_id is null or parent_division_id <> id)
      );
      create index admin_divisions_org on admin_divisions (organization_id);
      create index admin_divisions_parent on admin_divisions (parent_division_id);
      create table admin_tenants (
        id text primary key,
        name text not null,
        division_id text not null references admin_divisions(id),
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now()
      );
      create index admin_tenants_division on admin_tenants (division_id);

      -- Append-only audit trail. scope holds the target's ancestor path at the
      -- time (e.g. {organization:acme,division:emea,tenant:acme-sales}); readers see
      -- an entry when it overlaps the nodes they may read the audit of.
      create table admin_audit (
        seq bigserial primary key,
        at timestamptz not null default clock_timestamp(),
        actor text not null,
        action text not null,
        target text not null,
        scope text[] not null,
        outcome text not null check (outcome in ('success', 'denied', 'failed')),
        request_id text,
        before jsonb,
        after jsonb,
        detail jsonb
      );
      create index admin_audit_scope on admin_audit using gin (scope);
      create index admin_audit_at on admin_audit (at);
      create function admin_audit_append_only() returns trigger language plpgsql as $$
        begin
          raise exception 'admin_audit is append-only: % refused', tg_op;
        end
      $$;
      create trigger admin_audit_no_update_delete before update or delete on admin_audit
        for each row execute function admin_audit_append_only();
      create trigger admin_audit_no_truncate before truncate on admin_audit
        for each statement execute function admin_audit_append_only();
    `,
  },
  {
    version: 2,
    name: 'node id registry',
    sql: `
      -- Every id a node ever had, per kind. A deleted node's id stays here, retired,
      -- so no later node can take it and inherit its grants, data, audit or cached
      -- decisions. Rows are never deleted and a retired id never comes back.
      create table admin_node_ids (
        kind text not null check (kind in ('organization', 'division', 'tenant')),
        id text not null,
        organization_id text,
        created_at timestamptz not null default now(),
        retired_at timestamptz,
        primary key (kind, id)
      );
      create function admin_node_ids_keep() returns trigger language plpgsql as $$
        begin
          if tg_op = 'UPDATE' then
            if old.retired_at is null and new.kind = old.kind and new.id = old.id then return new; end if;
          end if;
          raise exception 'admin_node_ids keeps every id and never revives a retired one: % refused', tg_op;
        end
      $$;
      create trigger admin_node_ids_keep before update or delete on admin_node_ids
        for each row execute function admin_node_ids_keep();
      create trigger admin_node_ids_no_truncate before truncate on admin_node_ids
        for each statement execute function admin_node_ids_keep();

      insert into admin_node_ids (kind, id, organization_id, created_at)
        select 'organization', id, id, created_at from admin_organizations;
      insert into admin_node_ids (kind, id, organization_id, created_at)
        select 'division', id, organization_id, created_at from admin_divisions;
      insert into admin_node_ids (kind, id, organization_id, created_at)
        select 'tenant', t.id, d.organization_id, t.created_at from admin_tenants t join admin_divisions d on d.id = t.division_id;

      -- Ids deleted before this registry existed are retired too (the audit trail
      -- remembers them). An id deleted and later taken again is live above.
      insert into admin_node_ids (kind, id, organization_id, created_at, retired_at)
        select split_part(target, ':', 1), substr(target, strpos(target, ':') + 1),
               max((select substr(s, length('organization:') + 1) from unnest(scope) s where s like 'organization:%' limit 1)),
               min(at), max(at)
        from admin_audit
        where outcome = 'success' and action in ('organization.delete', 'division.delete', 'tenant.delete')
          and split_part(action, '.', 1) = split_part(target, ':', 1)
        group by target
      on conflict (kind, id) do nothing;
    `,
  },
  {
    version: 3,
    name: 'gateway denials counted per minute',
    sql: `
      -- Denied gateway requests per (minute, principal, policy rule, scope node). Every
      -- gateway adds what it counted (insert ... on conflict do update), so the sum is
      -- right however many replicas share the database. A count only grows.
      create table gateway_denial_counts (
        minute timestamptz not null,
        actor text not null,
        rule text not null,
        node text not null,
        count bigint not null check (count > 0),
        primary key (minute, actor, rule, node)
      );
      create function gateway_denial_counts_grow_only() returns trigger language plpgsql as $$
        begin
          if tg_op = 'UPDATE' then
            if (new.minute, new.actor, new.rule, new.node) = (old.minute, old.actor, old.rule, old.node) and new.count >= old.count then
              return new;
            end if;
          end if;
          raise exception 'gateway_denial_counts only grows: % refused', tg_op;
        end
      $$;
      create trigger gateway_denial_counts_grow_only before update or delete on gateway_denial_counts
        for each row execute function gateway_denial_counts_grow_only();
      create trigger gateway_denial_counts_no_truncate before truncate on gateway_denial_counts
        for each statement execute function gateway_denial_counts_grow_only();
      -- At most one gateway.deny audit entry per key and minute: replicas insert it with
      -- on conflict do nothing. The key is kept in the entry's detail (->> is immutable,
      -- so it can be indexed; date_trunc on a timestamptz is not). Entries written before
      -- this migration have no key there and never conflict.
      create unique index admin_audit_gateway_deny_once on admin_audit
        ((detail->>'minute'), actor, (detail->>'rule'), (detail->>'node')) where action = 'gateway.deny';
    `,
  },
  {
    version: 4,
    name: 'settings documents',
    sql: `
      -- One row per (node, key) of a node's settings document (src/settings/): the entry
      -- (set / append+remove / reset / lock) with its author and time, the provenance
      -- of the effective values computed from it. node is an object ref such as
      -- division:emea; a deleted node's rows go with it (its id is never reused).
      create table admin_settings (
        node text not null,
        key text not null,
        entry jsonb not null,
        author text not null,
        at timestamptz not null default clock_timestamp(),
        primary key (node, key)
      );
    `,
  },
  {
    version: 5,
    name: 'cross-level access counted per hour',
    sql: `
      -- Allowed gateway requests in a tenant through a role held above it, and every
      -- access through a break-glass grant (src/admin/cross-level.ts), one row per
      -- (hour, subject, accessed node, node holding the role, rule, method). Every gateway
      -- adds what it counted; a count only grows. scope is the accessed node's ancestor
      -- path (root first) when the row was started.
      create table gateway_cross_level_access (
        id bigserial unique,
        hour timestamptz not null,
        subject text not null,
        node text not null,
        role_node text not null,
        role text not null,
        break_glass boolean not null,
        rule text not null,
        method text not null,
        route text not null,
        permission text not null,
        scope text[] not null,
        first_seen timestamptz not null,
        last_seen timestamptz not null,
        count bigint not null check (count > 0),
        primary key (hour, subject, node, role_node, rule, method)
      );
      create index gateway_cross_level_access_node on gateway_cross_level_access (node, id);
      create index gateway_cross_level_access_break_glass on gateway_cross_level_access (id) where break_glass;
      create function gateway_cross_level_access_grow_only() returns trigger language plpgsql as $$
        begin
          if tg_op = 'UPDATE' then
            if (new.id, new.hour, new.subject, new.node, new.role_node, new.rule, new.method)
                 = (old.id, old.hour, old.subject, old.node, old.role_node, old.rule, old.method)
               and new.count >= old.count then
              return new;
            end if;
          end if;
          raise exception 'gateway_cross_level_access only grows: % refused', tg_op;
        end
      $$;
      create trigger gateway_cross_level_access_grow_only before update or delete on gateway_cross_level_access
        for each row execute function gateway_cross_level_access_grow_only();
      create trigger gateway_cross_level_access_no_truncate before truncate on gateway_cross_level_access
        for each statement execute function gateway_cross_level_access_grow_only();
      -- How an organization admin grant was made (break-glass or not): the latest grant
      -- or revoke of the role (break-glass, roles API, tuples API), found by target.
      create index admin_audit_role_changes on admin_audit (target, seq)
        where action in ('organization.break-glass', 'role.grant', 'role.revoke', 'tuple.write', 'tuple.delete');
    `,
  },
  {
    version: 6,
    name: 'nodes in byte order',
    sql: `
      -- Listings page nodes by id in byte order (collate "C", the same order on every
      -- database). The primary keys follow the database's default collation, which on a
      -- cluster created with a language locale cannot give that order: without these, each
      -- page sorts every candidate under the caller's grants.
      create index admin_organizations_id_c on admin_organizations (id collate "C");
      create index admin_divisions_id_c on admin_divisions (id collate "C");
      create index admin_tenants_id_c on admin_tenants (id collate "C");
    `,
  },
];

/** Creates or upgrades the admin tables (idempotent). */
export async function migrateAdmin(db: Db): Promise<number> {
  return migrate(db, 'admin', ADMIN_MIGRATIONS);
}

interface NodeRow {
  id: string;
  name: string;
  organization_id: string;
  parent: string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

const iso = (v: Date | string) => (v instanceof Date ? v.toISOString() : new Date(v).toISOString());

function toView(type: NodeKind, r: NodeRow): NodeView {
  return {
    type,
    id: r.id,
    name: r.name,
    organizationId: r.organization_id,
    parent: r.parent,
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
}

// One select per kind giving the NodeView columns; `parent` as an OpenFGA object ref.
const SELECT: Record<NodeKind, string> = {
  organization: `select o.id, o.name, o.id as organization_id, null::text as parent, o.created_at, o.updated_at
                 from admin_organizations o`,
  division: `select d.id, d.name, d.organization_id,
                    case when d.parent_division_id is null then 'organization:' || d.organization_id
                         else 'division:' || d.parent_division_id end as parent,
                    d.created_at, d.updated_at
             from admin_divisions d`,
  tenant: `select t.id, t.name, d.organization_id, 'division:' || t.division_id as parent, t.created_at, t.updated_at
           from admin_tenants t join admin_divisions d on d.id = t.division_id`,
};
const ALIAS: Record<NodeKind, string> = { organization: 'o', division: 'd', tenant: 't' };
export const TABLE: Record<NodeKind, string> = { organization: 'admin_organizations', division: 'admin_divisions', tenant: 'admin_tenants' };

export async function getNode(q: Queryable, type: NodeKind, id: string, forUpdate = false): Promise<NodeView | undefined> {
  const lock = forUpdate ? ` for update of ${ALIAS[type]}` : '';
  const r = await q.query<NodeRow>(`${SELECT[type]} where ${ALIAS[type]}.id = $1${lock}`, [id]);
  const row = r.rows[0];
  return row ? toView(type, row) : undefined;
}

/** Nodes of one kind by id, sorted by id (ids absent from the database are skipped). */
export async function getNodes(q: Queryable, type: NodeKind, ids: string[]): Promise<NodeView[]> {
  if (ids.length === 0) return [];
  const r = await q.query<NodeRow>(`${SELECT[type]} where ${ALIAS[type]}.id = any($1::text[]) order by ${ALIAS[type]}.id collate "C"`, [ids]);
  return r.rows.map((row) => toView(type, row));
}

export async function insertOrganization(q: Queryable, id: string, name: string): Promise<void> {
  await q.query('insert into admin_organizations (id, name) values ($1, $2)', [id, name]);
}

export async function insertDivision(q: Queryable, id: string, name: string, organizationId: string, parentDivisionId: string | null): Promise<void> {
  await q.query('insert into admin_divisions (id, name, organization_id, parent_division_id) values ($1, $2, $3, $4)', [
    id,
    name,
    organizationId,
    parentDivisionId,
  ]);
}

export async function insertTenant(q: Queryable, id: string, name: string, divisionId: string): Promise<void> {
  await q.query('insert into admin_tenants (id, name, division_id) values ($1, $2, $3)', [id, name, divisionId]);
}

/** Tenants of one division, one statement. */
export async function insertTenants(q: Queryable, divisionId: string, tenants: readonly { id: string; name: string }[]): Promise<void> {
  await q.query('insert into admin_tenants (id, name, division_id) select id, name, $3 from unnest($1::text[], $2::text[]) as t(id, name)', [
    tenants.map((t) => t.id),
    tenants.map((t) => t.name),
    divisionId,
  ]);
}

export async function renameNode(q: Queryable, type: NodeKind, id: string, name: string): Promise<void> {
  await q.query(`update ${TABLE[type]} set name = $2, updated_at = now() where id = $1`, [id, name]);
}

export async function deleteNode(q: Queryable, type: NodeKind, id: string): Promise<void> {
  await q.query(`delete from ${TABLE[type]} where id = $1`, [id]);
}

export async function setDivisionParent(q: Queryable, id: string, parentDivisionId: string | null): Promise<void> {
  await q.query('update admin_divisions set parent_division_id = $2, updated_at = now() where id = $1', [id, parentDivisionId]);
}

export async function setTenantDivision(q: Queryable, id: string, divisionId: string): Promise<void> {
  await q.query('update admin_tenants set division_id = $2, updated_at = now() where id = $1', [id, divisionId]);
}

/** The platform's lock ref: creating an organization and platform grants take it. */
export const PLATFORM_LOCK = 'platform:root';

/**
 * Serialises admin writes per node: takes a transaction-scoped advisory lock for
 * each ref (`organization:acme`, `platform:root`, …), one at a time in one global
 * order so two writers never wait on each other in a cycle. Held until the
 * transaction ends; whatever decides the write must be read after this returns.
 */
export async function lockNodes(tx: Queryable, refs: Iterable<string>): Promise<void> {
  const sorted = [...new Set(refs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const ref of sorted) await tx.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [ref]);
}

export type IdClaim = 'claimed' | 'taken' | 'retired';

/** Records a new node's id in the registry: `taken` while another node has it, `retired` once one had it. */
export async function claimNodeId(q: Queryable, kind: NodeKind, id: string, organizationId: string): Promise<IdClaim> {
  const r = await q.query<{ retired_at: unknown }>(
    `with ins as (
       insert into admin_node_ids (kind, id, organization_id) values ($1, $2, $3)
       on conflict (kind, id) do nothing returning 1
     ) select (select count(*) from ins) as claimed,
              (select retired_at from admin_node_ids where kind = $1 and id = $2) as retired_at`,
    [kind, id, organizationId],
  );
  const row = r.rows[0] as { claimed: string | number; retired_at: unknown } | undefined;
  if (Number(row?.claimed ?? 0) > 0) return 'claimed';
  return row?.retired_at ? 'retired' : 'taken';
}

/** Marks a deleted node's id retired, for good. */
export async function retireNodeId(q: Queryable, kind: NodeKind, id: string, organizationId: string): Promise<void> {
  await q.query(
    `insert into admin_node_ids (kind, id, organization_id, retired_at) values ($1, $2, $3, now())
     on conflict (kind, id) do update set retired_at = now() where admin_node_ids.retired_at is null`,
    [kind, id, organizationId],
  );
}

/** Children counts, for "delete with children is 409". */
export async function childCounts(q: Queryable, type: NodeKind, id: string): Promise<{ divisions: number; tenants: number }> {
  if (type === 'tenant') return { divisions: 0, tenants: 0 };
  const col = type === 'organization' ? 'organization_id' : 'parent_division_id';
  const d = await q.query<{ n: string | number }>(`select count(*) as n from admin_divisions where ${col} = $1`, [id]);
  const t =
    type === 'division'
      ? await q.query<{ n: string | number }>('select count(*) as n from admin_tenants where division_id = $1', [id])
      : { rows: [{ n: 0 }] };
  return { divisions: Number(d.rows[0]?.n ?? 0), tenants: Number(t.rows[0]?.n ?? 0) };
}

/** Guard against a corrupted parent chain: the hierarchy is never this deep. */
const MAX_DEPTH = 64;

/** Division ids from the top-level division down to `divisionId` (inclusive). */
export async function divisionChain(q: Queryable, divisionId: string): Promise<string[]> {
  const r = await q.query<{ id: string; depth: number }>(
    `with recursive chain(id, parent, depth) as (
       select id, parent_division_id, 0 from admin_divisions where id = $1
       union all
       select d.id, d.parent_division_id, c.depth + 1 from admin_divisions d join chain c on d.id = c.parent
       where c.depth < ${MAX_DEPTH}
     ) select id, depth from chain order by depth desc`,
    [divisionId],
  );
  return r.rows.map((row) => row.id);
}

/**
 * The node's ancestor path as OpenFGA object refs, root first, the node last:
 * `[organization:o, division:top, …, tenant:t]`. Unknown nodes give `[node]`.
 * Stored with each audit entry so scoping the trail is a query.
 */
export async function ancestorPath(q: Queryable, ref: string): Promise<string[]> {
  const [type, id = ''] = splitRef(ref);
  if (type === 'organization') return [ref];
  if (type === 'division') {
    const node = await getNode(q, 'division', id);
    if (!node) return [ref];
    return [`organization:${node.organizationId}`, ...(await divisionChain(q, id)).map((d) => `division:${d}`)];
  }
  if (type === 'tenant') {
    const node = await getNode(q, 'tenant', id);
    if (!node) return [ref];
    const divisionId = node.parent!.slice('division:'.length);
    return [`organization:${node.organizationId}`, ...(await divisionChain(q, divisionId)).map((d) => `division:${d}`), ref];
  }
  return [ref];
}

export function splitRef(ref: string): [string, string | undefined] {
  const i = ref.indexOf(':');
  return i < 0 ? [ref, undefined] : [ref.slice(0, i), ref.slice(i + 1)];
}

/** Every division and tenant id under the given organizations / divisions (inclusive of the divisions). */
export async function subtree(
  q: Queryable,
  roots: { organizations: string[]; divisions: string[] },
): Promise<{ divisions: string[]; tenants: string[] }> {
  const r = await q.query<{ id: string }>(
    `with recursive sub(id, depth) as (
       select id, 0 from admin_divisions where organization_id = any($1::text[]) or id = any($2::text[])
       union
       select d.id, s.depth + 1 from admin_divisions d join sub s on d.parent_division_id = s.id where s.depth < ${MAX_DEPTH}
     ) select distinct id from sub`,
    [roots.organizations, roots.divisions],
  );
  const divisions = r.rows.map((row) => row.id);
  const t = await q.query<{ id: string }>('select id from admin_tenants where division_id = any($1::text[])', [divisions]);
  return { divisions, tenants: t.rows.map((row) => row.id) };
}

export async function allOrganizationIds(q: Queryable): Promise<string[]> {
  const r = await q.query<{ id: string }>('select id from admin_organizations order by id collate "C"');
  return r.rows.map((row) => row.id);
}

/** Every node with its parent columns: what OpenFGA's structural links must say (../fga/reconcile.ts). */
export async function hierarchyRows(q: Queryable): Promise<{
  organizations: Array<{ id: string }>;
  divisions: Array<{ id: string; organizationId: string; parentDivisionId: string | null }>;
  tenants: Array<{ id: string; divisionId: string }>;
}> {
  const o = await q.query<{ id: string }>('select id from admin_organizations');
  const d = await q.query<{ id: string; organization_id: string; parent_division_id: string | null }>(
    'select id, organization_id, parent_division_id from admin_divisions',
  );
  const t = await q.query<{ id: string; division_id: string }>('select id, division_id from admin_tenants');
  return {
    organizations: o.rows.map((r) => ({ id: r.id })),
    divisions: d.rows.map((r) => ({ id: r.id, organizationId: r.organization_id, parentDivisionId: r.parent_division_id })),
    tenants: t.rows.map((r) => ({ id: r.id, divisionId: r.division_id })),
  };
}

/** Where a caller's `can_view` may reach, from its direct grants: the roots of the listing walk. */
export interface VisibleRoots {
  /** Platform admin: every organization. */
  allOrganizations: boolean;
  organizations: string[];
  divisions: string[];
  /** Tenants granted directly (admin or member). */
  tenants: string[];
}

// The candidates of one kind under the roots, as a `with` prefix and a where clause over SELECT[kind].
function candidateQuery(kind: NodeKind, roots: VisibleRoots): { sql: string; params: unknown[] } {
  if (kind === 'organization') {
    return { sql: `${SELECT.organization} where ($1::boolean or o.id = any($2::text[]))`, params: [roots.allOrganizations, roots.organizations] };
  }
  const sub = `with recursive sub(id, depth) as (
       select id, 0 from admin_divisions where organization_id = any($1::text[]) or id = any($2::text[])
       union
       select d.id, s.depth + 1 from admin_divisions d join sub s on d.parent_division_id = s.id where s.depth < ${MAX_DEPTH}
     ) `;
  const params = [roots.organizations, roots.divisions];
  if (kind === 'division') return { sql: `${sub}${SELECT.division} where d.id in (select id from sub)`, params };
  return { sql: `${sub}${SELECT.tenant} where (t.division_id in (select id from sub) or t.id = any($3::text[]))`, params: [...params, roots.tenants] };
}

/**
 * Up to `limit` candidates of one kind under the roots whose id sorts after `after` (byte order),
 * sorted by id: one page of the listing walk, paged by the primary key.
 */
export async function candidatePage(q: Queryable, kind: NodeKind, roots: VisibleRoots, after: string | undefined, limit: number): Promise<NodeView[]> {
  const { sql, params } = candidateQuery(kind, roots);
  const a = ALIAS[kind];
  const r = await q.query<NodeRow>(
    `${sql} and ($${params.length + 1}::text is null or ${a}.id collate "C" > $${params.length + 1}::text collate "C")
     order by ${a}.id collate "C" limit $${params.length + 2}`,
    [...params, after ?? null, limit],
  );
  return r.rows.map((row) => toView(kind, row));
}

/**
 * The parent division (null at the top) of each of `ids` and of every division above them,
 * as the database places them: the paths a listing's candidates hang from.
 */
export async function divisionParents(q: Queryable, ids: readonly string[]): Promise<Map<string, string | null>> {
  if (ids.length === 0) return new Map();
  const r = await q.query<{ id: string; parent: string | null }>(
    `with recursive up(id, parent, depth) as (
       select id, parent_division_id, 0 from admin_divisions where id = any($1::text[])
       union all
       select d.id, d.parent_division_id, u.depth + 1 from admin_divisions d join up u on d.id = u.parent where u.depth < ${MAX_DEPTH}
     ) select distinct id, parent from up`,
    [ids],
  );
  return new Map(r.rows.map((row) => [row.id, row.parent]));
}

/** How many candidates of one kind the roots reach. */
export async function countCandidates(q: Queryable, kind: NodeKind, roots: VisibleRoots): Promise<number> {
  const { sql, params } = candidateQuery(kind, roots);
  const r = await q.query<{ n: number }>(`select count(*)::int as n from (${sql}) c`, params);
  return r.rows[0]?.n ?? 0;
}
