// The cross-level access audit: allowed gateway requests inside a tenant whose
// permission came from a role held above it (an organization or division admin acting
// in the tenant), and every access through a platform break-glass grant. One row per
// (hour, subject, accessed node, node the role is held on, rule, method) with a count.
//
// The request path only counts: record() is one map update per allowed request. Whether
// an access was cross-level, and where the role is held, is worked out at flush time in
// the background (RoleSourceResolver): the subject's own tuples on the node and its
// ancestors (OpenFGA Read), one Check of the rule's permission with the tenant's own
// roles alone, and the audit trail for how an organization admin grant was made.
import { createCountedBatches } from './counted-batches.js';
import type { Db, Queryable } from '../db/index.js';
import type { Scope, TupleKey } from '../authz/types.js';
import { GLOBAL_KEY } from '../decisions/version-keys.js';
import type { VersionStore } from '../decisions/version-store.js';
import type { Engine } from './engine.js';
import { ancestorPath, splitRef } from './store.js';

/** An allowed gateway request, as the authorize stage saw it. */
export interface AllowedAccess {
  /** `user:<sub>` (or `client:<id>`). */
  subject: string;
  /** The id of the policy rule that matched. */
  rule: string;
  permission: string;
  /** The OpenFGA object checked, e.g. `tenant:acme-sales` or `agent:acme-sales/2000`. */
  object: string;
  /** The rule's contextual tuples (a resource's link to its tenant). */
  contextualTuples: readonly TupleKey[];
  /** The hierarchy node the request is scoped to. */
  scope: Scope;
  method: string;
  /** The rule's path template (never the request's raw path). */
  route: string;
}

/** Where the role behind a recorded access is held. */
export interface RoleSource {
  /** The node holding the role, e.g. `organization:acme`; `-` when no role found explains the access any more. */
  node: string;
  role: string;
  /** The role is an organization admin grant made by a platform break-glass. */
  breakGlass: boolean;
}

export interface Resolution {
  /** Undefined: not recorded (a role on the tenant itself grants the access, or it is not a tenant and not break-glass). */
  source: RoleSource | undefined;
  /** The accessed node's ancestor path, root first. */
  path: string[];
}

export interface RoleSourceResolver {
  resolve(a: AllowedAccess): Promise<Resolution>;
}

/** The only role that flows down the hierarchy (model.fga: `admin from division/parent/organization`). */
const INHERITED_ROLE = 'admin';
/** Never a node id (ids match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$), so no stored tuple mentions it. */
const PROBE_ID = '~own-roles';
const PROBE_TENANT = `tenant:${PROBE_ID}`;
export const BREAK_GLASS_ACTION = 'organization.break-glass';
const UNKNOWN = '-';

interface Holding {
  /** Version keys and values read before the tuples were; none when unavailable. */
  versionKeys: string[];
  versionValues: number[];
  path: string[];
  /** The subject's direct relations per node of the path. */
  roles: Map<string, string[]>;
  /** Organizations on the path whose admin grant to the subject was made by break-glass. */
  breakGlass: Set<string>;
  /** Whether the tenant's own roles grant (permission, object type). */
  probes: Map<string, Promise<boolean>>;
}

export interface ResolverOptions {
  db: Queryable;
  engine: Pick<Engine, 'readAll' | 'check'>;
  /**
   * The decision cache's versions: an answer is reused only while the versions of the
   * node, its ancestors and the global epoch are the ones read before it was worked
   * out (any tuple written on one of them, on any replica, bumps its version). Without
   * them, or when they cannot be read, only ttlMs bounds how long an answer is reused.
   */
  versions?: Pick<VersionStore, 'read' | 'matches'>;
  /**
   * How long one (subject, node) answer is reused at most (ms); the request path never
   * waits for it. Default 30 s.
   */
  ttlMs?: number;
  /** (subject, node) answers kept; the oldest go first. Default 10,000. */
  maxEntries?: number;
  now?: () => number;
}

/** The audit actions that grant or revoke a role, each entry naming one tuple (src/admin/routes/{break-glass,roles,tuples}.ts). */
export const ROLE_CHANGE_ACTIONS = [BREAK_GLASS_ACTION, 'role.grant', 'role.revoke', 'tuple.write', 'tuple.delete'] as const;

/**
 * Is the latest grant of `admin` on the organization to the subject a break-glass one?
 * A later ordinary grant (after a revoke; roles or tuples API) makes it ordinary again.
 */
export async function heldByBreakGlass(q: Queryable, subject: string, organization: string): Promise<boolean> {
  const r = await q.query<{ action: string }>(
    `select action from admin_audit
     where target = $1 and outcome = 'success' and action in (${ROLE_CHANGE_ACTIONS.map((a) => `'${a}'`).join(', ')})
       and coalesce(after->>'user', before->>'user') = $2
       and coalesce(after->>'role', after->>'relation', before->>'role', before->>'relation') = '${INHERITED_ROLE}'
     order by seq desc limit 1`,
    [organization, subject],
  );
  return r.rows[0]?.action === BREAK_GLASS_ACTION;
}

export function createRoleSourceResolver(opts: ResolverOptions): RoleSourceResolver {
  const ttlMs = opts.ttlMs ?? 30_000;
  const maxEntries = opts.maxEntries ?? 10_000;
  const now = opts.now ?? Date.now;
  const cache = new Map<string, { at: number; holding: Promise<Holding>; settled?: Holding }>();
  /** Still valid by the versions (an answer without versions lives by ttlMs alone). */
  const current = (h: Holding) => h.versionKeys.length === 0 || opts.versions!.matches(h.versionKeys, h.versionValues);

  async function load(subject: string, node: string): Promise<Holding> {
    const before = await ancestorPath(opts.db, node);
    // Versions first, tuples after: a change in between bumps a version read here.
    const keys = [GLOBAL_KEY, ...before];
    let values: number[] | undefined;
    try {
      values = opts.versions ? await opts.versions.read(keys) : undefined;
    } catch {
      values = undefined; // Redis unavailable: this answer lives by ttlMs alone
    }
    // The path again, after the versions: when the node moved in between, the answer is
    // used for this flush and never reused (-1 is no version's value).
    const path = await ancestorPath(opts.db, node);
    const moved = path.length !== before.length || path.some((p, i) => p !== before[i]);
    const versionKeys = values ? keys : [];
    const versionValues = values ? (moved ? values.map(() => -1) : values) : [];
    const tuples = await Promise.all(path.map((object) => opts.engine.readAll({ user: subject, object })));
    const roles = new Map(path.map((object, i) => [object, tuples[i]!.map((t) => t.relation)]));
    const breakGlass = new Set<string>();
    for (const object of path) {
      if (object.startsWith('organization:') && roles.get(object)!.includes(INHERITED_ROLE) && (await heldByBreakGlass(opts.db, subject, object))) {
        breakGlass.add(object);
      }
    }
    return { versionKeys, versionValues, path, roles, breakGlass, probes: new Map() };
  }

  function holding(subject: string, node: string): Promise<Holding> {
    const key = `${subject}\0${node}`;
    const t = now();
    const hit = cache.get(key);
    if (hit !== undefined && t - hit.at < ttlMs && (hit.settled === undefined || current(hit.settled))) return hit.holding;
    cache.delete(key);
    if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
    const entry: { at: number; holding: Promise<Holding>; settled?: Holding } = { at: t, holding: load(subject, node) };
    entry.holding.then(
      (h) => (entry.settled = h),
      // Never keep a failure.
      () => cache.get(key) === entry && cache.delete(key),
    );
    cache.set(key, entry);
    return entry.holding;
  }

  /**
   * Does the subject's own roles on the tenant grant the rule's permission? The same
   * Check the gateway made, on a stand-in tenant with no division above it that holds
   * exactly the subject's direct tenant roles (as contextual tuples): the model decides,
   * nothing is inherited.
   */
  function ownRolesSuffice(h: Holding, a: AllowedAccess, tenant: string, own: string[]): Promise<boolean> {
    const type = splitRef(a.object)[0];
    const key = `${a.permission}\0${type}`;
    let p = h.probes.get(key);
    if (p === undefined) {
      const object = type === 'tenant' ? PROBE_TENANT : `${type}:${PROBE_ID}`;
      const contextual: TupleKey[] = [
        ...a.contextualTuples.map((t) => ({
          user: t.user === tenant ? PROBE_TENANT : t.user,
          relation: t.relation,
          object: t.object === a.object ? object : t.object,
        })),
        ...own.map((relation) => ({ user: a.subject, relation, object: PROBE_TENANT })),
      ];
      p = opts.engine.check(a.subject, a.permission, object, contextual);
      h.probes.set(key, p);
      p.catch(() => h.probes.delete(key));
    }
    return p;
  }

  return {
    async resolve(a) {
      const node = `${a.scope.type}:${a.scope.id}`;
      const h = await holding(a.subject, node);
      // The nearest node holding the inherited role: above the node, or (outside tenants) the node itself.
      const nearest = (from: number) => {
        for (let i = from; i >= 0; i--) if (h.roles.get(h.path[i]!)?.includes(INHERITED_ROLE)) return h.path[i]!;
        return undefined;
      };
      const self = h.path.length - 1;
      if (a.scope.type !== 'tenant') {
        const at = nearest(self);
        return { path: h.path, source: at !== undefined && h.breakGlass.has(at) ? { node: at, role: INHERITED_ROLE, breakGlass: true } : undefined };
      }
      const own = h.roles.get(node) ?? [];
      if (own.length > 0 && (await ownRolesSuffice(h, a, node, own))) return { path: h.path, source: undefined };
      const at = nearest(self - 1);
      // Allowed, yet no role held now explains it (revoked since): recorded rather than lost.
      if (at === undefined) return { path: h.path, source: { node: UNKNOWN, role: UNKNOWN, breakGlass: false } };
      return { path: h.path, source: { node: at, role: INHERITED_ROLE, breakGlass: h.breakGlass.has(at) } };
    },
  };
}

const HOUR_MS = 3_600_000;
const RESOLVE_CONCURRENCY = 8;

export interface CrossLevelRecord {
  hourMs: number;
  subject: string;
  node: string;
  source: RoleSource;
  path: string[];
  rule: string;
  permission: string;
  method: string;
  route: string;
  firstMs: number;
  lastMs: number;
  count: number;
}

/** Adds one aggregate to its hour's row (every gateway sharing the database adds to the same row). */
export async function upsertCrossLevel(q: Queryable, r: CrossLevelRecord): Promise<void> {
  await q.query(
    `insert into gateway_cross_level_access
       (hour, subject, node, role_node, role, break_glass, rule, method, route, permission, scope, first_seen, last_seen, count)
     values ($1::timestamptz, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text[], $12::timestamptz, $13::timestamptz, $14)
     on conflict (hour, subject, node, role_node, rule, method) do update set
       count = gateway_cross_level_access.count + excluded.count,
       first_seen = least(gateway_cross_level_access.first_seen, excluded.first_seen),
       last_seen = greatest(gateway_cross_level_access.last_seen, excluded.last_seen),
       break_glass = gateway_cross_level_access.break_glass or excluded.break_glass,
       route = excluded.route, permission = excluded.permission`,
    [
      new Date(r.hourMs).toISOString(),
      r.subject,
      r.node,
      r.source.node,
      r.source.role,
      r.source.breakGlass,
      r.rule,
      r.method,
      r.route,
      r.permission,
      r.path,
      new Date(r.firstMs).toISOString(),
      new Date(r.lastMs).toISOString(),
      r.count,
    ],
  );
}

export interface CrossLevelAuditOptions {
  db: Db;
  resolver: RoleSourceResolver;
  /** How long accesses are counted in memory before they are resolved and written (ms). Default 1 s. */
  flushMs?: number;
  /** Distinct keys held between writes; accesses of further keys are dropped and reported. Default 10,000. */
  maxKeys?: number;
  now?: () => number;
  /** A resolution or write that failed, or accesses dropped because maxKeys was reached. */
  onError?: (err: unknown, lost: number) => void;
}

export interface CrossLevelAudit {
  /** Counts one allowed access: a map update, never waits, never throws. */
  record(a: AllowedAccess): void;
  /** Resolves and writes what has been counted so far. */
  flush(): Promise<void>;
  /** Stops the timer and writes what is left. */
  close(): Promise<void>;
}

/**
 * The gateway's side of the cross-level audit, shaped like createDenialAudit: allowed
 * accesses counted in memory per (hour, subject, node, rule, method), resolved and
 * written once per `flushMs`, one write at a time. An aggregate whose resolution fails
 * (OpenFGA or the database unavailable) is counted again and retried at the next flush.
 */
export function createCrossLevelAudit(opts: CrossLevelAuditOptions): CrossLevelAudit {
  const flushMs = opts.flushMs ?? 1000;
  const maxKeys = opts.maxKeys ?? 10_000;
  const now = opts.now ?? Date.now;
  const onError = opts.onError ?? (() => undefined);
  type Pending = { access: AllowedAccess; hour: number; first: number; last: number; count: number };
  const batches = createCountedBatches<Pending>({
    flushMs,
    maxKeys,
    async write(batch, lost, requeue) {
      if (lost > 0) onError(new Error(`${lost} allowed accesses not audited for cross-level access: more than ${maxKeys} distinct keys between two writes`), lost);
      // A few resolutions at a time: the background must not flood OpenFGA.
      const entries = [...batch];
      for (let i = 0; i < entries.length; i += RESOLVE_CONCURRENCY) {
        await Promise.all(
          entries.slice(i, i + RESOLVE_CONCURRENCY).map(async ([key, p]) => {
            const a = p.access;
            try {
              const { source, path } = await opts.resolver.resolve(a);
              if (source === undefined) return;
              await upsertCrossLevel(opts.db, {
                hourMs: p.hour * HOUR_MS,
                subject: a.subject,
                node: `${a.scope.type}:${a.scope.id}`,
                source,
                path,
                rule: a.rule,
                permission: a.permission,
                method: a.method,
                route: a.route,
                firstMs: p.first,
                lastMs: p.last,
                count: p.count,
              });
            } catch (err) {
              // Retried once more at the next flush; on close, or when full, it is lost and said so.
              onError(err, requeue(key, p) ? 0 : p.count);
            }
          }),
        );
      }
    },
    merge(into, from) {
      into.count += from.count;
      into.first = Math.min(into.first, from.first);
    },
  });

  return {
    record(a) {
      const t = now();
      const hour = Math.floor(t / HOUR_MS);
      // Ids, rule ids, subjects and methods hold no NUL, so NUL separates unambiguously.
      const key = `${hour}\0${a.subject}\0${a.scope.type}\0${a.scope.id}\0${a.rule}\0${a.method}`;
      batches.count(
        key,
        (hit) => {
          hit.count++;
          hit.last = t;
        },
        () => ({ access: a, hour, first: t, last: t, count: 1 }),
      );
    },
    flush: batches.flush,
    close: batches.close,
  };
}

export interface CrossLevelFilter {
  /** Rows about this accessed node (`tenant:<id>`). */
  node?: string | undefined;
  /** Only break-glass rows. */
  breakGlass?: boolean | undefined;
  /** Rows under this node (its ancestor path contains it). */
  under?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  /** Rows strictly older than this id (the previous page's cursor). */
  before?: string | undefined;
  limit: number;
}

export interface CrossLevelRow {
  id: string;
  subject: string;
  node: string;
  roleNode: string;
  role: string;
  breakGlass: boolean;
  rule: string;
  permission: string;
  method: string;
  route: string;
  hour: string;
  firstSeen: string;
  lastSeen: string;
  count: number;
}

const iso = (v: Date | string) => (v instanceof Date ? v : new Date(v)).toISOString();

/** Newest row first (by when the row was started), `limit` per page; since/until select rows seen in that window. */
export async function queryCrossLevel(q: Queryable, f: CrossLevelFilter): Promise<{ items: CrossLevelRow[]; nextCursor: string | null }> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (clause: string, value: unknown) => {
    params.push(value);
    where.push(clause.replace('?', `$${params.length}`));
  };
  if (f.node) add('node = ?', f.node);
  if (f.breakGlass) where.push('break_glass');
  if (f.under) add('scope @> array[?]::text[]', f.under);
  if (f.since) add('last_seen >= ?::timestamptz', f.since);
  if (f.until) add('first_seen < ?::timestamptz', f.until);
  if (f.before) add('id < ?::bigint', f.before);
  params.push(f.limit + 1);
  const r = await q.query<{
    id: string | number;
    subject: string;
    node: string;
    role_node: string;
    role: string;
    break_glass: boolean;
    rule: string;
    permission: string;
    method: string;
    route: string;
    hour: Date | string;
    first_seen: Date | string;
    last_seen: Date | string;
    count: string | number;
  }>(
    `select id, subject, node, role_node, role, break_glass, rule, permission, method, route, hour, first_seen, last_seen, count
     from gateway_cross_level_access ${where.length ? `where ${where.join(' and ')}` : ''}
     order by id desc limit $${params.length}`,
    params,
  );
  const items = r.rows.slice(0, f.limit).map((row) => ({
    id: String(row.id),
    subject: row.subject,
    node: row.node,
    roleNode: row.role_node,
    role: row.role,
    breakGlass: row.break_glass,
    rule: row.rule,
    permission: row.permission,
    method: row.method,
    route: row.route,
    hour: iso(row.hour),
    firstSeen: iso(row.first_seen),
    lastSeen: iso(row.last_seen),
    count: Number(row.count),
  }));
  return { items, nextCursor: r.rows.length > f.limit && items.length > 0 ? items[items.length - 1]!.id : null };
}
