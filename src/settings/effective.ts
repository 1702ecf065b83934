// Effective values, computed down the path from the organization to a node, with
// provenance: for every key the value, the entries that produced it (node, operation,
// author, time), which node locked it, and entries a lock above made void.
import { opOf, sameEntry, type EntryOp, type SettingEntry, type SettingsDocument, type StoredEntry } from './document.js';
import { intersectCidrs, NO_NETWORK } from './cidr.js';
import { durationSeconds, type SettingDef, type SettingsRegistry, type SettingValue } from './registry.js';

/** One node on the path, root first, with its stored entries. */
export interface ChainLevel {
  node: string;
  entries: Record<string, StoredEntry>;
}

export interface ProvenanceStep {
  node: string;
  op: EntryOp;
  lock: boolean;
  author: string | null;
  at: string | null;
  set?: SettingValue;
  append?: string[];
  remove?: string[];
}

export interface EffectiveValue {
  key: string;
  value: SettingValue;
  /** The node whose entry last decided the value, or `default`. */
  source: string;
  /** The node that locked the key (it or a node above); null when not locked. */
  lockedBy: string | null;
  /** The entries that produced the value, root first (`default` is implied). */
  chain: ProvenanceStep[];
  /** Entries below the lock: kept, but without effect while the lock holds. */
  overridden: Array<{ node: string; author: string; at: string }>;
}

function step(node: string, s: StoredEntry): ProvenanceStep {
  const e = s.entry;
  return {
    node,
    op: opOf(e),
    lock: e.lock === true,
    author: s.author,
    at: s.at,
    ...(e.set !== undefined ? { set: e.set } : {}),
    ...(e.append ? { append: e.append } : {}),
    ...(e.remove ? { remove: e.remove } : {}),
  };
}

/** The tighter of two limits, where 0 means no limit. */
export function lowerLimit(a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  return Math.min(a, b);
}

/** One key's effective value along `chain` (root first). */
export function effectiveValue(def: SettingDef, chain: readonly ChainLevel[]): EffectiveValue {
  let value: SettingValue = def.default;
  let source = 'default';
  let lockedBy: string | null = null;
  const steps: ProvenanceStep[] = [];
  const overridden: EffectiveValue['overridden'] = [];
  const removed = new Set<string>();
  for (const level of chain) {
    const s = level.entries[def.key];
    if (!s) continue;
    if (lockedBy !== null) {
      overridden.push({ node: level.node, author: s.author, at: s.at });
      continue;
    }
    const e = s.entry;
    steps.push(step(level.node, s));
    if (def.merge === 'tighten') {
      const next = tightened(def, value, e, level === chain[0]);
      // The source is the node whose entry last made the value stricter (or the organization's).
      if ((level === chain[0] && (e.set !== undefined || e.reset || e.append)) || !sameValue(next, value)) source = level.node;
      value = next;
    } else if (e.set !== undefined && def.merge === 'min') {
      // A limit: a node below may tighten it, never raise or remove it (0 = no limit).
      const next = lowerLimit(value as number, e.set as number);
      if (next !== value || source === 'default') source = level.node;
      value = next;
    } else if (e.set !== undefined) {
      value = e.set;
      source = level.node;
    } else if (e.reset && def.merge === 'min') {
      // Back to the default here, which is no tighter than what is set above: nothing changes.
    } else if (e.reset) {
      value = def.default;
      source = level.node;
    } else if (e.append || e.remove) {
      const list = [...(value as string[])];
      for (const x of e.append ?? []) if (!list.includes(x)) list.push(x);
      for (const x of e.remove ?? []) removed.add(x);
      value = list;
      source = level.node;
    }
    if (e.lock) lockedBy = level.node;
  }
  // A removal anywhere on the path wins over every append and set.
  if (def.merge === 'list' && removed.size > 0) value = (value as string[]).filter((x) => !removed.has(x));
  return { key: def.key, value, source, lockedBy, chain: steps, overridden };
}

function sameValue(a: SettingValue, b: SettingValue): boolean {
  return Array.isArray(a) && Array.isArray(b) ? a.length === b.length && a.every((x, i) => x === b[i]) : a === b;
}

/**
 * A `tighten` key's value after one level's entry. The organization's `set` (or `reset`,
 * `append`) replaces the default; below it only what narrows counts. Entries written before
 * the key tightened (`append`, `remove`, `reset`; no longer accepted) never loosen: an
 * append below the organization adds nothing, a removal narrows, a reset is void.
 */
function tightened(def: SettingDef, value: SettingValue, e: SettingEntry, root: boolean): SettingValue {
  let next = value;
  if (e.set !== undefined) next = root ? e.set : tighter(def, value, e.set);
  else if (e.reset && root) next = def.default;
  else if (e.append && root) next = [...new Set(e.append)];
  if (e.remove && Array.isArray(next) && next.length > 0) {
    const kept = (next as string[]).filter((x) => !e.remove!.includes(x));
    next = kept.length > 0 ? kept : [NO_NETWORK];
  }
  return next;
}

/**
 * The stricter of an inherited value and a level's own (`merge: tighten`): true over false;
 * the smaller integer or duration; for a CIDR list, the networks both admit. An empty list
 * restricts nothing; two lists with no network in common admit nothing ([NO_NETWORK]),
 * never "any network".
 */
export function tighter(def: SettingDef, inherited: SettingValue, own: SettingValue): SettingValue {
  switch (def.type) {
    case 'boolean':
      return inherited === true || own === true;
    case 'integer':
      return Math.min(inherited as number, own as number);
    case 'duration':
      return (durationSeconds(own as string) ?? 0) < (durationSeconds(inherited as string) ?? 0) ? own : inherited;
    case 'cidr_list': {
      const a = inherited as string[];
      const b = own as string[];
      if (b.length === 0) return a;
      if (a.length === 0) return [...new Set(b)];
      const both = intersectCidrs(a, b);
      return both.length > 0 ? both : [NO_NETWORK];
    }
    default:
      throw new Error(`${def.key}: a ${def.type} does not tighten`);
  }
}

/** Every registry key's effective value along `chain`, sorted by key. */
export function effectiveValues(registry: SettingsRegistry, chain: readonly ChainLevel[]): EffectiveValue[] {
  return [...registry.keys.values()].sort((a, b) => (a.key < b.key ? -1 : 1)).map((def) => effectiveValue(def, chain));
}

/** `{key: value}` of every key: what the upstream receives. */
export function effectiveMap(registry: SettingsRegistry, chain: readonly ChainLevel[]): Record<string, SettingValue> {
  return Object.fromEntries(effectiveValues(registry, chain).map((v) => [v.key, v.value]));
}

/** The node above `node` on `chain` that locks `key`, if any (what a write at `node` runs into). */
export function lockAbove(key: string, chain: readonly ChainLevel[], node: string): string | undefined {
  for (const level of chain) {
    if (level.node === node) return undefined;
    if (level.entries[key]?.entry.lock) return level.node;
  }
  return undefined;
}

/** What changes between a node's current document and a proposed one. */
export interface DocumentDiff {
  upserts: Record<string, SettingEntry>;
  deletes: string[];
}

export function diffDocument(current: Record<string, StoredEntry>, proposed: SettingsDocument): DocumentDiff {
  const upserts: Record<string, SettingEntry> = {};
  for (const [k, e] of Object.entries(proposed)) if (!sameEntry(current[k]?.entry, e)) upserts[k] = e;
  const deletes = Object.keys(current).filter((k) => !(k in proposed));
  return { upserts, deletes };
}

/** A document as stored entries (for computing with a proposal that is not written). */
export function asStored(doc: SettingsDocument, current: Record<string, StoredEntry>, author: string, at: string): Record<string, StoredEntry> {
  return Object.fromEntries(
    Object.entries(doc).map(([k, entry]) => [k, sameEntry(current[k]?.entry, entry) ? current[k]! : { entry, author, at }]),
  );
}

// ---------------------------------------------------------------- allocations

export interface AllocationViolation {
  /** The node whose allocation is exceeded. */
  node: string;
  allocation: number;
  /** What its nearest allocating descendants were given, together. */
  allocated: number;
  children: Array<{ node: string; allocation: number }>;
}

/**
 * Allocations of `def` (an allocation key) in one organization after a write at `changed`:
 * a node's explicit value (or, at the organization, its effective value) must cover the
 * sum of its nearest descendants' explicit values. Checks the changed node and its
 * nearest allocating ancestor, the two a write at `changed` can break.
 */
export function allocationViolations(
  def: SettingDef,
  parents: ReadonlyMap<string, string | null>,
  explicit: ReadonlyMap<string, number>,
  changed: string,
): AllocationViolation[] {
  const capOf = (n: string): number | undefined => explicit.get(n) ?? (parents.get(n) === null ? (def.default as number) : undefined);
  /** The nearest node above `n` with an allocation (the organization always has one). */
  const allocatingAbove = (n: string): string | undefined => {
    let cur = parents.get(n) ?? null;
    while (cur !== null) {
      if (capOf(cur) !== undefined) return cur;
      cur = parents.get(cur) ?? null;
    }
    return undefined;
  };
  const check = (x: string): AllocationViolation | undefined => {
    const cap = capOf(x);
    if (cap === undefined) return undefined;
    const children = [...explicit.entries()].filter(([n]) => n !== x && allocatingAbove(n) === x).map(([node, allocation]) => ({ node, allocation }));
    children.sort((a, b) => (a.node < b.node ? -1 : 1));
    const allocated = children.reduce((s, c) => s + c.allocation, 0);
    return allocated > cap ? { node: x, allocation: cap, allocated, children } : undefined;
  };
  const out: AllocationViolation[] = [];
  const self = check(changed);
  if (self) out.push(self);
  const above = allocatingAbove(changed);
  const up = above === undefined ? undefined : check(above);
  if (up) out.push(up);
  return out;
}

// ---------------------------------------------------------------- dry run

/** `node`'s path, root first, from a child → parent map. */
export function pathOf(parents: ReadonlyMap<string, string | null>, node: string): string[] {
  const out = [node];
  let cur = parents.get(node) ?? null;
  while (cur !== null && out.length < 128) {
    out.unshift(cur);
    cur = parents.get(cur) ?? null;
  }
  return out;
}

export interface ValueChange {
  key: string;
  before: SettingValue;
  after: SettingValue;
  sourceBefore: string;
  sourceAfter: string;
}

export interface DryRunResult {
  node: string;
  /** Every node at or below `node` whose effective values would change, with the changes. */
  changes: Array<{ node: string; changes: ValueChange[] }>;
  /** Entries of nodes below that a lock the proposal adds would override. */
  overriddenByLock: Array<{ node: string; key: string; lockedBy: string; entry: SettingEntry; author: string; at: string }>;
}

/**
 * What replacing `node`'s document by `proposed` would do to the effective values at
 * `node` and every node below it (`parents` covers the organization), nothing written.
 */
export function dryRun(
  registry: SettingsRegistry,
  parents: ReadonlyMap<string, string | null>,
  entries: ReadonlyMap<string, Record<string, StoredEntry>>,
  node: string,
  proposed: Record<string, StoredEntry>,
): DryRunResult {
  const affected = [...parents.keys()].filter((n) => pathOf(parents, n).includes(node)).sort((a, b) => depth(parents, a) - depth(parents, b) || (a < b ? -1 : 1));
  const chainOf = (n: string, override: boolean): ChainLevel[] =>
    pathOf(parents, n).map((p) => ({ node: p, entries: override && p === node ? proposed : (entries.get(p) ?? {}) }));
  const changes: DryRunResult['changes'] = [];
  const overriddenByLock: DryRunResult['overriddenByLock'] = [];
  for (const n of affected) {
    const before = effectiveValues(registry, chainOf(n, false));
    const after = effectiveValues(registry, chainOf(n, true));
    const diff: ValueChange[] = [];
    after.forEach((a, i) => {
      const b = before[i]!;
      if (JSON.stringify(a.value) !== JSON.stringify(b.value) || a.source !== b.source) {
        diff.push({ key: a.key, before: b.value, after: a.value, sourceBefore: b.source, sourceAfter: a.source });
      }
      if (n !== node && a.lockedBy === node && b.lockedBy !== node) {
        const own = entries.get(n)?.[a.key];
        if (own) overriddenByLock.push({ node: n, key: a.key, lockedBy: node, entry: own.entry, author: own.author, at: own.at });
      }
    });
    if (diff.length > 0) changes.push({ node: n, changes: diff });
  }
  return { node, changes, overriddenByLock };
}

function depth(parents: ReadonlyMap<string, string | null>, n: string): number {
  return pathOf(parents, n).length;
}
