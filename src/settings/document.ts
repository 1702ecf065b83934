// A node's settings document: per key, one entry that sets a value, merges into an
// inherited list (append / remove), resets to the default, or only locks the key for
// everything below. Checked against the registry before anything is written.
import type { InvalidParam } from '../shared/problem.js';
import { isListType, itemSchema, levelAllowed, levelOf, valueSchema, type SettingsRegistry, type SettingValue } from './registry.js';

export interface SettingEntry {
  set?: SettingValue;
  append?: string[];
  remove?: string[];
  reset?: true;
  /** Frozen for every node below (lockable keys only). */
  lock?: true;
}

/** An entry as stored: who wrote it and when (the provenance of what it does). */
export interface StoredEntry {
  entry: SettingEntry;
  author: string;
  at: string;
}

export type SettingsDocument = Record<string, SettingEntry>;

export type EntryOp = 'set' | 'merge' | 'reset' | 'lock';

export function opOf(e: SettingEntry): EntryOp {
  if (e.set !== undefined) return 'set';
  if (e.reset) return 'reset';
  if (e.append !== undefined || e.remove !== undefined) return 'merge';
  return 'lock';
}

const ENTRY_FIELDS = new Set(['set', 'append', 'remove', 'reset', 'lock']);
const MAX_KEYS = 256;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks a proposed document (the `settings` object of a request body) for the node
 * `ref`: every key known, every entry well-formed for its key's type, merge rule,
 * lockability and lowest level. Returns the normalised entries, or every problem at
 * once (`body.settings.<key>…`).
 */
export function checkDocument(
  registry: SettingsRegistry,
  ref: string,
  input: unknown,
  at = 'body.settings',
): { ok: true; document: SettingsDocument } | { ok: false; invalid: InvalidParam[] } {
  const invalid: InvalidParam[] = [];
  const bad = (name: string, reason: string) => invalid.push({ name, reason });
  if (!isRecord(input)) return { ok: false, invalid: [{ name: at, reason: 'must be an object of setting keys' }] };
  const keys = Object.keys(input);
  if (keys.length > MAX_KEYS) return { ok: false, invalid: [{ name: at, reason: `at most ${MAX_KEYS} keys` }] };
  const level = levelOf(ref);
  const document: SettingsDocument = {};
  for (const key of keys) {
    const name = `${at}.${key}`;
    const def = registry.get(key);
    if (!def) {
      bad(name, 'unknown setting key (GET /settings/registry lists them)');
      continue;
    }
    const raw = input[key];
    if (!isRecord(raw)) {
      bad(name, 'must be an object: {set}, {append, remove}, {reset: true} or {lock: true}, each optionally with lock');
      continue;
    }
    const before = invalid.length;
    for (const f of Object.keys(raw)) if (!ENTRY_FIELDS.has(f)) bad(`${name}.${f}`, 'unknown field');
    if (!levelAllowed(def, level)) bad(name, `may be set at the ${def.lowest} level and above, not by a ${level}`);
    const hasSet = raw.set !== undefined;
    const hasMerge = raw.append !== undefined || raw.remove !== undefined;
    const hasReset = raw.reset !== undefined;
    if (Number(hasSet) + Number(hasMerge) + Number(hasReset) > 1) bad(name, 'set, append/remove and reset exclude each other');
    if (raw.lock !== undefined && typeof raw.lock !== 'boolean') bad(`${name}.lock`, 'must be a boolean');
    if (hasReset && raw.reset !== true) bad(`${name}.reset`, 'must be true');
    const lock = raw.lock === true;
    if (lock && !def.lockable) bad(`${name}.lock`, 'this key cannot be locked');
    if (lock && level === 'tenant') bad(`${name}.lock`, 'a tenant has nothing below it to lock');
    if (!hasSet && !hasMerge && !hasReset && !lock) bad(name, 'an entry sets, merges, resets or locks (delete the entry to inherit)');
    if (hasReset && def.allocation) bad(`${name}.reset`, 'an allocation is not reset: delete the entry to inherit');
    if (hasReset && def.merge === 'tighten') bad(`${name}.reset`, 'a level may tighten this key but never loosen it: delete the entry to inherit');
    const entry: SettingEntry = {};
    if (hasSet) {
      const parsed = valueSchema(def).safeParse(raw.set);
      if (parsed.success) entry.set = parsed.data;
      else for (const i of parsed.error.issues) bad([`${name}.set`, ...i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))].join(''), i.message);
    }
    if (hasMerge) {
      if (!isListType(def) || def.merge !== 'list') bad(name, `append/remove need a list-merged key; ${key} is a ${def.type} with merge ${def.merge}`);
      else {
        for (const part of ['append', 'remove'] as const) {
          const v = raw[part];
          if (v === undefined) continue;
          if (!Array.isArray(v) || v.length === 0) {
            bad(`${name}.${part}`, 'must be a non-empty list');
            continue;
          }
          const item = itemSchema(def);
          const items: string[] = [];
          v.forEach((x, i) => {
            const p = item.safeParse(x);
            if (p.success) items.push(p.data);
            else bad(`${name}.${part}[${i}]`, p.error.issues[0]!.message);
          });
          if (new Set(items).size !== items.length) bad(`${name}.${part}`, 'lists an item twice');
          entry[part] = items;
        }
        const removes = new Set(entry.remove ?? []);
        for (const x of entry.append ?? []) if (removes.has(x)) bad(`${name}.append`, `${x} is both appended and removed`);
      }
    }
    if (hasReset) entry.reset = true;
    if (lock) entry.lock = true;
    if (invalid.length === before) document[key] = entry;
  }
  return invalid.length > 0 ? { ok: false, invalid } : { ok: true, document };
}

/** Two entries are the same (the canonical JSON of each). */
export function sameEntry(a: SettingEntry | undefined, b: SettingEntry | undefined): boolean {
  return canonical(a) === canonical(b);
}

export function canonical(v: unknown): string {
  if (v === undefined) return 'undefined';
  return JSON.stringify(v, (_k, val: unknown) =>
    isRecord(val) ? Object.fromEntries(Object.keys(val).sort().map((k) => [k, val[k]])) : val,
  );
}
