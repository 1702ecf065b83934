// The settings registry, document checks, effective values with provenance, allocations
// and dry runs: pure code, no server.
import { describe, expect, it } from 'vitest';
import { checkDocument, type StoredEntry } from '../../src/settings/document.js';
import { allocationViolations, dryRun, effectiveValue, effectiveValues, type ChainLevel } from '../../src/settings/effective.js';
import { loadRegistry, parseRegistry, RegistryError } from '../../src/settings/registry.js';

const registry = loadRegistry('policy/settings.yaml');
const def = (k: string) => registry.get(k)!;
const at = '2026-01-01T00:00:00.000Z';
const e = (entry: StoredEntry['entry'], author = 'user:a'): StoredEntry => ({ entry, author, at });
const chain = (...levels: Array<[string, Record<string, StoredEntry>]>): ChainLevel[] => levels.map(([node, entries]) => ({ node, entries }));

describe('registry', () => {
  it('ships the documented keys with valid defaults', () => {
    for (const k of ['security.ip_allowlist', 'security.require_mfa', 'security.session_max_age', 'recording.retention_days', 'data.residency_region', 'api.rate_limit_per_minute', 'quota.agents', 'business_hours', 'locale', 'timezone']) {
      expect(registry.get(k), k).toBeDefined();
    }
    expect(def('data.residency_region').lowest).toBe('division');
    expect(def('quota.agents').allocation).toBe(true);
  });

  it('names the line and field of every mistake', () => {
    const text = ['version: 1', 'keys:', '  a.b:', '    description: x', '    type: integer', '    default: 5', '  c:', '    description: y', '    type: enum', '    values: [x]', '    default: z', '    merge: list'].join('\n');
    let err: unknown;
    try {
      parseRegistry(text, 'r.yaml');
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(RegistryError);
    const msg = (err as Error).message;
    expect(msg).toContain('r.yaml:5:11: keys.a.b.type: an integer needs min and max');
    expect(msg).toContain('r.yaml:12:12: keys.c.merge: only string_list and cidr_list keys merge as lists');
  });

  it('refuses a default that does not fit its type, at its line', () => {
    const text = ['version: 1', 'keys:', '  x.y:', '    description: d', '    type: integer', '    min: 1', '    max: 5', '    default: 9'].join('\n');
    expect(() => parseRegistry(text, 'r.yaml')).toThrow(/r\.yaml:8:14: keys\.x\.y\.default: default: /);
  });
});

describe('checkDocument', () => {
  it('accepts every operation and normalises lock: false away', () => {
    const r = checkDocument(registry, 'division:d', {
      'security.require_mfa': { set: true, lock: true },
      'security.ip_allowlist': { append: ['10.0.0.0/8', '2001:db8::/32'], remove: ['192.168.0.1'] },
      locale: { reset: true, lock: false },
      timezone: { lock: true },
      business_hours: { set: [{ days: ['sat'], start: '10:00', end: '14:00' }] },
    });
    expect(r).toEqual({
      ok: true,
      document: {
        'security.require_mfa': { set: true, lock: true },
        'security.ip_allowlist': { append: ['10.0.0.0/8', '2001:db8::/32'], remove: ['192.168.0.1'] },
        locale: { reset: true },
        timezone: { lock: true },
        business_hours: { set: [{ days: ['sat'], start: '10:00', end: '14:00' }] },
      },
    });
  });

  it('reports every bad entry at once, by name', () => {
    const r = checkDocument(registry, 'tenant:t', {
      'no.such': { set: 1 },
      'security.require_mfa': { set: 'yes' },
      'recording.retention_days': { set: 0 },
      'data.residency_region': { set: 'eu' },
      'security.ip_allowlist': { append: ['10.0.0.0/33'], extra: 1 },
      timezone: { set: 'Mars/Base' },
      locale: { set: 'en-US', reset: true },
      'quota.agents': { reset: true },
      'api.rate_limit_per_minute': { set: 5, lock: true },
      'security.session_max_age': { set: '1s' },
      'security.require_mfa2': {},
    });
    expect(r.ok).toBe(false);
    const names = (r as { invalid: Array<{ name: string; reason: string }> }).invalid.map((i) => `${i.name}: ${i.reason}`);
    expect(names).toEqual(
      expect.arrayContaining([
        'body.settings.no.such: unknown setting key (GET /settings/registry lists them)',
        'body.settings.data.residency_region: may be set at the division level and above, not by a tenant',
        'body.settings.security.ip_allowlist.extra: unknown field',
        'body.settings.security.ip_allowlist.append[0]: must be an IPv4 or IPv6 address or CIDR, e.g. 10.0.0.0/8',
        'body.settings.locale: set, append/remove and reset exclude each other',
        'body.settings.quota.agents.reset: an allocation is not reset: delete the entry to inherit',
        'body.settings.api.rate_limit_per_minute.lock: a tenant has nothing below it to lock',
        'body.settings.timezone.set: must be an IANA time zone, e.g. Europe/Berlin',
      ]),
    );
    expect(names.some((n) => n.startsWith('body.settings.security.require_mfa.set: '))).toBe(true);
    expect(names.some((n) => n.startsWith('body.settings.recording.retention_days.set: '))).toBe(true);
    expect(names.some((n) => n.startsWith('body.settings.security.session_max_age.set: '))).toBe(true);
  });

  it('refuses append/remove on a replace key', () => {
    const r = checkDocument(registry, 'division:d', { locale: { append: ['x'] } });
    expect(r).toEqual({ ok: false, invalid: [{ name: 'body.settings.locale', reason: 'append/remove need a list-merged key; locale is a enum with merge replace' }] });
  });
});

describe('effective values', () => {
  it('inherits, overrides, resets, and records the chain with authors', () => {
    const c = chain(
      ['organization:o', { locale: e({ set: 'de-DE' }, 'user:olivia') }],
      ['division:d', { locale: e({ set: 'fr-FR' }, 'user:dana') }],
      ['tenant:t', {}],
    );
    const v = effectiveValue(def('locale'), c);
    expect(v).toMatchObject({ value: 'fr-FR', source: 'division:d', lockedBy: null });
    expect(v.chain.map((s) => [s.node, s.op, s.author])).toEqual([
      ['organization:o', 'set', 'user:olivia'],
      ['division:d', 'set', 'user:dana'],
    ]);
    const reset = effectiveValue(def('locale'), chain(['organization:o', { locale: e({ set: 'de-DE' }) }], ['tenant:t', { locale: e({ reset: true }) }]));
    expect(reset).toMatchObject({ value: 'en-US', source: 'tenant:t' });
    expect(effectiveValue(def('locale'), chain(['organization:o', {}]))).toMatchObject({ value: 'en-US', source: 'default', chain: [] });
  });

  it('merges lists down the path, and a removal anywhere wins over a later append', () => {
    const c = chain(
      ['organization:o', { 'security.ip_allowlist': e({ set: ['10.0.0.0/8', '192.168.1.0/24'] }) }],
      ['division:d', { 'security.ip_allowlist': e({ remove: ['192.168.1.0/24'] }) }],
      ['tenant:t', { 'security.ip_allowlist': e({ append: ['192.168.1.0/24', '172.16.0.0/12'] }) }],
    );
    expect(effectiveValue(def('security.ip_allowlist'), c).value).toEqual(['10.0.0.0/8', '172.16.0.0/12']);
  });

  it('a lock makes entries below it void, and says who locked', () => {
    const c = chain(
      ['organization:o', { 'security.require_mfa': e({ set: true, lock: true }) }],
      ['division:d', { 'security.require_mfa': e({ set: false }, 'user:dana') }],
      ['tenant:t', {}],
    );
    const v = effectiveValue(def('security.require_mfa'), c);
    expect(v).toMatchObject({ value: true, source: 'organization:o', lockedBy: 'organization:o', overridden: [{ node: 'division:d', author: 'user:dana', at }] });
    expect(effectiveValues(registry, c)).toHaveLength(registry.keys.size);
  });
});

describe('allocations', () => {
  const parents = new Map<string, string | null>([
    ['organization:o', null],
    ['division:a', 'organization:o'],
    ['division:a1', 'division:a'],
    ['tenant:t1', 'division:a1'],
    ['tenant:t2', 'division:a'],
    ['division:b', 'organization:o'],
  ]);
  it('bounds the nearest allocating descendants by the node, the organization by its effective value', () => {
    const quota = def('quota.agents');
    expect(allocationViolations(quota, parents, new Map([['organization:o', 100], ['division:a', 60], ['division:b', 40]]), 'division:b')).toEqual([]);
    expect(allocationViolations(quota, parents, new Map([['organization:o', 100], ['division:a', 60], ['division:b', 41]]), 'division:b')).toEqual([
      { node: 'organization:o', allocation: 100, allocated: 101, children: [{ node: 'division:a', allocation: 60 }, { node: 'division:b', allocation: 41 }] },
    ]);
    // t1 skips a1 (no allocation of its own) and counts against a.
    expect(allocationViolations(quota, parents, new Map([['division:a', 10], ['tenant:t1', 6], ['tenant:t2', 5]]), 'tenant:t1')).toEqual([
      { node: 'division:a', allocation: 10, allocated: 11, children: [{ node: 'tenant:t1', allocation: 6 }, { node: 'tenant:t2', allocation: 5 }] },
    ]);
    // Shrinking below what was handed out, and the organization's default (50) as its cap.
    expect(allocationViolations(quota, parents, new Map([['division:a', 4], ['tenant:t2', 5]]), 'division:a').map((v) => v.node)).toEqual(['division:a']);
    expect(allocationViolations(quota, parents, new Map([['division:a', 51]]), 'division:a')).toEqual([
      { node: 'organization:o', allocation: 50, allocated: 51, children: [{ node: 'division:a', allocation: 51 }] },
    ]);
  });
});

describe('dry run', () => {
  it('lists the changed effective values below the node and the own values a new lock overrides', () => {
    const parents = new Map<string, string | null>([
      ['organization:o', null],
      ['division:a', 'organization:o'],
      ['division:a1', 'division:a'],
      ['tenant:t1', 'division:a1'],
      ['division:b', 'organization:o'],
    ]);
    const entries = new Map<string, Record<string, StoredEntry>>([
      ['division:a1', { timezone: e({ set: 'Europe/Paris' }, 'user:sam') }],
      ['tenant:t1', { locale: e({ set: 'de-DE' }, 'user:tom') }],
    ]);
    const r = dryRun(registry, parents, entries, 'division:a', { locale: e({ set: 'fr-FR', lock: true }), timezone: e({ set: 'Europe/Berlin' }) });
    expect(r.changes).toEqual([
      { node: 'division:a', changes: [
        { key: 'locale', before: 'en-US', after: 'fr-FR', sourceBefore: 'default', sourceAfter: 'division:a' },
        { key: 'timezone', before: 'UTC', after: 'Europe/Berlin', sourceBefore: 'default', sourceAfter: 'division:a' },
      ] },
      { node: 'division:a1', changes: [{ key: 'locale', before: 'en-US', after: 'fr-FR', sourceBefore: 'default', sourceAfter: 'division:a' }] },
      { node: 'tenant:t1', changes: [{ key: 'locale', before: 'de-DE', after: 'fr-FR', sourceBefore: 'tenant:t1', sourceAfter: 'division:a' }] },
    ]);
    expect(r.overriddenByLock).toEqual([{ node: 'tenant:t1', key: 'locale', lockedBy: 'division:a', entry: { set: 'de-DE' }, author: 'user:tom', at }]);
  });
});
