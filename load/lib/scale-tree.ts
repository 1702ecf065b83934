// The scale benchmark's hierarchy, as pure data: one organization, 100 divisions nested
// up to 4 deep, tenants spread over them, members and admins at every level. Sizes grow
// by adding tenants (and their users) to the same divisions, so every step's store holds
// the previous one's.
//
//   dv-<i>               10 top divisions (depth 1)
//   dv-<i>-<j>           3 under each (depth 2)
//   dv-<i>-<j>-0         1 under each of those (depth 3)
//   dv-<i>-<j>-0-0       1 under each of those (depth 4)       = 100 divisions
//
// The moved division is dv-0-0 (under dv-0, moved to dv-1): its subtree (3 divisions)
// holds every 5th tenant, 20% of them (2,000 of 10,000). The warm readers are members of
// one tenant at depth 4 outside it, so the move must not touch their decisions.

export const ORG = 'scale';
export const MOVED = 'dv-0-0';
export const MOVED_FROM = 'dv-0';
export const MOVED_TO = 'dv-1';
/** The readers' tenant: at depth 4, outside the moved subtree. */
export const READER_TENANT = 'rt-deep';
export const READER_DIVISION = 'dv-5-1-0-0';

export interface DivisionNode {
  id: string;
  /** `organization:<id>` or `division:<id>`. */
  parent: string;
  depth: number;
}

export function divisions(): DivisionNode[] {
  const out: DivisionNode[] = [];
  for (let i = 0; i < 10; i++) {
    out.push({ id: `dv-${i}`, parent: `organization:${ORG}`, depth: 1 });
    for (let j = 0; j < 3; j++) {
      out.push({ id: `dv-${i}-${j}`, parent: `division:dv-${i}`, depth: 2 });
      out.push({ id: `dv-${i}-${j}-0`, parent: `division:dv-${i}-${j}`, depth: 3 });
      out.push({ id: `dv-${i}-${j}-0-0`, parent: `division:dv-${i}-${j}-0`, depth: 4 });
    }
  }
  return out;
}

/** The moved subtree's divisions. */
export const MOVED_SUBTREE = [MOVED, `${MOVED}-0`, `${MOVED}-0-0`];

export function tenantId(i: number): string {
  return `t-${String(i).padStart(5, '0')}`;
}

/** Tenant i's division: every 5th in the moved subtree, the rest over the other 97 divisions. */
export function tenantDivision(i: number, all: readonly DivisionNode[]): string {
  if (i % 5 === 0) return MOVED_SUBTREE[(i / 5) % MOVED_SUBTREE.length]!;
  const others = all.filter((d) => !MOVED_SUBTREE.includes(d.id));
  return others[(i - Math.floor(i / 5) - 1) % others.length]!.id;
}

export function memberId(tenant: number, k: number): string {
  return `m-${tenant}-${k}`;
}

/** Admins: 5 of the organization, 2 per division, and about 300 tenant admins (every tenant whose index is a multiple of `tenantAdminEvery`). */
export function orgAdmins(): string[] {
  return Array.from({ length: 5 }, (_, i) => `oa-${i}`);
}
export function divisionAdmins(division: string): string[] {
  return [`da-${division}-a`, `da-${division}-b`];
}
export function tenantAdmin(i: number): string {
  return `ta-${i}`;
}
