// The access matrix of the foundation issue, shared by the tests that drive it: the
// hierarchy and who holds what, every role, every route kind (from resource-kinds.ts)
// with the least access that allows it, and the status each role should get. Proxy
// mode runs it in tests/e2e/matrix.test.ts; forward-auth through nginx in
// tests/e2e/forward-auth-nginx.test.ts.
//
//   platform admin pat
//   organization:acme (admin olivia)
//     division:emea (admin dana)
//       tenant:emea-sales     (admin tom, member uma)
//       tenant:emea-support
//       division:emea-north (admin sam)            nested, level 1
//         tenant:north-sales
//         division:north-metro                     nested, level 2
//           tenant:metro-ops
//     division:apac
//       tenant:apac-sales
//   organization:globex (admin gina)
//     division:gx
//       tenant:gx-sales
//   ozzy: no role anywhere
import { RESOURCE_KINDS, type ResourceKind } from '../../src/shared/resource-kinds.js';

// ---------------------------------------------------------------- the hierarchy and who holds what

export const TENANTS = ['emea-sales', 'emea-support', 'north-sales', 'metro-ops', 'apac-sales', 'gx-sales'] as const;
export type TenantId = (typeof TENANTS)[number];
export const DIVISIONS = ['emea', 'emea-north', 'north-metro', 'apac', 'gx'] as const;
export const ORGANIZATIONS = ['acme', 'globex'] as const;

/** Where each tenant sits, for readable test names. */
export const WHERE: Record<TenantId, string> = {
  'emea-sales': 'acme/emea',
  'emea-support': 'acme/emea (sibling tenant of emea-sales)',
  'north-sales': 'acme/emea/emea-north',
  'metro-ops': 'acme/emea/emea-north/north-metro',
  'apac-sales': 'acme/apac (sibling division of emea)',
  'gx-sales': 'globex/gx (other organization)',
};

/** Tenants under each division and organization (what their reports aggregate). */
export const UNDER: Record<string, TenantId[]> = {
  emea: ['emea-sales', 'emea-support', 'metro-ops', 'north-sales'],
  'emea-north': ['metro-ops', 'north-sales'],
  'north-metro': ['metro-ops'],
  apac: ['apac-sales'],
  gx: ['gx-sales'],
  acme: ['apac-sales', 'emea-sales', 'emea-support', 'metro-ops', 'north-sales'],
  globex: ['gx-sales'],
};

export type Access = 'admin' | 'user' | 'none';

export interface Role {
  sub: string;
  role: string;
  /** What the matrix says this role is, per tenant. */
  tenants: Partial<Record<TenantId, Access>>;
  /** Divisions and organizations whose reports it may read. */
  reports: string[];
}

const ACME_TENANTS: TenantId[] = ['emea-sales', 'emea-support', 'north-sales', 'metro-ops', 'apac-sales'];
const all = (ids: readonly TenantId[], a: Access) => Object.fromEntries(ids.map((t) => [t, a])) as Partial<Record<TenantId, Access>>;

export const ROLES: Role[] = [
  { sub: 'pat', role: 'platform admin', tenants: {}, reports: [] },
  { sub: 'olivia', role: 'organization admin (acme)', tenants: all(ACME_TENANTS, 'admin'), reports: ['emea', 'emea-north', 'north-metro', 'apac', 'acme'] },
  {
    sub: 'dana',
    role: 'division admin (emea)',
    tenants: all(['emea-sales', 'emea-support', 'north-sales', 'metro-ops'], 'admin'),
    reports: ['emea', 'emea-north', 'north-metro'],
  },
  { sub: 'sam', role: 'nested division admin (emea-north)', tenants: all(['north-sales', 'metro-ops'], 'admin'), reports: ['emea-north', 'north-metro'] },
  { sub: 'tom', role: 'tenant admin (emea-sales)', tenants: { 'emea-sales': 'admin' }, reports: [] },
  { sub: 'uma', role: 'tenant user (emea-sales)', tenants: { 'emea-sales': 'user' }, reports: [] },
  { sub: 'ozzy', role: 'outsider', tenants: {}, reports: [] },
];

// ---------------------------------------------------------------- the routes, from resource-kinds.ts

/** A valid create body per writable kind; a kind added without one fails here, by name. */
export const CREATE_BODY: Record<string, (id: string) => Record<string, unknown>> = {
  agents: (id) => ({ agentNo: id, name: `Agent ${id}` }),
  queues: (id) => ({ queueNo: id, name: `Queue ${id}` }),
  extensions: (id) => ({ exten: id, name: `Extension ${id}` }),
  'tel-groups': (id) => ({ tgno: id, name: `Group ${id}` }),
  ivrs: (id) => ({ ivrId: id, name: `IVR ${id}` }),
  'phone-numbers': (id) => ({ numberId: id, number: '+14155550100' }),
  'routing-rules': (id) => ({ ruleId: id, name: `Rule ${id}`, target: { type: 'queue', id: 'q1' } }),
  configurations: (id) => ({ configKey: id, value: `value-${id}` }),
};
/** A valid PATCH body per writable kind. */
export const PATCH_BODY: Record<string, Record<string, unknown>> = {
  configurations: { value: 'patched' },
  'phone-numbers': { name: 'Patched' },
};

export function bodyFor(kind: ResourceKind, id: string): { create: Record<string, unknown>; replace: Record<string, unknown>; patch: Record<string, unknown> } {
  const make = CREATE_BODY[kind.segment];
  if (!make) throw new Error(`no sample body for resource kind ${kind.segment}: add one to CREATE_BODY`);
  const create = make(id);
  const { [kind.idParam]: _id, ...replace } = create;
  return { create, replace, patch: PATCH_BODY[kind.segment] ?? { name: 'Patched' } };
}

/** One request of the matrix and what it needs. */
export interface RouteCase {
  /** e.g. `agents.update` */
  name: string;
  method: string;
  path: (tenant: string, own: string) => string;
  body?: (own: string) => unknown;
  /** The least access that allows it, or 'nobody' for a method the route does not have (405). */
  needs: Access | 'nobody';
  /** Status when allowed (or 405). */
  okStatus: number;
  /** The permission the 403 names. */
  permission?: string;
}

/** The id every tenant has for every kind, created before the matrix runs (reads target it). */
export const SEED = 'seed1';

/** Per kind, the requests in the order they run: list, create own, read seed, update/patch/delete own. */
export function kindChain(kind: ResourceKind): RouteCase[] {
  const base = (t: string) => `/api/v1/tenants/${t}/${kind.segment}`;
  const operational: Access = kind.adminOnly ? 'admin' : 'user';
  const cases: RouteCase[] = [
    {
      name: `${kind.segment}.list`,
      method: 'GET',
      path: (t) => base(t),
      needs: operational,
      okStatus: 200,
      permission: kind.adminOnly ? 'can_read_configuration' : 'can_read_operational',
    },
  ];
  if (kind.readOnly) {
    // No write permission exists: every write method is 405 for everyone, even with a valid token.
    cases.push(
      { name: `${kind.segment}.create`, method: 'POST', path: (t) => base(t), needs: 'nobody', okStatus: 405 },
      { name: `${kind.segment}.read`, method: 'GET', path: (t) => `${base(t)}/${SEED}`, needs: operational, okStatus: 200, permission: 'can_read' },
      ...(['PUT', 'PATCH', 'DELETE'] as const).map((m) => ({
        name: `${kind.segment}.${m.toLowerCase()}`,
        method: m,
        path: (t: string) => `${base(t)}/${SEED}`,
        needs: 'nobody' as const,
        okStatus: 405,
      })),
    );
    return cases;
  }
  const body = (own: string) => bodyFor(kind, own);
  cases.push(
      {
        name: `${kind.segment}.create`,
        method: 'POST',
        path: (t) => base(t),
        body: (own) => body(own).create,
        needs: 'admin',
        okStatus: 201,
        permission: kind.adminOnly ? 'can_write_configuration' : 'can_manage_resources',
      },
      { name: `${kind.segment}.read`, method: 'GET', path: (t) => `${base(t)}/${SEED}`, needs: operational, okStatus: 200, permission: 'can_read' },
      { name: `${kind.segment}.update`, method: 'PUT', path: (t, own) => `${base(t)}/${own}`, body: (own) => body(own).replace, needs: 'admin', okStatus: 200, permission: 'can_write' },
      { name: `${kind.segment}.patch`, method: 'PATCH', path: (t, own) => `${base(t)}/${own}`, body: (own) => body(own).patch, needs: 'admin', okStatus: 200, permission: 'can_write' },
      { name: `${kind.segment}.delete`, method: 'DELETE', path: (t, own) => `${base(t)}/${own}`, needs: 'admin', okStatus: 204, permission: 'can_write' },
  );
  return cases;
}

/** Every chain run for one role on one tenant: one per kind, plus agent status and the tenant report. */
export const CHAINS: RouteCase[][] = [
  ...RESOURCE_KINDS.map(kindChain),
  [
    {
      name: 'agents.status',
      method: 'PUT',
      path: (t) => `/api/v1/tenants/${t}/agents/${SEED}/status`,
      body: () => ({ status: 'busy' }),
      needs: 'user',
      okStatus: 200,
      permission: 'can_change_status',
    },
  ],
  [{ name: 'reports.tenant', method: 'GET', path: (t) => `/api/v1/tenants/${t}/reports/summary`, needs: 'admin', okStatus: 200, permission: 'can_read' }],
];

export function allowed(access: Access, needs: RouteCase['needs']): boolean {
  if (needs === 'nobody') return false;
  if (needs === 'user') return access === 'user' || access === 'admin';
  return access === 'admin';
}

export function expectedStatus(access: Access, rc: RouteCase): number {
  if (rc.needs === 'nobody') return rc.okStatus;
  return allowed(access, rc.needs) ? rc.okStatus : 403;
}

/** An admin-API call as `sub` that must answer `status` (default 201). */
export type AdminCall = (sub: string, method: string, path: string, body?: unknown, status?: number) => Promise<void>;

/** Builds the hierarchy above through the admin API (the platform admin must be `pat`). */
export async function buildMatrixHierarchy(admin: AdminCall): Promise<void> {
  await admin('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await admin('pat', 'POST', '/organizations', { id: 'globex', name: 'Globex', admins: ['gina'] });
  await admin('olivia', 'POST', '/organizations/acme/divisions', { id: 'emea', name: 'EMEA' });
  await admin('olivia', 'POST', '/organizations/acme/divisions', { id: 'apac', name: 'APAC' });
  await admin('olivia', 'POST', '/divisions/emea/divisions', { id: 'emea-north', name: 'EMEA North' });
  await admin('olivia', 'POST', '/divisions/emea-north/divisions', { id: 'north-metro', name: 'North Metro' });
  await admin('olivia', 'POST', '/divisions/emea/tenants', { id: 'emea-sales', name: 'EMEA Sales' });
  await admin('olivia', 'POST', '/divisions/emea/tenants', { id: 'emea-support', name: 'EMEA Support' });
  await admin('olivia', 'POST', '/divisions/emea-north/tenants', { id: 'north-sales', name: 'North Sales' });
  await admin('olivia', 'POST', '/divisions/north-metro/tenants', { id: 'metro-ops', name: 'Metro Ops' });
  await admin('olivia', 'POST', '/divisions/apac/tenants', { id: 'apac-sales', name: 'APAC Sales' });
  await admin('gina', 'POST', '/organizations/globex/divisions', { id: 'gx', name: 'Globex Ops' });
  await admin('gina', 'POST', '/divisions/gx/tenants', { id: 'gx-sales', name: 'Globex Sales' });
  await admin('olivia', 'PUT', '/divisions/emea/roles/admin/dana', undefined, 200);
  await admin('olivia', 'PUT', '/divisions/emea-north/roles/admin/sam', undefined, 200);
  await admin('olivia', 'PUT', '/tenants/emea-sales/roles/admin/tom', undefined, 200);
  await admin('olivia', 'PUT', '/tenants/emea-sales/roles/member/uma', undefined, 200);
}
