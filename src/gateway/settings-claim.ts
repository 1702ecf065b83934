// The effective settings of a request's scope node, for the assertion's `settings`
// claim (docs/settings.md). Cached per node against the settings-versions of the node's
// path (organization … node, ../decisions/version-keys.ts `#d|<node>`): the admin API
// bumps a node's version after its document is committed and before it answers, on every
// replica (the same store and bus as the decision cache), so the next request anywhere
// computes the claim again. Versions are read before the documents: a document written
// meanwhile is either read, or its bump makes the entry stale. When the versions cannot
// be read (Redis down) the claim is computed from the database and not cached; an entry
// is kept at most maxAgeMs, which bounds a bump that failed (the admin API then answered
// invalidation-failed) the way the ReadChanges poller bounds a missed tuple bump.
// A cached claim also records the structure-versions of every node its path was read
// from (read before the path, so a move made meanwhile leaves it stale): while the
// in-process copy of the versions is trusted, a request is answered from the cache by
// comparing those versions in process, without walking the path or awaiting anything.
// Each upstream receives the cached claim cut to the keys its policy lists (upstreamSettings).
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Db } from '../db/index.js';
import type { HierarchyResolver } from '../fga/hierarchy.js';
import type { VersionStore } from '../decisions/version-store.js';
import { GLOBAL_KEY } from '../decisions/version-keys.js';
import type { Scope } from '../authz/types.js';
import { effectiveValues } from '../settings/effective.js';
import type { SettingsRegistry } from '../settings/registry.js';
import { readEntries } from '../settings/store.js';
import type { SettingsClaim } from '../shared/assertion.js';
import type { SignedSettings } from './assertion-signer.js';

export interface SettingsClaimsOptions {
  db: Db;
  registry: SettingsRegistry;
  hierarchy: Pick<HierarchyResolver, 'ancestors' | 'closure'>;
  versions: Pick<VersionStore, 'read' | 'keys' | 'matches' | 'trusted'>;
  maxEntries?: number;
  /** The longest a claim is served from the cache (default 60 s). */
  maxAgeMs?: number;
}

export interface SettingsClaims {
  /**
   * The claim for `scope`'s node: at once when the cached one is current, else a promise
   * that rejects when the path, versions or documents cannot be read.
   */
  claimFor(scope: Scope): SignedSettings | Promise<SignedSettings>;
  /** How claims were produced: from the cache, or computed now. */
  readonly counts: { cached: number; computed: number };
}

const SETTINGS_NODE = /^(organization|division|tenant):/;

interface CachedClaim {
  /** The global epoch, the structure-keys of the path's nodes, then the settings-keys of the path. */
  keys: string[];
  versions: number[];
  signed: SignedSettings;
}

export function createSettingsClaims(opts: SettingsClaimsOptions): SettingsClaims {
  // ttlResolution 0: lru-cache otherwise keeps its clock reading with a 1 ms timer armed on
  // nearly every lookup, i.e. a timer (and at low rates a wake-up) per request.
  const cache = new LRUCache<string, CachedClaim>({ max: opts.maxEntries ?? 10_000, ttl: opts.maxAgeMs ?? 60_000, ttlResolution: 0 });
  const counts = { cached: 0, computed: 0 };
  const { versions } = opts;
  return {
    counts,
    claimFor(scope) {
      const node = `${scope.type}:${scope.id}`;
      const hit = cache.get(node);
      if (hit !== undefined && versions.trusted() && versions.matches(hit.keys, hit.versions)) {
        counts.cached++;
        return hit.signed;
      }
      return compute(node);
    },
  };

  async function compute(node: string): Promise<SignedSettings> {
    // The global epoch, then the versions of the node and every node above it, each read
    // before what it validates: a move made after these reads bumps one of them.
    const epoch = await versions.read([GLOBAL_KEY]).catch(() => undefined);
    const structure = epoch === undefined ? undefined : await opts.hierarchy.closure([node]).catch(() => undefined);
    // Nearest first (tenant, its divisions, the organization, the platform): root first here.
    const above = (await opts.hierarchy.ancestors(node)).filter((n) => SETTINGS_NODE.test(n)).reverse();
    const path = [...above, node];
    const settingsKeys = path.map((n) => versions.keys.settingsKey(n));
    const settingsVersions = structure === undefined ? undefined : await versions.read(settingsKeys).catch(() => undefined);
    const recorded =
      epoch === undefined || structure === undefined || settingsVersions === undefined
        ? undefined
        : {
            keys: [GLOBAL_KEY, ...structure.objects.map((o) => versions.keys.structureKey(o)), ...settingsKeys],
            versions: [epoch[0]!, ...structure.versions, ...settingsVersions],
          };
    const entries = await readEntries(opts.db, path);
    const items = effectiveValues(
      opts.registry,
      path.map((n) => ({ node: n, entries: entries.get(n)! })),
    );
    const claim = {
      node,
      values: Object.fromEntries(items.map((v) => [v.key, v.value])),
      sources: Object.fromEntries(items.map((v) => [v.key, v.source])),
    };
    const signed: SignedSettings = { claim, digest: claimDigest(claim) };
    // Unreadable versions (Redis down): computed from the database, and not cached.
    if (recorded !== undefined) cache.set(node, { ...recorded, signed });
    else cache.delete(node);
    counts.computed++;
    return signed;
  }
}

/** Names a claim: the signer reuses an assertion only for the same digest. */
function claimDigest(claim: SettingsClaim): string {
  return createHash('sha256').update(JSON.stringify(claim)).digest('base64url').slice(0, 22);
}

// Per full claim (the object the node cache holds), per key list (the policy's array of one
// upstream): the cut claim, built once. Weak on the full claim, so a cut lives as long as
// the cached claim it was cut from; after that the next request cuts the new one.
const cuts = new WeakMap<SignedSettings, Map<readonly string[], SignedSettings>>();

/**
 * The claim an upstream receives: `full` cut to `keys` (values and sources of those keys,
 * with a digest of its own), `full` itself when `keys` is undefined, none when it is empty.
 * The same `full` and `keys` objects give the same object back, so the warm path allocates nothing.
 */
export function upstreamSettings(full: SignedSettings, keys: readonly string[] | undefined): SignedSettings | undefined {
  if (keys === undefined) return full;
  if (keys.length === 0) return undefined;
  let byKeys = cuts.get(full);
  if (byKeys === undefined) cuts.set(full, (byKeys = new Map()));
  let cut = byKeys.get(keys);
  if (cut === undefined) {
    const { node, values, sources } = full.claim;
    // A key the node's settings lack (not in this registry) is left out, not sent as null.
    const present = keys.filter((k) => Object.hasOwn(values, k));
    const claim: SettingsClaim = {
      node,
      values: Object.fromEntries(present.map((k) => [k, values[k]])),
      sources: Object.fromEntries(present.map((k) => [k, sources[k]!])),
    };
    cut = { claim, digest: claimDigest(claim) };
    byKeys.set(keys, cut);
  }
  return cut;
}
