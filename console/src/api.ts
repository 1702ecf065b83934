// The admin API, called with the signed-in user's token (held in this module's memory
// only). Every refusal arrives as RFC 9457 problem+json and is thrown as ApiError.

export interface ProblemBody {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  requestId?: string;
  'invalid-params'?: { name: string; reason: string }[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: ProblemBody,
  ) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
  }
}

let token: string | undefined;
let onUnauthorized: (() => void) | undefined;

export function setToken(t: string | undefined): void {
  token = t;
}
export function hasToken(): boolean {
  return token !== undefined;
}
export function whenUnauthorized(f: () => void): void {
  onUnauthorized = f;
}

const BASE = '/admin/v1';

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json, application/problem+json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${BASE}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit' });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    if (res.status === 401) onUnauthorized?.();
    const problem = (parsed && typeof parsed === 'object' ? parsed : { title: res.statusText || `HTTP ${res.status}`, detail: text.slice(0, 300) }) as ProblemBody;
    throw new ApiError(res.status, problem);
  }
  return parsed as T;
}

export const q = (params: Record<string, string | undefined>): string => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') s.set(k, v);
  const text = s.toString();
  return text === '' ? '' : `?${text}`;
};

// ---- shapes of the admin API's answers (docs/admin-api.md)

export type NodeKind = 'organization' | 'division' | 'tenant';
export interface NodeView {
  type: NodeKind;
  id: string;
  name: string;
  organizationId: string;
  parent: string | null;
}
export interface NodeList {
  items: NodeView[];
  nextCursor: string | null;
}
export interface RoleGrant {
  object: string;
  role: string;
  user: string;
}
export interface Reason {
  role: string;
  on: string | null;
  via: string;
  path: string[];
}
export interface CheckResult {
  allowed: boolean;
  user: string;
  permission: string;
  object: string;
  reasons: Reason[];
  missing?: string;
  request?: { method: string; path: string; rule: string; permission: string; object: string };
}
export interface AuditEntry {
  seq: string;
  at: string;
  actor: string;
  action: string;
  target: string;
  outcome: 'success' | 'denied' | 'failed';
  requestId: string | null;
  before: unknown;
  after: unknown;
  detail: unknown;
  count: number;
}
export interface EffectiveSetting {
  key: string;
  value: unknown;
  source: string;
  locked: { by: string; above: boolean } | null;
}
export interface DryRun {
  node: string;
  changes: { node: string; changes: { key: string; before: unknown; after: unknown; sourceBefore: string; sourceAfter: string }[] }[];
  overriddenByLock: { node: string; key: string; lockedBy: string }[];
}

export const PLURAL: Record<NodeKind, string> = { organization: 'organizations', division: 'divisions', tenant: 'tenants' };
export const ref = (n: Pick<NodeView, 'type' | 'id'>): string => `${n.type}:${n.id}`;
export const nodePath = (r: string): string => {
  const [type, id] = r.split(':') as [NodeKind, string];
  return `/${PLURAL[type]}/${encodeURIComponent(id)}`;
};

/** Every node of a kind the caller may see (all pages). */
export async function visible(kind: NodeKind): Promise<NodeView[]> {
  const out: NodeView[] = [];
  let cursor: string | undefined;
  do {
    const page = await api<NodeList>('GET', `/me/${PLURAL[kind]}${q({ limit: '1000', cursor })}`);
    out.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return out;
}

/** The caller's own can_* permissions on a node, as the model answers them. */
export async function myPermissions(object: string): Promise<Record<string, boolean>> {
  return (await api<{ permissions: Record<string, boolean> }>('GET', `/me/permissions${q({ object })}`)).permissions;
}
