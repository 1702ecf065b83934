import { describe, expect, it } from 'vitest';
import {
  compareHierarchy,
  describeDifference,
  disagreementSentence,
  expectedLinks,
  repairBatches,
  type Difference,
  type HierarchyRows,
} from '../../src/fga/reconcile.js';
import type { FgaTuple } from '../../src/fga/request-client.js';

const t = (object: string, relation: string, user: string): FgaTuple => ({ object, relation, user });

// acme → emea → emea-north → north-support; emea → acme-sales
const rows: HierarchyRows = {
  organizations: [{ id: 'acme' }],
  divisions: [
    { id: 'emea', organizationId: 'acme', parentDivisionId: null },
    { id: 'emea-north', organizationId: 'acme', parentDivisionId: 'emea' },
  ],
  tenants: [
    { id: 'acme-sales', divisionId: 'emea' },
    { id: 'north-support', divisionId: 'emea-north' },
  ],
};
const links = [
  t('organization:acme', 'platform', 'platform:root'),
  t('division:emea', 'organization', 'organization:acme'),
  t('division:emea-north', 'organization', 'organization:acme'),
  t('division:emea-north', 'parent', 'division:emea'),
  t('tenant:acme-sales', 'division', 'division:emea'),
  t('tenant:north-support', 'division', 'division:emea-north'),
];
const roles = [t('organization:acme', 'admin', 'user:olivia'), t('tenant:acme-sales', 'member', 'user:uma'), t('platform:root', 'admin', 'user:ops')];

describe('compareHierarchy', () => {
  it('the links a database calls for: platform, organization (every division), parent (nested only), division', () => {
    expect(expectedLinks(rows)).toEqual(links);
  });

  it('agrees when OpenFGA holds exactly those links, whatever roles sit on existing nodes', () => {
    const c = compareHierarchy(rows, [...links, ...roles]);
    expect(c).toEqual({ differences: [], nodes: 5, nodeTuples: 8 });
    expect(disagreementSentence(c, { storeName: 'tiergate' })).toBeUndefined();
  });

  it('finds a missing link, a link the row does not give, and links and grants of nodes the database lacks', () => {
    const moved = t('tenant:acme-sales', 'division', 'division:emea-north'); // the database says emea
    const tuples = [
      ...links.filter((l) => l.object !== 'tenant:acme-sales'),
      moved,
      t('division:emea', 'parent', 'division:emea-north'), // a top-level division given a parent
      t('tenant:gone', 'division', 'division:emea'),
      t('tenant:gone', 'admin', 'user:mallory'),
      t('division:old', 'admin', 'user:mallory'),
      ...roles,
    ];
    expect(compareHierarchy(rows, tuples).differences).toEqual([
      { kind: 'missing_link', tuple: t('tenant:acme-sales', 'division', 'division:emea') },
      { kind: 'wrong_link', tuple: t('division:emea', 'parent', 'division:emea-north') },
      { kind: 'wrong_link', tuple: moved },
      { kind: 'orphan_link', tuple: t('tenant:gone', 'division', 'division:emea') },
      { kind: 'orphan_grant', tuple: t('division:old', 'admin', 'user:mallory') },
      { kind: 'orphan_grant', tuple: t('tenant:gone', 'admin', 'user:mallory') },
    ]);
  });

  it('ignores tuples on other types (the platform, resources)', () => {
    const c = compareHierarchy({ organizations: [], divisions: [], tenants: [] }, [t('platform:root', 'admin', 'user:ops'), t('agent:t1/1', 'tenant', 'tenant:t1')]);
    expect(c).toEqual({ differences: [], nodes: 0, nodeTuples: 0 });
  });

  it('compares thousands of nodes in well under a second', () => {
    const many: HierarchyRows = {
      organizations: [{ id: 'o' }],
      divisions: Array.from({ length: 1000 }, (_, i) => ({ id: `d${i}`, organizationId: 'o', parentDivisionId: i === 0 ? null : `d${i - 1}` })),
      tenants: Array.from({ length: 5000 }, (_, i) => ({ id: `t${i}`, divisionId: `d${i % 1000}` })),
    };
    const tuples = expectedLinks(many).slice(1);
    const started = performance.now();
    const c = compareHierarchy(many, tuples);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(c.differences).toEqual([{ kind: 'missing_link', tuple: t('organization:o', 'platform', 'platform:root') }]);
  });
});

describe('repairBatches', () => {
  it('writes missing links and deletes the rest, one object per batch never split', () => {
    const d: Difference[] = [
      { kind: 'missing_link', tuple: t('tenant:a', 'division', 'division:x') },
      { kind: 'wrong_link', tuple: t('tenant:a', 'division', 'division:y') },
      { kind: 'orphan_grant', tuple: t('tenant:gone', 'admin', 'user:m') },
    ];
    expect(repairBatches(d)).toEqual([
      { writes: [t('tenant:a', 'division', 'division:x')], deletes: [t('tenant:a', 'division', 'division:y'), t('tenant:gone', 'admin', 'user:m')] },
    ]);
    expect(repairBatches(d, 2)).toEqual([
      { writes: [t('tenant:a', 'division', 'division:x')], deletes: [t('tenant:a', 'division', 'division:y')] },
      { writes: [], deletes: [t('tenant:gone', 'admin', 'user:m')] },
    ]);
  });

  it('keeps every batch at 100 tuples or fewer, and loses none', () => {
    const d: Difference[] = Array.from({ length: 250 }, (_, i) => ({ kind: 'missing_link', tuple: t(`tenant:t${i}`, 'division', 'division:d') }) as const);
    d.push(...Array.from({ length: 120 }, (_, i) => ({ kind: 'orphan_grant', tuple: t('tenant:gone', 'member', `user:u${i}`) }) as const));
    const batches = repairBatches(d);
    // The 120 grants of tenant:gone start a batch of their own, and are split only because they exceed 100.
    expect(batches.map((b) => b.writes.length + b.deletes.length)).toEqual([100, 100, 50, 100, 20]);
    expect(batches.flatMap((b) => [...b.writes, ...b.deletes])).toHaveLength(370);
  });
});

describe('disagreementSentence', () => {
  it('names each kind of difference with its count and first tuple, in one sentence, and the command', () => {
    const c = compareHierarchy(rows, [...links.slice(1), t('tenant:gone', 'admin', 'user:m'), t('tenant:old', 'member', 'user:n')]);
    expect(disagreementSentence(c, { storeName: 'tiergate' })).toBe(
      'OpenFGA store tiergate lacks 1 structural link the database has (first: organization:acme#platform@platform:root) and holds 2 grants on nodes the database does not have (first: tenant:gone#admin@user:m): run `npm run reconcile` to see the repair, then `npm run reconcile -- --apply`',
    );
  });

  it('says the roles are lost when OpenFGA holds nothing for a database with nodes', () => {
    const c = compareHierarchy(rows, []);
    expect(disagreementSentence(c, { storeName: 'tiergate', createdStore: true })).toBe(
      "OpenFGA store tiergate did not exist (it was created empty now) and lacks 6 structural links the database has (first: division:emea#organization@organization:acme); OpenFGA holds nothing for the database's 5 nodes, so its role grants are lost: reconcile restores the structure, not the roles (they are not in the database), which must be granted again: run `npm run reconcile` to see the repair, then `npm run reconcile -- --apply`",
    );
  });

  it('one line per difference says what --apply does', () => {
    expect(describeDifference({ kind: 'wrong_link', tuple: t('tenant:a', 'division', 'division:y') })).toBe(
      '- delete tenant:a#division@division:y  (the database links tenant:a otherwise)',
    );
  });
});
