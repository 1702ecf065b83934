// Declarative apply: `npm run apply -- hierarchy.yaml [--dry-run] [--gateway URL]
// [--token T] [--org-token [orgId=]T]`. Reads organizations, divisions, tenants
// and role grants from YAML, compares them with what the admin API shows, and
// makes the difference through the same API (same rules, same audit trail).
// Additive: nothing absent from the file is deleted or revoked. A node's `settings`,
// when given, is its whole settings document (docs/settings.md): it replaces the
// node's document; a node without `settings` keeps its own. --dry-run also shows, for
// each node whose document would change, the effective values that would change at it
// and below (the admin API's dry run).
//
// Two identities, because the model keeps them apart: platform-level changes
// (creating an organization, platform admins) use --token (a platform admin);
// everything inside an organization uses that organization's --org-token (one of
// its admins), or --token when no org token is given.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SUBJECT_ID, type Config } from '../config.js';
import { devIssuerEnabled, loadOrCreateDevIssuerKeys, mintDevToken } from '../gateway/dev-issuer.js';
import { ID_PATTERN } from '../shared/resource-kinds.js';

// ---------------------------------------------------------------- the file

const Id = z.string().regex(ID_PATTERN, 'must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$');
const Name = z.string().trim().min(1).max(200);
const User = z
  .string()
  .transform((v) => (v.startsWith('user:') ? v.slice(5) : v))
  .pipe(z.string().regex(SUBJECT_ID, 'must be a user id (letters, digits, _@.|-)'));
const Users = z.array(User).optional();

/** A node's settings document: key → entry ({set}, {append, remove}, {reset: true}, {lock: true}). */
export type SettingsSpec = Record<string, Record<string, unknown>>;

export interface TenantSpec {
  id: string;
  name: string;
  admins?: string[];
  members?: string[];
  settings?: SettingsSpec;
}
export interface DivisionSpec {
  id: string;
  name: string;
  admins?: string[];
  divisions?: DivisionSpec[];
  tenants?: TenantSpec[];
  settings?: SettingsSpec;
}
export interface OrganizationSpec {
  id: string;
  name: string;
  admins: string[];
  divisions?: DivisionSpec[];
  settings?: SettingsSpec;
}
export interface HierarchySpec {
  platform?: { admins?: string[] };
  organizations?: OrganizationSpec[];
}

// Entries are checked by the admin API against its settings registry (422 names each bad one).
const Settings = z.record(z.string(), z.record(z.string(), z.unknown())).optional();
const TenantSchema = z.strictObject({ id: Id, name: Name, admins: Users, members: Users, settings: Settings });
const DivisionSchema: z.ZodType<DivisionSpec> = z.lazy(() =>
  z.strictObject({
    id: Id,
    name: Name,
    admins: Users,
    divisions: z.array(DivisionSchema).optional(),
    tenants: z.array(TenantSchema).optional(),
    settings: Settings,
  }),
);
const OrganizationSchema = z.strictObject({
  id: Id,
  name: Name,
  // Only organization admins can do anything inside it (the platform cannot): at least one.
  admins: z.array(User).min(1, 'an organization needs at least one admin'),
  divisions: z.array(DivisionSchema).optional(),
  settings: Settings,
});
export const HierarchySchema = z
  .strictObject({ platform: z.strictObject({ admins: Users }).optional(), organizations: z.array(OrganizationSchema).optional() })
  .superRefine((doc, ctx) => {
    // Ids are unique per kind across every organization.
    const seen = { division: new Set<string>(), tenant: new Set<string>(), organization: new Set<string>() };
    const once = (kind: keyof typeof seen, id: string) => {
      if (seen[kind].has(id)) ctx.addIssue({ code: 'custom', message: `${kind} id ${id} appears twice` });
      seen[kind].add(id);
    };
    const walk = (d: DivisionSpec) => {
      once('division', d.id);
      for (const t of d.tenants ?? []) once('tenant', t.id);
      for (const s of d.divisions ?? []) walk(s);
    };
    for (const o of doc.organizations ?? []) {
      once('organization', o.id);
      for (const d of o.divisions ?? []) walk(d);
    }
  });

export function parseHierarchy(text: string, source = 'hierarchy'): HierarchySpec {
  const parsed = HierarchySchema.safeParse(parseYaml(text));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(file)'}: ${i.message}`);
    throw new ApplyError(`${source} is not a valid hierarchy file:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

// ---------------------------------------------------------------- the plan

export class ApplyError extends Error {
  override name = 'ApplyError';
}

export interface PlannedChange {
  /** One line for humans: `+ create tenant acme-sales "Acme Sales" under division:emea`. */
  summary: string;
  method: 'POST' | 'PATCH' | 'PUT';
  path: string;
  body?: unknown;
  token: string;
  /** A settings document change of an existing node: its dry run, for --dry-run. */
  preview?: string;
}

export interface ApplyOptions {
  spec: HierarchySpec;
  /** Gateway base URL, e.g. http://127.0.0.1:8080 (the admin API is at /admin/v1). */
  gateway: string;
  /** Platform-level token (a platform admin's). */
  token: string;
  /** Per-organization tokens (an organization admin's); `*` applies to every organization. */
  orgTokens?: Record<string, string>;
  dryRun?: boolean;
  out?: (line: string) => void;
}

export interface ApplyResult {
  changes: PlannedChange[];
  applied: boolean;
}

interface NodeView {
  id: string;
  name: string;
  parent: string | null;
}

class AdminClient {
  constructor(private readonly base: string) {}

  async call(method: string, path: string, token: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new ApplyError(`cannot reach the admin API at ${this.base} (${(err as Error).message}); is the gateway running? (--gateway URL)`);
    }
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      if (text) json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new ApplyError(`${method} ${path} → ${res.status}: the answer is not JSON; is ${this.base} a tiergate gateway?`);
    }
    if (!res.ok) {
      const params = Array.isArray(json['invalid-params'])
        ? ` [${(json['invalid-params'] as { name: string; reason: string }[]).map((p) => `${p.name}: ${p.reason}`).join('; ')}]`
        : '';
      throw new ApplyError(`${method} ${path} → ${res.status} ${String(json.title ?? res.statusText)}${json.detail ? `: ${String(json.detail)}` : ''}${params}`);
    }
    return json;
  }

  /** Every item of a paged list endpoint. */
  async all<T>(path: string, token: string): Promise<T[]> {
    const out: T[] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const page = (await this.call('GET', `${path}${sep}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, token)) as {
        items: T[];
        nextCursor: string | null;
      };
      out.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    return out;
  }

  async holders(nodePath: string, role: string, token: string): Promise<Set<string>> {
    const grants = await this.all<{ role: string; user: string }>(`${nodePath}/roles`, token);
    return new Set(grants.filter((g) => g.role === role).map((g) => g.user.slice('user:'.length)));
  }
}

const PATHS = { organization: 'organizations', division: 'divisions', tenant: 'tenants' } as const;

/** An entry as the API stores it: `lock: false` is no lock. */
function normalEntry(e: Record<string, unknown>): Record<string, unknown> {
  const { lock, ...rest } = e;
  return lock === true ? { ...rest, lock: true } : rest;
}

/** JSON with object keys sorted: two documents compare equal whatever their key order. */
function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    typeof val === 'object' && val !== null && !Array.isArray(val)
      ? Object.fromEntries(Object.keys(val).sort().map((k) => [k, (val as Record<string, unknown>)[k]]))
      : val,
  );
}

async function settingsChange(
  api: AdminClient,
  kind: keyof typeof PATHS,
  id: string,
  wanted: SettingsSpec | undefined,
  token: string,
  exists: boolean,
): Promise<PlannedChange | undefined> {
  if (wanted === undefined) return undefined;
  const path = `/${PATHS[kind]}/${id}/settings/document`;
  const want = Object.fromEntries(Object.entries(wanted).map(([k, e]) => [k, normalEntry(e)]));
  const have: Record<string, unknown> = {};
  if (exists) {
    const doc = (await api.call('GET', path, token)) as { entries: Record<string, { entry: unknown }> };
    for (const [k, s] of Object.entries(doc.entries)) have[k] = s.entry;
  }
  const keys = [...new Set([...Object.keys(want), ...Object.keys(have)])].sort();
  const changed = keys.filter((k) => canonicalJson(want[k]) !== canonicalJson(have[k]));
  if (changed.length === 0) return undefined;
  const describe = changed.map((k) => (k in want ? (k in have ? `~${k}` : `+${k}`) : `-${k}`)).join(' ');
  return {
    summary: `${exists ? '~' : '+'} settings of ${kind}:${id}: ${describe}`,
    method: 'PUT',
    path,
    body: { settings: want },
    token,
    ...(exists ? { preview: `/${PATHS[kind]}/${id}/settings/dry-run` } : {}),
  };
}

export async function plan(opts: ApplyOptions): Promise<PlannedChange[]> {
  const api = new AdminClient(`${opts.gateway.replace(/\/+$/, '')}/admin/v1`);
  const changes: PlannedChange[] = [];
  const grantMissing = async (kind: keyof typeof PATHS | 'platform', id: string, role: string, wanted: string[] | undefined, token: string, exists: boolean) => {
    if (!wanted?.length) return;
    const nodePath = kind === 'platform' ? '/platform' : `/${PATHS[kind]}/${id}`;
    const have = exists ? await api.holders(nodePath, role, token) : new Set<string>();
    for (const user of [...new Set(wanted)]) {
      if (have.has(user)) continue;
      changes.push({ summary: `+ grant ${role} on ${kind}:${kind === 'platform' ? 'root' : id} to user:${user}`, method: 'PUT', path: `${nodePath}/roles/${role}/${user}`, token });
    }
  };

  await grantMissing('platform', 'root', 'admin', opts.spec.platform?.admins, opts.token, true);

  const visibleOrgs = new Map((await api.all<NodeView>('/me/organizations', opts.token)).map((n) => [n.id, n]));
  for (const org of opts.spec.organizations ?? []) {
    const orgToken = opts.orgTokens?.[org.id] ?? opts.orgTokens?.['*'] ?? opts.token;
    const current = visibleOrgs.get(org.id);
    if (!current) {
      changes.push({
        summary: `+ create organization ${org.id} "${org.name}" with admins ${org.admins.map((a) => `user:${a}`).join(', ')}`,
        method: 'POST',
        path: '/organizations',
        body: { id: org.id, name: org.name, admins: org.admins },
        token: opts.token,
      });
    } else {
      if (current.name !== org.name) changes.push(rename('organization', org.id, current.name, org.name, orgToken));
      await grantMissing('organization', org.id, 'admin', org.admins, orgToken, true);
    }
    // Inside a new organization nothing exists yet (and its admins cannot be asked before it does).
    const divisions = new Map<string, NodeView>();
    const tenants = new Map<string, NodeView>();
    if (current) {
      for (const n of await api.all<NodeView>('/me/divisions', orgToken)) divisions.set(n.id, n);
      for (const n of await api.all<NodeView>('/me/tenants', orgToken)) tenants.set(n.id, n);
    }

    const visitTenant = async (t: TenantSpec, parent: string) => {
      const now = tenants.get(t.id);
      if (!now) {
        changes.push({
          summary: `+ create tenant ${t.id} "${t.name}" under ${parent}`,
          method: 'POST',
          path: `/divisions/${parent.slice('division:'.length)}/tenants`,
          body: { id: t.id, name: t.name },
          token: orgToken,
        });
      } else {
        if (now.parent !== parent) changes.push(move('tenant', t.id, now.parent, parent, orgToken));
        if (now.name !== t.name) changes.push(rename('tenant', t.id, now.name, t.name, orgToken));
      }
      await grantMissing('tenant', t.id, 'admin', t.admins, orgToken, Boolean(now));
      await grantMissing('tenant', t.id, 'member', t.members, orgToken, Boolean(now));
      const st = await settingsChange(api, 'tenant', t.id, t.settings, orgToken, Boolean(now));
      if (st) changes.push(st);
    };
    const visitDivision = async (d: DivisionSpec, parent: string) => {
      const now = divisions.get(d.id);
      if (!now) {
        const [ptype, pid] = parent.split(':') as [string, string];
        changes.push({
          summary: `+ create division ${d.id} "${d.name}" under ${parent}`,
          method: 'POST',
          path: ptype === 'organization' ? `/organizations/${pid}/divisions` : `/divisions/${pid}/divisions`,
          body: { id: d.id, name: d.name },
          token: orgToken,
        });
      } else {
        if (now.parent !== parent) changes.push(move('division', d.id, now.parent, parent, orgToken));
        if (now.name !== d.name) changes.push(rename('division', d.id, now.name, d.name, orgToken));
      }
      await grantMissing('division', d.id, 'admin', d.admins, orgToken, Boolean(now));
      const st = await settingsChange(api, 'division', d.id, d.settings, orgToken, Boolean(now));
      if (st) changes.push(st);
      for (const s of d.divisions ?? []) await visitDivision(s, `division:${d.id}`);
      for (const t of d.tenants ?? []) await visitTenant(t, `division:${d.id}`);
    };
    // The organization's own settings first: its locks and allocations bound the ones below.
    const st = await settingsChange(api, 'organization', org.id, org.settings, orgToken, Boolean(current));
    if (st) changes.push(st);
    for (const d of org.divisions ?? []) await visitDivision(d, `organization:${org.id}`);
  }
  return changes;
}

function rename(kind: keyof typeof PATHS, id: string, from: string, to: string, token: string): PlannedChange {
  return { summary: `~ rename ${kind} ${id} "${from}" → "${to}"`, method: 'PATCH', path: `/${PATHS[kind]}/${id}`, body: { name: to }, token };
}

function move(kind: 'division' | 'tenant', id: string, from: string | null, to: string, token: string): PlannedChange {
  return { summary: `> move ${kind} ${id} from ${from ?? '(none)'} to ${to}`, method: 'POST', path: `/${PATHS[kind]}/${id}/move`, body: { parent: to }, token };
}

/** Plans, prints the diff, and (unless dry-run) makes the changes in order, stopping at the first refusal. */
export async function applyHierarchy(opts: ApplyOptions): Promise<ApplyResult> {
  const out = opts.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const changes = await plan(opts);
  if (changes.length === 0) {
    out('no changes: the admin API already matches the file');
    return { changes, applied: false };
  }
  const api = new AdminClient(`${opts.gateway.replace(/\/+$/, '')}/admin/v1`);
  for (const ch of changes) {
    out(ch.summary);
    if (opts.dryRun && ch.preview) for (const line of await previewLines(api, ch)) out(line);
  }
  if (opts.dryRun) {
    out(`dry run: ${changes.length} change(s) planned, nothing written`);
    return { changes, applied: false };
  }
  let done = 0;
  for (const ch of changes) {
    try {
      await api.call(ch.method, ch.path, ch.token, ch.body);
    } catch (err) {
      throw new ApplyError(`${(err as Error).message}\n(${done} of ${changes.length} change(s) applied before this one; re-run after fixing it)`);
    }
    done += 1;
  }
  out(`applied ${done} change(s)`);
  return { changes, applied: true };
}

interface DryRunAnswer {
  changes: Array<{ node: string; changes: Array<{ key: string; before: unknown; after: unknown; sourceAfter: string }> }>;
  overriddenByLock: Array<{ node: string; key: string; lockedBy: string }>;
}

/** The effective values a settings change would change, at the node and below (each alone, against today's documents). */
async function previewLines(api: AdminClient, ch: PlannedChange): Promise<string[]> {
  const r = (await api.call('POST', ch.preview!, ch.token, ch.body)) as DryRunAnswer;
  const lines = r.changes.flatMap((n) => n.changes.map((c) => `    = ${n.node} ${c.key}: ${JSON.stringify(c.before)} → ${JSON.stringify(c.after)} (from ${c.sourceAfter})`));
  for (const o of r.overriddenByLock) lines.push(`    ! ${o.node}'s own ${o.key} overridden by the lock of ${o.lockedBy}`);
  return lines.length > 0 ? lines : ['    = no effective value changes'];
}

// ---------------------------------------------------------------- the demo

export interface DemoOptions {
  gatewayUrl: string;
  file: string;
  /** The platform admin (bootstrapped via PLATFORM_ADMINS) that creates the organizations. */
  platformAdmin: string;
  config: Config;
  log: (line: string) => void;
}

/**
 * `npm start -- --demo`: applies the demo file through the running gateway, with
 * short-lived development-issuer tokens for the platform admin and, per
 * organization, its first listed admin. Idempotent like any apply.
 */
export async function applyDemo(o: DemoOptions): Promise<ApplyResult> {
  if (!devIssuerEnabled(o.config)) {
    throw new ApplyError('the demo signs its tokens with the development issuer: leave AUTH_ISSUERS empty and DEV_ISSUER=true (never in production)');
  }
  const keys = await loadOrCreateDevIssuerKeys(o.config.TIERGATE_DATA_DIR);
  const mint = (sub: string) => mintDevToken(keys, { sub: sub.replace(/^user:/, ''), audience: o.config.DEV_ISSUER_AUDIENCE, ttlS: 600 });
  const spec = parseHierarchy(readFileSync(o.file, 'utf8'), o.file);
  const orgTokens: Record<string, string> = {};
  for (const org of spec.organizations ?? []) orgTokens[org.id] = await mint(org.admins[0]!);
  return applyHierarchy({ spec, gateway: o.gatewayUrl, token: await mint(o.platformAdmin), orgTokens, out: o.log });
}

// ---------------------------------------------------------------- the command

const USAGE = 'usage: npm run apply -- <hierarchy.yaml> [--dry-run] [--gateway URL] [--token T] [--org-token [orgId=]T]…';

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'dry-run': { type: 'boolean', default: false },
        gateway: { type: 'string' },
        token: { type: 'string' },
        'org-token': { type: 'string', multiple: true },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const file = args.positionals[0];
  if (!file || args.positionals.length > 1) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const token = args.values.token ?? env.TIERGATE_TOKEN;
  if (!token) {
    process.stderr.write('no token: pass --token <JWT> (a platform admin\'s) or set TIERGATE_TOKEN; `npm run token` mints one in development\n');
    return 2;
  }
  const orgTokens: Record<string, string> = {};
  for (const t of [...(args.values['org-token'] ?? []), ...(env.TIERGATE_ORG_TOKEN ? [env.TIERGATE_ORG_TOKEN] : [])]) {
    // JWTs never contain '=', so `acme=<jwt>` is unambiguous.
    const eq = t.indexOf('=');
    if (eq > 0) orgTokens[t.slice(0, eq)] = t.slice(eq + 1);
    else orgTokens['*'] ??= t;
  }
  const gateway = args.values.gateway ?? env.TIERGATE_GATEWAY_URL ?? env.GATEWAY_PUBLIC_URL ?? `http://127.0.0.1:${env.GATEWAY_PORT ?? '8080'}`;
  try {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ApplyError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    await applyHierarchy({ spec: parseHierarchy(text, file), gateway, token, orgTokens, dryRun: args.values['dry-run'] });
    return 0;
  } catch (err) {
    if (err instanceof ApplyError) {
      process.stderr.write(`apply failed: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`apply failed unexpectedly: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
