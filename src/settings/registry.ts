// The settings registry: every key a node's settings document may hold, with its type,
// default, merge rule, whether it can be locked and the lowest level that may set it.
// Read from policy/settings.yaml at start; a bad file stops the start with
// `file:line:col: what is wrong`, like the route policy.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { z } from 'zod';

/** Levels from the top: a key's `lowest` says how far down it may be set. */
export const LEVELS = ['organization', 'division', 'tenant'] as const;
export type Level = (typeof LEVELS)[number];

export const MERGE_RULES = ['replace', 'list', 'tighten', 'min'] as const;
export type MergeRule = (typeof MERGE_RULES)[number];

/** The types a `tighten` key may have: each has an order from loose to strict. */
export const TIGHTEN_TYPES: ReadonlySet<string> = new Set(['boolean', 'integer', 'duration', 'cidr_list']);

export const SETTING_TYPES = ['boolean', 'integer', 'enum', 'string_list', 'duration', 'cidr_list', 'time_windows', 'timezone'] as const;
export type SettingType = (typeof SETTING_TYPES)[number];

/** Values are JSON: booleans, integers, strings, string lists, time-window lists. */
export type SettingValue = boolean | number | string | string[] | TimeWindow[];

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export interface TimeWindow {
  days: Array<(typeof WEEKDAYS)[number]>;
  /** `HH:MM`, 24-hour, in the node's `timezone`. */
  start: string;
  end: string;
}

export interface SettingDef {
  key: string;
  description: string;
  type: SettingType;
  default: SettingValue;
  /**
   * `replace`: a child's value replaces the parent's; `list`: lists merge down the path, a
   * removal at any level wins; `tighten`: every level's value counts and the strictest wins
   * (boolean: true; integer, duration: the smallest; cidr_list: the networks every level admits);
   * `min` (integers, 0 = no limit): the smallest non-zero value set on the path wins, so a
   * node below can tighten a limit but never raise or remove it.
   */
  merge: MergeRule;
  lockable: boolean;
  /** The lowest level that may set the key (`organization`: only the organization). */
  lowest: Level;
  /** Integer bounds. */
  min?: number;
  max?: number;
  /** Enum values. */
  values?: string[];
  /** Longest list. */
  maxItems?: number;
  /** string_list items must match it. */
  pattern?: string;
  /** Duration bounds, in seconds. */
  minSeconds?: number;
  maxSeconds?: number;
  /** An allocation (integer): the children's explicit values add up to at most the parent's. */
  allocation?: boolean;
}

export interface SettingsRegistry {
  readonly keys: ReadonlyMap<string, SettingDef>;
  get(key: string): SettingDef | undefined;
}

export const KEY_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;
const DURATION = /^([1-9][0-9]{0,8})(s|m|h|d)$/;
const HHMM = /^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** `90m` → 5400; undefined when not a duration. */
export function durationSeconds(text: string): number | undefined {
  const m = DURATION.exec(text);
  return m ? Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS] : undefined;
}

function validTimezone(tz: string): boolean {
  if (tz.length > 64) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128). */
export function validCidr(text: string): boolean {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) return false;
  if (slash < 0) return true;
  const bits = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

const timeWindow = z.strictObject({
  days: z
    .array(z.enum(WEEKDAYS))
    .min(1)
    .refine((d) => new Set(d).size === d.length, 'lists a day twice'),
  start: z.string().regex(HHMM, 'must be HH:MM (00:00 to 24:00)'),
  end: z.string().regex(HHMM, 'must be HH:MM (00:00 to 24:00)'),
}).refine((w) => w.start < w.end, { message: 'start must be before end', path: ['end'] });

/** The zod schema of one value of `def` (also used for list items: `item`). */
export function valueSchema(def: SettingDef): z.ZodType<SettingValue> {
  switch (def.type) {
    case 'boolean':
      return z.boolean();
    case 'integer':
      return z
        .number()
        .int()
        .min(def.min ?? Number.MIN_SAFE_INTEGER)
        .max(def.max ?? Number.MAX_SAFE_INTEGER);
    case 'enum':
      return z.enum((def.values ?? []) as [string, ...string[]]);
    case 'timezone':
      return z.string().refine(validTimezone, 'must be an IANA time zone, e.g. Europe/Berlin');
    case 'duration':
      return z.string().refine((s) => {
        const secs = durationSeconds(s);
        return secs !== undefined && secs >= (def.minSeconds ?? 1) && secs <= (def.maxSeconds ?? Number.MAX_SAFE_INTEGER);
      }, `must be a duration like 30m, 8h or 7d, from ${def.minSeconds ?? 1}s to ${def.maxSeconds ?? 'any'}s`);
    case 'string_list':
    case 'cidr_list':
      return listSchema(def);
    case 'time_windows':
      return z.array(timeWindow).max(def.maxItems ?? 64) as z.ZodType<SettingValue>;
  }
}

/** The schema of one list item of a list-typed key. */
export function itemSchema(def: SettingDef): z.ZodType<string> {
  if (def.type === 'cidr_list') return z.string().refine(validCidr, 'must be an IPv4 or IPv6 address or CIDR, e.g. 10.0.0.0/8');
  const re = def.pattern ? new RegExp(def.pattern) : undefined;
  return re ? z.string().min(1).max(256).regex(re, `must match ${def.pattern}`) : z.string().min(1).max(256);
}

function listSchema(def: SettingDef): z.ZodType<SettingValue> {
  return z
    .array(itemSchema(def))
    .max(def.maxItems ?? 256)
    .refine((l) => new Set(l).size === l.length, 'lists an item twice');
}

export function isListType(def: SettingDef): boolean {
  return def.type === 'string_list' || def.type === 'cidr_list';
}

// ---------------------------------------------------------------- the file

const defSchema = z
  .strictObject({
    description: z.string().min(1),
    type: z.enum(SETTING_TYPES),
    default: z.unknown(),
    merge: z.enum(MERGE_RULES).default('replace'),
    lockable: z.boolean().default(true),
    lowest: z.enum(LEVELS).default('tenant'),
    min: z.number().int().optional(),
    max: z.number().int().optional(),
    values: z.array(z.string().min(1)).min(1).optional(),
    maxItems: z.number().int().positive().optional(),
    pattern: z.string().optional(),
    minSeconds: z.number().int().positive().optional(),
    maxSeconds: z.number().int().positive().optional(),
    allocation: z.boolean().optional(),
  })
  .superRefine((d, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (d.type === 'enum' && !d.values) issue('values', 'an enum needs values');
    if (d.type !== 'enum' && d.values) issue('values', 'only an enum has values');
    if ((d.min !== undefined || d.max !== undefined) && d.type !== 'integer') issue('min', 'only an integer has min/max');
    if (d.type === 'integer' && (d.min === undefined || d.max === undefined)) issue('type', 'an integer needs min and max');
    if (d.min !== undefined && d.max !== undefined && d.min > d.max) issue('max', 'must not be below min');
    if (d.merge === 'list' && d.type !== 'string_list' && d.type !== 'cidr_list') issue('merge', 'only string_list and cidr_list keys merge as lists');
    if (d.merge === 'tighten' && !TIGHTEN_TYPES.has(d.type)) issue('merge', 'only boolean, integer, duration and cidr_list keys tighten');
    if (d.merge === 'tighten' && d.allocation) issue('merge', 'an allocation does not tighten');
    if (d.merge === 'min' && (d.type !== 'integer' || (d.min ?? 0) < 0)) issue('merge', 'only a non-negative integer key merges as min');
    if (d.allocation && d.type !== 'integer') issue('allocation', 'only an integer is an allocation');
    if (d.allocation && d.min !== undefined && d.min < 0) issue('min', 'an allocation is never negative');
    if (d.pattern !== undefined && d.type !== 'string_list') issue('pattern', 'only a string_list has an item pattern');
    if (d.pattern !== undefined) {
      try {
        new RegExp(d.pattern);
      } catch {
        issue('pattern', 'is not a regular expression');
      }
    }
  });

const fileSchema = z.strictObject({
  version: z.literal(1),
  keys: z.record(z.string().regex(KEY_PATTERN, 'key names are dotted lower_snake_case, e.g. security.require_mfa'), defSchema),
});

export interface RegistryIssue {
  line: number;
  col: number;
  at: string;
  message: string;
}

export class RegistryError extends Error {
  constructor(
    readonly source: string,
    readonly issues: RegistryIssue[],
  ) {
    issues.sort((a, b) => a.line - b.line || a.col - b.col);
    super(`invalid settings registry ${source}:\n${issues.map((i) => `  ${source}:${i.line}:${i.col}: ${i.at ? `${i.at}: ` : ''}${i.message}`).join('\n')}`);
    this.name = 'RegistryError';
  }
}

function nodeAt(doc: Document, path: ReadonlyArray<PropertyKey>): YamlNode | undefined {
  let node = doc.contents as YamlNode | null;
  for (const step of path) {
    if (!node) break;
    let next: YamlNode | null | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && p.key.value === step);
      next = pair ? ((pair.value as YamlNode | null) ?? (pair.key as YamlNode)) : undefined;
    } else if (isSeq(node) && typeof step === 'number') {
      next = node.items[step] as YamlNode | undefined;
    }
    if (!next) break;
    node = next;
  }
  return node ?? undefined;
}

const pathText = (path: ReadonlyArray<PropertyKey>) => path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');

/** Parses and checks a registry file's text; throws RegistryError naming each bad line. */
export function parseRegistry(text: string, source = 'settings.yaml'): SettingsRegistry {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const issues: RegistryIssue[] = [];
  const at = (path: ReadonlyArray<PropertyKey>, message: string) => {
    const pos = lines.linePos(nodeAt(doc, path)?.range?.[0] ?? 0);
    issues.push({ line: pos.line, col: pos.col, at: pathText(path), message });
  };
  for (const e of doc.errors) {
    const pos = e.linePos?.[0] ?? { line: 1, col: 1 };
    issues.push({ line: pos.line, col: pos.col, at: '', message: e.message.split('\n')[0]! });
  }
  if (issues.length > 0) throw new RegistryError(source, issues);
  const parsed = fileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    for (const i of parsed.error.issues) at(i.path, i.message);
    throw new RegistryError(source, issues);
  }
  const keys = new Map<string, SettingDef>();
  for (const [key, d] of Object.entries(parsed.data.keys)) {
    const def: SettingDef = { key, ...d, default: d.default as SettingValue };
    const ok = valueSchema(def).safeParse(d.default);
    if (!ok.success) at(['keys', key, 'default', ...ok.error.issues[0]!.path], `default: ${ok.error.issues[0]!.message}`);
    keys.set(key, def);
  }
  if (issues.length > 0) throw new RegistryError(source, issues);
  return { keys, get: (k) => keys.get(k) };
}

export function loadRegistry(file: string): SettingsRegistry {
  return parseRegistry(readFileSync(file, 'utf8'), file);
}

/** The registry as the API shows it (GET /settings/registry). */
export function describeRegistry(registry: SettingsRegistry): SettingDef[] {
  return [...registry.keys.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
}

export function levelOf(ref: string): Level {
  const type = ref.slice(0, ref.indexOf(':'));
  if (type === 'organization' || type === 'division' || type === 'tenant') return type;
  throw new Error(`not a settings node: ${ref}`);
}

/** May a node at `level` set `def`? (organization ⊂ division ⊂ tenant) */
export function levelAllowed(def: SettingDef, level: Level): boolean {
  return LEVELS.indexOf(level) <= LEVELS.indexOf(def.lowest);
}
