// Stage 3: the route policy. policy/routes.yaml maps method + path template to
// one permission on one object (plus contextual tuples, a hierarchy scope and an
// optional consistency), and is checked against model.fga when it is loaded:
// a bad file stops the start with `file:line:col: what is wrong`.
//
// Matching is exact and case-sensitive on the canonical path, over a segment trie
// built once at load. Rules that could match the same method + path are refused
// at load, so at most one rule matches a request; a path no rule matches is 404,
// a known path with an unlisted method is 405 with `Allow`. Path parameter values
// must be ids (ID_PATTERN), else 400: this is where ids are checked, because only
// the policy knows which segments are ids.
//
// The file also names the upstream services (`upstreams`): each rule is forwarded to
// `defaultUpstream` (the built-in `tenant-service` when unset) or to its own `upstream`.
// An unknown upstream, a bad URL or a `stripPrefix` a rule's path does not start with
// stops the start like any other error; so does a declared upstream no rule uses.
// An upstream may declare `regions` (region → url) instead of one `url`: a request is
// then served only by the target of its scope node's data.residency_region
// (./residency.ts), never by another region's. An upstream may declare `settings` (the
// setting keys its assertions carry, each a key of the settings registry): the claim is
// cut to what the upstream reads, so no upstream is handed settings it has no use for.
import { readFileSync } from 'node:fs';
import type { MiddlewareHandler } from 'hono';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { loadModel, type LoadedModel } from '../fga/model.js';
import { ID_PATTERN } from '../shared/resource-kinds.js';
import { Problem } from '../shared/problem.js';
import { REGION_NAME, REGION_NAME_RULE, TENANT_SERVICE_UPSTREAM, UPSTREAM_NAME, UPSTREAM_NAME_RULE, upstreamUrlProblem } from '../shared/upstream-url.js';
import { KEY_PATTERN } from '../settings/registry.js';
import { excerpt } from './excerpt.js';
import type { Scope, TupleKey } from '../authz/types.js';
import type { GatewayEnv, PolicyDecisionRequest } from './types.js';

// ---------------------------------------------------------------- file schema

export const POLICY_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const name = z.string().regex(/^[a-z_][a-z0-9_]*$/, 'must be an OpenFGA relation name (lower_snake_case)');
const tupleSchema = z.strictObject({ user: z.string().min(1), relation: name, object: z.string().min(1) });
const ruleSchema = z.strictObject({
  id: z.string().regex(/^[a-z][a-z0-9._-]{0,63}$/, 'must be lower-case letters, digits, ".", "_" or "-"'),
  description: z.string().optional(),
  methods: z
    .array(z.enum(POLICY_METHODS))
    .min(1)
    .refine((m) => new Set(m).size === m.length, 'lists a method twice'),
  path: z.string().min(1),
  permission: name,
  object: z.string().min(1),
  contextualTuples: z.array(tupleSchema).optional(),
  scope: z.string().min(1),
  consistency: z.enum(['cached', 'strong']).optional(),
  upstream: z.string().optional(),
});
const upstreamSchema = z.strictObject({
  url: z.string().optional(),
  timeoutMs: z.number().int().positive().max(600_000).optional(),
  stripPrefix: z.string().optional(),
  healthPath: z.string().optional(),
  regions: z.record(z.string(), z.strictObject({ url: z.string() })).optional(),
  settings: z.array(z.string()).optional(),
});
const policySchema = z.strictObject({
  version: z.literal(1),
  upstreams: z.record(z.string(), upstreamSchema).optional(),
  defaultUpstream: z.string().optional(),
  rules: z.array(ruleSchema).min(1),
});
type RuleInput = z.infer<typeof ruleSchema>;
type UpstreamInput = z.infer<typeof upstreamSchema>;

// ---------------------------------------------------------------- errors with lines

export interface PolicyIssue {
  line: number;
  col: number;
  /** e.g. `rules[3].permission` */
  at: string;
  message: string;
}

export class PolicyError extends Error {
  constructor(
    readonly source: string,
    readonly issues: PolicyIssue[],
  ) {
    issues.sort((a, b) => a.line - b.line || a.col - b.col);
    super(`invalid route policy ${source}:\n${issues.map((i) => `  ${source}:${i.line}:${i.col}: ${i.at ? `${i.at}: ` : ''}${i.message}`).join('\n')}`);
    this.name = 'PolicyError';
  }
}

type Path = ReadonlyArray<string | number>;

/** The YAML node at `path` (as deep as it exists); with `key`, the node of that key in the map at `path`. */
function nodeAt(doc: Document, path: Path, key?: string): YamlNode | undefined {
  let node = doc.contents as YamlNode | null;
  const steps = key === undefined ? path : [...path, key];
  for (let i = 0; i < steps.length && node; i++) {
    if (isAlias(node)) node = node.resolve(doc) ?? null;
    const step = steps[i]!;
    let next: YamlNode | null | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && p.key.value === step);
      next = pair === undefined ? undefined : key !== undefined && i === steps.length - 1 ? (pair.key as YamlNode) : ((pair.value as YamlNode | null) ?? (pair.key as YamlNode));
    } else if (isSeq(node) && typeof step === 'number') {
      next = node.items[step] as YamlNode | undefined;
    }
    if (!next) break;
    node = next;
  }
  return node ?? undefined;
}

function pathText(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

// ---------------------------------------------------------------- model index

/** type → relation → the user types directly assignable (`tenant`, `user:*`, `group#member`). */
type ModelIndex = Map<string, Map<string, string[]>>;

function indexModel(model: LoadedModel): ModelIndex {
  const index: ModelIndex = new Map();
  for (const t of model.request.type_definitions) {
    const relations = new Map<string, string[]>();
    for (const r of Object.keys(t.relations ?? {})) {
      const direct = t.metadata?.relations?.[r]?.directly_related_user_types ?? [];
      relations.set(
        r,
        direct.map((d) => (d.wildcard ? `${d.type}:*` : d.relation ? `${d.type}#${d.relation}` : d.type)),
      );
    }
    index.set(t.type, relations);
  }
  return index;
}

// ---------------------------------------------------------------- templates

/** Literal text and parameter references, e.g. `agent:` {tenantId} `/` {agentNo}. */
type Template = ReadonlyArray<string | { param: string }>;

function render(template: Template, params: Record<string, string>): string {
  let out = '';
  for (const part of template) out += typeof part === 'string' ? part : params[part.param]!;
  return out;
}

const PARAM_NAME = /^[A-Za-z][A-Za-z0-9]*$/;
const LITERAL_SEGMENT = /^[A-Za-z0-9._~-]+$/;
const ID_LITERAL = /^[A-Za-z0-9_./-]*$/;

export interface CompiledRule {
  id: string;
  methods: readonly string[];
  /** The path template as written. */
  route: string;
  /** Per segment: the literal, or null for a parameter. */
  segments: ReadonlyArray<string | null>;
  /** Parameter name → segment index. */
  params: ReadonlyArray<readonly [string, number]>;
  permission: string;
  object: Template;
  tuples: ReadonlyArray<{ user: Template; relation: string; object: Template }>;
  scope: { type: Scope['type']; param: string };
  consistency: 'cached' | 'strong';
  /** The name of the upstream the request is forwarded to. */
  upstream: string;
  /** The regions that upstream serves, when it declares regions (the request goes to its scope's region only). */
  regions: readonly string[] | undefined;
  /** The setting keys the assertion's `settings` claim carries (that upstream's `settings`); undefined: every key. */
  assertionSettings: readonly string[] | undefined;
  line: number;
}

/** An upstream service as the file declares it (its URL may be overridden at deploy time). */
export interface CompiledUpstream {
  name: string;
  /** The default URL; undefined for the built-in tenant-service (TENANT_SERVICE_URL or `npm start`'s own). */
  url: string | undefined;
  /** Undefined: UPSTREAM_TIMEOUT_MS. */
  timeoutMs: number | undefined;
  /** Removed from the front of the canonical path before it is forwarded (and signed). */
  stripPrefix: string | undefined;
  /** Probed by /readyz (GET, expects 2xx). */
  healthPath: string;
  /**
   * Region → default URL, when the upstream declares regions (then `url` is undefined):
   * each region is a target of its own (`<name>@<region>`), and a request is sent only to
   * the one of its scope node's data.residency_region.
   */
  regions: ReadonlyMap<string, string> | undefined;
  /**
   * The setting keys its assertions' `settings` claim carries, values and sources of those
   * only; `[]`: no claim; undefined: every key. Shared by its regional targets.
   */
  settings: readonly string[] | undefined;
  /** Where it is declared (0 for the built-in tenant-service when the file does not declare it). */
  line: number;
}

export const DEFAULT_HEALTH_PATH = '/healthz';
const PREFIX = /^(\/[A-Za-z0-9._~-]+)+$/;
const HEALTH_PATH = /^\/[A-Za-z0-9._~/-]*$/;

// ---------------------------------------------------------------- compile

class Checker {
  readonly issues: PolicyIssue[] = [];
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  add(path: Path, message: string, key?: string): void {
    const node = nodeAt(this.doc, path, key);
    const pos = this.lines.linePos(node?.range?.[0] ?? 0);
    this.issues.push({ line: pos.line, col: pos.col, at: pathText(key === undefined ? path : [...path, key]), message });
  }

  /** The line of the node at `path`; with `key`, of that key in the map at `path`. */
  lineOf(path: Path, key?: string): number {
    return this.lines.linePos(nodeAt(this.doc, path, key)?.range?.[0] ?? 0).line;
  }
}

function parsePathTemplate(rule: RuleInput, at: Path, check: Checker): Pick<CompiledRule, 'segments' | 'params'> | undefined {
  if (!rule.path.startsWith('/') || rule.path === '/') {
    check.add([...at, 'path'], 'must start with "/" and name at least one segment');
    return undefined;
  }
  const segments: Array<string | null> = [];
  const params: Array<readonly [string, number]> = [];
  const raw = rule.path.slice(1).split('/');
  for (let i = 0; i < raw.length; i++) {
    const seg = raw[i]!;
    const param = /^\{(.*)\}$/.exec(seg);
    if (param) {
      const p = param[1]!;
      if (!PARAM_NAME.test(p)) return void check.add([...at, 'path'], `parameter "{${p}}" must be a name of letters and digits`);
      if (params.some(([n]) => n === p)) return void check.add([...at, 'path'], `parameter {${p}} appears twice`);
      params.push([p, i]);
      segments.push(null);
    } else if (!LITERAL_SEGMENT.test(seg) || seg === '.' || seg === '..') {
      return void check.add([...at, 'path'], `segment ${i + 1} ("${seg}") must be a literal of [A-Za-z0-9._~-] or a whole "{param}"`);
    } else {
      segments.push(seg);
    }
  }
  return { segments, params };
}

/** `type:id-template` (and for users, optionally `#relation`), with every {param} a path parameter. */
function parseObjectRef(
  text: string,
  at: Path,
  paramNames: ReadonlySet<string>,
  model: ModelIndex,
  check: Checker,
  allowUserset = false,
): { type: string; id: Template; userset?: string } | undefined {
  const m = /^([a-z_][a-z0-9_]*):([^#]+)(?:#([a-z_][a-z0-9_]*))?$/.exec(text);
  if (m === null || (m[3] !== undefined && !allowUserset)) {
    return void check.add(at, `"${text}" must be "<type>:<id template>"${allowUserset ? ' or "<type>:<id template>#<relation>"' : ''}`);
  }
  const [, type, idText, userset] = m as unknown as [string, string, string, string | undefined];
  const relations = model.get(type);
  if (relations === undefined) return void check.add(at, `type "${type}" is not defined in model.fga`);
  if (userset !== undefined && !relations.has(userset)) return void check.add(at, `"${userset}" is not a relation of type "${type}" in model.fga`);
  const id: Array<string | { param: string }> = [];
  let last = 0;
  for (const ref of idText.matchAll(/\{([^{}]*)\}/g)) {
    id.push(idText.slice(last, ref.index));
    const p = ref[1]!;
    if (!paramNames.has(p)) return void check.add(at, `{${p}} is not a parameter of the path (known: ${[...paramNames].map((n) => `{${n}}`).join(', ') || 'none'})`);
    id.push({ param: p });
    last = ref.index + ref[0].length;
  }
  id.push(idText.slice(last));
  const literals = id.filter((p): p is string => typeof p === 'string');
  if (!literals.every((l) => ID_LITERAL.test(l))) return void check.add(at, `"${idText}" may hold only [A-Za-z0-9_./-] and whole {param} references`);
  const compact = id.filter((p) => p !== '');
  return userset === undefined ? { type, id: compact } : { type, id: compact, userset };
}

function compileRule(rule: RuleInput, index: number, model: ModelIndex, upstream: CompiledUpstream | undefined, upstreamName: string, check: Checker): CompiledRule | undefined {
  const at: Path = ['rules', index];
  const before = check.issues.length;
  const shape = parsePathTemplate(rule, at, check);
  if (!shape) return undefined;
  const names = new Set(shape.params.map(([n]) => n));

  const object = parseObjectRef(rule.object, [...at, 'object'], names, model, check);
  if (object && !model.get(object.type)!.has(rule.permission)) {
    const known = [...model.get(object.type)!.keys()].filter((r) => r.startsWith('can_'));
    check.add([...at, 'permission'], `"${rule.permission}" is not a relation of type "${object.type}" in model.fga (it has: ${known.join(', ')})`);
  }

  const tuples: Array<CompiledRule['tuples'][number]> = [];
  (rule.contextualTuples ?? []).forEach((t, i) => {
    const tAt: Path = [...at, 'contextualTuples', i];
    const tObject = parseObjectRef(t.object, [...tAt, 'object'], names, model, check);
    const tUser = parseObjectRef(t.user, [...tAt, 'user'], names, model, check, true);
    if (!tObject || !tUser) return;
    const direct = model.get(tObject.type)!.get(t.relation);
    if (direct === undefined) return void check.add([...tAt, 'relation'], `"${t.relation}" is not a relation of type "${tObject.type}" in model.fga`);
    const userType = tUser.userset === undefined ? tUser.type : `${tUser.type}#${tUser.userset}`;
    if (!direct.includes(userType)) {
      return void check.add([...tAt, 'user'], `${tObject.type}#${t.relation} cannot hold a ${userType} directly (model.fga allows: ${direct.join(', ') || 'nothing'})`);
    }
    const user: Template = tUser.userset === undefined ? [`${tUser.type}:`, ...tUser.id] : [`${tUser.type}:`, ...tUser.id, `#${tUser.userset}`];
    tuples.push({ user, relation: t.relation, object: [`${tObject.type}:`, ...tObject.id] });
  });

  const scope = /^(tenant|division|organization):\{([A-Za-z][A-Za-z0-9]*)\}$/.exec(rule.scope);
  if (scope === null) check.add([...at, 'scope'], 'must be "tenant:{param}", "division:{param}" or "organization:{param}"');
  else if (!names.has(scope[2]!)) check.add([...at, 'scope'], `{${scope[2]}} is not a parameter of the path`);

  if (check.issues.length > before || !object || !scope) return undefined;
  return {
    id: rule.id,
    methods: rule.methods,
    route: rule.path,
    segments: shape.segments,
    params: shape.params,
    permission: rule.permission,
    object: [`${object.type}:`, ...object.id],
    tuples,
    scope: { type: scope[1] as Scope['type'], param: scope[2]! },
    consistency: rule.consistency ?? 'cached',
    upstream: upstreamName,
    regions: upstream?.regions === undefined ? undefined : [...upstream.regions.keys()],
    // The upstream's own array: one identity per upstream, which the filtered claims are cached by.
    assertionSettings: upstream?.settings,
    line: check.lineOf(at),
  };
}

/** The declared upstreams (plus the built-in tenant-service unless declared), checked; undefined names an invalid one. */
function compileUpstreams(
  declared: Record<string, UpstreamInput>,
  knownRegions: readonly string[] | undefined,
  knownSettings: ReadonlySet<string> | undefined,
  check: Checker,
): Map<string, CompiledUpstream | undefined> {
  const out = new Map<string, CompiledUpstream | undefined>();
  for (const [name, u] of Object.entries(declared)) {
    const at: Path = ['upstreams', name];
    const before = check.issues.length;
    if (!UPSTREAM_NAME.test(name)) check.add(['upstreams'], `upstream name "${name}" ${UPSTREAM_NAME_RULE}`, name);
    const regions = u.regions === undefined ? undefined : compileRegions(u.regions, [...at, 'regions'], knownRegions, check);
    if (name === TENANT_SERVICE_UPSTREAM) {
      if (u.url !== undefined) check.add([...at, 'url'], `the built-in ${TENANT_SERVICE_UPSTREAM} upstream takes its URL from TENANT_SERVICE_URL (or is the service npm start runs): remove url`);
      if (u.regions !== undefined) check.add([...at, 'regions'], `the built-in ${TENANT_SERVICE_UPSTREAM} upstream cannot declare regions: declare a named upstream with regions and send the rules there`);
    } else if (u.regions !== undefined) {
      if (u.url !== undefined) {
        check.add([...at, 'url'], 'an upstream with regions has no url of its own: a request is sent only to the target of its region, never to another (remove url)');
      }
    } else if (u.url === undefined) {
      check.add(at, 'needs a url (the default; UPSTREAM_URLS can override it at deploy time)');
    } else {
      const problem = upstreamUrlProblem(u.url);
      if (problem !== undefined) check.add([...at, 'url'], `"${u.url}" ${problem}`);
    }
    if (u.stripPrefix !== undefined && (!PREFIX.test(u.stripPrefix) || u.stripPrefix.split('/').some((seg) => seg === '.' || seg === '..'))) {
      check.add([...at, 'stripPrefix'], `"${u.stripPrefix}" must be whole path segments of [A-Za-z0-9._~-], starting with "/" and not ending with one, e.g. /api/v1`);
    }
    if (u.healthPath !== undefined && !HEALTH_PATH.test(u.healthPath)) check.add([...at, 'healthPath'], `"${u.healthPath}" must be a path of [A-Za-z0-9._~/-] starting with "/"`);
    if (u.settings !== undefined) checkSettingKeys(u.settings, [...at, 'settings'], knownSettings, check);
    out.set(
      name,
      check.issues.length > before
        ? undefined
        : {
            name,
            url: u.url,
            timeoutMs: u.timeoutMs,
            stripPrefix: u.stripPrefix,
            healthPath: u.healthPath ?? DEFAULT_HEALTH_PATH,
            regions,
            settings: u.settings,
            line: check.lineOf(['upstreams'], name),
          },
    );
  }
  if (!out.has(TENANT_SERVICE_UPSTREAM)) {
    out.set(TENANT_SERVICE_UPSTREAM, {
      name: TENANT_SERVICE_UPSTREAM,
      url: undefined,
      timeoutMs: undefined,
      stripPrefix: undefined,
      healthPath: DEFAULT_HEALTH_PATH,
      regions: undefined,
      settings: undefined,
      line: 0,
    });
  }
  return out;
}

/** An upstream's `regions`: region → an http(s) origin, each region a known one (a value of data.residency_region). */
function compileRegions(regions: Record<string, { url: string }>, at: Path, knownRegions: readonly string[] | undefined, check: Checker): Map<string, string> {
  const out = new Map<string, string>();
  const entries = Object.entries(regions);
  if (entries.length === 0) check.add(at, 'declares no region: list at least one (region: { url }), or use url instead');
  for (const [region, { url }] of entries) {
    if (!REGION_NAME.test(region)) {
      check.add(at, `region "${region}" ${REGION_NAME_RULE}`, region);
    } else if (knownRegions !== undefined && !knownRegions.includes(region)) {
      check.add(at, `region "${region}" is not a value of data.residency_region (${knownRegions.join(', ')})`, region);
    }
    const problem = upstreamUrlProblem(url);
    if (problem !== undefined) check.add([...at, region, 'url'], `"${url}" ${problem}`);
    out.set(region, url);
  }
  return out;
}

/** An upstream's `settings`: each a key of the settings registry (when known), listed once. */
function checkSettingKeys(keys: readonly string[], at: Path, known: ReadonlySet<string> | undefined, check: Checker): void {
  keys.forEach((key, i) => {
    if (!KEY_PATTERN.test(key)) check.add([...at, i], `"${key}" is not a setting key (dotted lower_snake_case, e.g. quota.agents)`);
    else if (known !== undefined && !known.has(key)) check.add([...at, i], `"${key}" is not a setting of the settings registry (${[...known].join(', ')})`);
    else if (keys.indexOf(key) !== i) check.add([...at, i], `"${key}" is listed twice`);
  });
}

/** The forwarded path: `path` without the upstream's stripPrefix (`/` when nothing is left). */
export function forwardedPath(path: string, stripPrefix: string | undefined): string {
  if (stripPrefix === undefined) return path;
  return path.length === stripPrefix.length ? '/' : path.slice(stripPrefix.length);
}

/** Two rules overlap when some method + concrete path matches both: a parameter matches any segment. */
function overlap(a: CompiledRule, b: CompiledRule): string | undefined {
  if (a.segments.length !== b.segments.length) return undefined;
  const method = a.methods.find((m) => b.methods.includes(m));
  if (method === undefined) return undefined;
  const template = a.route.slice(1).split('/');
  const example: string[] = [];
  for (let i = 0; i < a.segments.length; i++) {
    const x = a.segments[i];
    const y = b.segments[i];
    if (x != null && y != null && x !== y) return undefined;
    example.push(x ?? y ?? template[i]!);
  }
  return `${method} /${example.join('/')}`;
}

// ---------------------------------------------------------------- matcher

interface TrieNode {
  literal: Map<string, TrieNode>;
  param?: TrieNode;
  /** Rules ending here, by method; `allow` is their methods for 405. */
  rules?: Map<string, CompiledRule>;
  allow?: string[];
}

export type MatchResult =
  | { kind: 'matched'; rule: CompiledRule; params: Record<string, string> }
  | { kind: 'no-route' }
  | { kind: 'method-not-allowed'; allow: string }
  | { kind: 'invalid-param'; rule: CompiledRule; param: string }
  | { kind: 'ambiguous'; rules: string[] };

export interface CompiledPolicy {
  source: string;
  rules: readonly CompiledRule[];
  /** The upstreams some rule is forwarded to, by name. */
  upstreams: ReadonlyMap<string, CompiledUpstream>;
  match(method: string, segments: readonly string[]): MatchResult;
}

function buildMatcher(rules: readonly CompiledRule[]): CompiledPolicy['match'] {
  const root: TrieNode = { literal: new Map() };
  for (const rule of rules) {
    let node = root;
    for (const seg of rule.segments) {
      if (seg === null) node = node.param ??= { literal: new Map() };
      else {
        let next = node.literal.get(seg);
        if (next === undefined) node.literal.set(seg, (next = { literal: new Map() }));
        node = next;
      }
    }
    node.rules ??= new Map();
    node.allow ??= [];
    for (const m of rule.methods) {
      node.rules.set(m, rule);
      node.allow.push(m);
    }
  }
  const order = (m: string) => POLICY_METHODS.indexOf(m as (typeof POLICY_METHODS)[number]);
  const sortAllow = (n: TrieNode): void => {
    n.allow?.sort((a, b) => order(a) - order(b));
    for (const child of n.literal.values()) sortAllow(child);
    if (n.param) sortAllow(n.param);
  };
  sortAllow(root);

  // Every node reachable by the segments: a literal child and the parameter child may both match.
  const collect = (node: TrieNode, segments: readonly string[], depth: number, out: TrieNode[]): void => {
    if (depth === segments.length) {
      if (node.rules) out.push(node);
      return;
    }
    const lit = node.literal.get(segments[depth]!);
    if (lit) collect(lit, segments, depth + 1, out);
    if (node.param) collect(node.param, segments, depth + 1, out);
  };

  return (method, segments) => {
    const ends: TrieNode[] = [];
    collect(root, segments, 0, ends);
    if (ends.length === 0) return { kind: 'no-route' };
    let rule: CompiledRule | undefined;
    for (const end of ends) {
      const r = end.rules!.get(method);
      if (r === undefined) continue;
      // Refused at load; kept so a match is never a guess.
      if (rule !== undefined) return { kind: 'ambiguous', rules: [rule.id, r.id] };
      rule = r;
    }
    if (rule === undefined) {
      const allow = ends.length === 1 ? ends[0]!.allow! : [...new Set(ends.flatMap((e) => e.allow!))].sort((a, b) => order(a) - order(b));
      return { kind: 'method-not-allowed', allow: allow.join(', ') };
    }
    const params: Record<string, string> = {};
    for (const [p, i] of rule.params) {
      const value = segments[i]!;
      if (!ID_PATTERN.test(value)) return { kind: 'invalid-param', rule, param: p };
      params[p] = value;
    }
    return { kind: 'matched', rule, params };
  };
}

// ---------------------------------------------------------------- load

export interface PolicyOptions {
  model: LoadedModel;
  /** File name used in error messages. */
  source?: string;
  /** The values a region of an upstream may take (data.residency_region's); unset: any well-formed name. */
  regions?: readonly string[];
  /** The keys of the settings registry, which an upstream's `settings` may list; unset: any well-formed key. */
  settingKeys?: readonly string[];
}

/** Parse, validate against the model and compile. Throws PolicyError naming lines. */
export function parsePolicy(text: string, opts: PolicyOptions): CompiledPolicy {
  const source = opts.source ?? 'routes.yaml';
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, merge: true, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new PolicyError(
      source,
      doc.errors.map((e) => ({ ...lines.linePos(e.pos[0]), at: '', message: e.message.split('\n')[0]! })),
    );
  }
  const check = new Checker(doc, lines);
  const parsed = policySchema.safeParse(doc.toJS({ maxAliasCount: 1000 }));
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) check.add(issue.path as Path, `unknown field "${key}"`, key);
      } else {
        check.add(issue.path as Path, issue.message);
      }
    }
    throw new PolicyError(source, check.issues);
  }

  const model = indexModel(opts.model);
  const knownSettings = opts.settingKeys === undefined ? undefined : new Set(opts.settingKeys);
  const declared = compileUpstreams(parsed.data.upstreams ?? {}, opts.regions, knownSettings, check);
  const known = () => [...declared.keys()].join(', ');
  const defaultUpstream = parsed.data.defaultUpstream ?? TENANT_SERVICE_UPSTREAM;
  if (!declared.has(defaultUpstream)) check.add(['defaultUpstream'], `unknown upstream "${defaultUpstream}" (declared: ${known()})`);
  const used = new Set<string>();
  const rules: CompiledRule[] = [];
  const ids = new Map<string, number>();
  parsed.data.rules.forEach((rule, i) => {
    const first = ids.get(rule.id);
    if (first !== undefined) check.add(['rules', i, 'id'], `duplicate rule id "${rule.id}" (first at line ${check.lineOf(['rules', first])})`);
    else ids.set(rule.id, i);
    const upstreamName = rule.upstream ?? defaultUpstream;
    used.add(upstreamName);
    const upstream = declared.get(upstreamName);
    if (rule.upstream !== undefined && !declared.has(rule.upstream)) {
      check.add(['rules', i, 'upstream'], `unknown upstream "${rule.upstream}" (declared: ${known()})`);
    } else if (upstream?.stripPrefix !== undefined && !rule.path.startsWith(`${upstream.stripPrefix}/`) && rule.path !== upstream.stripPrefix) {
      check.add(
        ['rules', i, rule.upstream === undefined ? 'path' : 'upstream'],
        `path ${rule.path} does not start with the stripPrefix ${upstream.stripPrefix} of upstream "${upstream.name}" (line ${upstream.line})`,
      );
    }
    const compiled = compileRule(rule, i, model, upstream, upstreamName, check);
    if (compiled) rules.push(compiled);
  });
  for (const [name, u] of declared) {
    // The built-in tenant-service need not be used; a declared upstream no rule uses is a mistake.
    if (!used.has(name) && u?.line !== 0) check.add(['upstreams'], `upstream "${name}" is declared but no rule uses it`, name);
  }
  for (let i = 0; i < rules.length; i++) {
    for (let j = i + 1; j < rules.length; j++) {
      const example = overlap(rules[i]!, rules[j]!);
      if (example !== undefined) {
        const b = rules[j]!;
        const index = parsed.data.rules.findIndex((r) => r.id === b.id);
        check.add(['rules', index], `rule "${b.id}" and rule "${rules[i]!.id}" (line ${rules[i]!.line}) can both match ${example}`);
      }
    }
  }
  if (check.issues.length > 0) throw new PolicyError(source, check.issues);
  const upstreams = new Map<string, CompiledUpstream>();
  for (const [name, u] of declared) if (u !== undefined && used.has(name)) upstreams.set(name, u);
  return { source, rules, upstreams, match: buildMatcher(rules) };
}

export function loadPolicy(file: string, model: LoadedModel = loadModel()): CompiledPolicy {
  return parsePolicy(readFileSync(file, 'utf8'), { model, source: file });
}

/** The decision request for a matched rule: object, tuples and scope built from the path parameters. */
export function decisionRequest(rule: CompiledRule, params: Record<string, string>): PolicyDecisionRequest {
  const contextualTuples: TupleKey[] = rule.tuples.map((t) => ({ user: render(t.user, params), relation: t.relation, object: render(t.object, params) }));
  return {
    ruleId: rule.id,
    route: rule.route,
    permission: rule.permission,
    object: render(rule.object, params),
    contextualTuples,
    params,
    scope: { type: rule.scope.type, id: params[rule.scope.param]! },
    consistency: rule.consistency,
    upstream: rule.upstream,
    regions: rule.regions,
    assertionSettings: rule.assertionSettings,
  };
}

// ---------------------------------------------------------------- stage

export function matchPolicy(policy: CompiledPolicy): MiddlewareHandler<GatewayEnv> {
  // Not async: matching awaits nothing, so the stage hands on at once.
  return (c, next) => {
    const canonical = c.get('canonical');
    if (canonical === undefined) throw new Error('matchPolicy needs the normalise stage before it');
    c.set('policy', matchedRequest(policy, canonical));
    return next();
  };
}

/** The decision request of the one rule matching a canonical request; the policy stage's refusals are thrown. */
export function matchedRequest(policy: CompiledPolicy, canonical: { method: string; path: string; segments: readonly string[] }): PolicyDecisionRequest {
  const result = policy.match(canonical.method, canonical.segments);
    switch (result.kind) {
      case 'matched':
        return decisionRequest(result.rule, result.params);
      case 'no-route':
        throw new Problem(404, 'no-route', 'No such route', { detail: `no route matches ${canonical.method} ${excerpt(canonical.path, 200)}` });
      case 'method-not-allowed':
        throw new Problem(405, 'method-not-allowed', 'Method not allowed', {
          detail: `${canonical.method} is not allowed here; allowed: ${result.allow}`,
          headers: { allow: result.allow },
        });
      case 'invalid-param':
        throw new Problem(400, 'invalid-id', 'Invalid identifier in path', {
          detail: `path parameter ${result.param} must match ${ID_PATTERN.source}`,
          'invalid-params': [{ name: `path.${result.param}`, reason: `must match ${ID_PATTERN.source}` }],
        });
      case 'ambiguous':
        throw new Problem(500, 'policy-ambiguous', 'Route policy is ambiguous', { detail: 'more than one rule matches; the request is denied' });
    }
}
