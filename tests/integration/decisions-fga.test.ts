// The OpenFGA side of the decision cache against a real server: the Authorizer
// (typed errors, contextual tuples, batch checks) and the hierarchy reader (paging).
import { Registry } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuthorizerRequestError, OpenFgaAuthorizer } from '../../src/fga/authorizer.js';
import { FgaStructureSource, HierarchyResolver, structureOf } from '../../src/fga/hierarchy.js';
import { bumpsFor, VersionKeys } from '../../src/decisions/nodes.js';
import { VersionStore } from '../../src/decisions/versions.js';
import { createTestStore, type TestStore } from '../support/fga.js';
import { engineFor, MODEL, resourceCheck, tuple, writeHierarchy } from '../support/decisions-fixture.js';

let store: TestStore;
let engine: OpenFgaAuthorizer;

beforeAll(async () => {
  store = await createTestStore();
  await writeHierarchy(store.client);
  engine = engineFor(store);
});

describe('OpenFgaAuthorizer', () => {
  it('answers checks with contextual tuples, in either consistency', async () => {
    expect(await engine.check(resourceCheck('user:tAuser', 'tA', 'agent', '1'))).toMatchObject({ allowed: true, layer: 'openfga' });
    expect((await engine.check(resourceCheck('user:tAuser', 'tA', 'agent', '1', 'can_write'))).allowed).toBe(false);
    expect((await engine.check({ ...resourceCheck('user:tAuser', 'tA', 'agent', '1'), consistency: 'strong' })).allowed).toBe(true);
    // without the contextual tenant link the resource belongs to no one
    expect((await engine.check({ ...resourceCheck('user:tAuser', 'tA', 'agent', '1'), contextualTuples: [] })).allowed).toBe(false);
  });

  it('answers several checks in one batch, in order', async () => {
    const answers = await engine.batchCheck([
      resourceCheck('user:tAuser', 'tA', 'agent', '1'),
      resourceCheck('user:tAuser', 'tB', 'agent', '1'),
      { user: 'user:d1admin', relation: 'can_view', object: 'tenant:tB', contextualTuples: [] },
      { user: 'user:d3admin', relation: 'can_view', object: 'tenant:tB', contextualTuples: [] },
    ]);
    expect(answers).toEqual([true, false, true, false]);
    expect(await engine.batchCheck([])).toEqual([]);
  });

  it('rejects a question OpenFGA refuses with a typed error, in check and in batch', async () => {
    await expect(engine.check({ user: 'user:a', relation: 'no_such_relation', object: 'tenant:tA', contextualTuples: [] })).rejects.toBeInstanceOf(
      AuthorizerRequestError,
    );
    await expect(
      engine.batchCheck([
        { user: 'user:a', relation: 'can_view', object: 'tenant:tA', contextualTuples: [] },
        { user: 'user:a', relation: 'no_such_relation', object: 'tenant:tA', contextualTuples: [] },
      ]),
    ).rejects.toBeInstanceOf(AuthorizerRequestError);
  });

  it('follows a re-pinned model id', async () => {
    const other = engineFor(store);
    other.pinModel('01ARZ3NDEKTSV4RRFFQ69G5FAV'); // a well-formed id of no model in this store
    await expect(other.check({ user: 'user:a', relation: 'can_view', object: 'tenant:tA', contextualTuples: [] })).rejects.toBeInstanceOf(AuthorizerRequestError);
    other.pinModel(store.authorizationModelId);
    expect(other.authorizationModelId).toBe(store.authorizationModelId);
    expect((await other.check({ user: 'user:tAadmin', relation: 'can_view', object: 'tenant:tA', contextualTuples: [] })).allowed).toBe(true);
  });
});

describe('HierarchyResolver over OpenFGA', () => {
  it('reads every page of structural tuples: ancestors and tenants under a node', async () => {
    // 7 more tenants under d2 and a 3-deep division chain, read 2 tuples per page
    const extra = Array.from({ length: 7 }, (_, i) => tuple('division:d2', 'division', `tenant:p${i}`));
    await store.client.write({
      writes: [
        ...extra,
        tuple('organization:o1', 'organization', 'division:d4'),
        tuple('division:d2', 'parent', 'division:d4'),
        tuple('division:d4', 'division', 'tenant:deep'),
      ],
    });
    const structure = structureOf(MODEL);
    const keys = new VersionKeys(structure);
    const versions = new VersionStore({ keys, prefix: 'unused:', trusted: () => true });
    const reader = new FgaStructureSource(store.client, store.storeId, 2);
    let reads = 0;
    const counting = {
      parents: (o: string, r: readonly string[]) => (reads++, reader.parents(o, r)),
      children: (p: string, l: Parameters<typeof reader.children>[1]) => (reads++, reader.children(p, l)),
    };
    const h = new HierarchyResolver({ source: counting, structure, versions });

    expect(await h.ancestors('tenant:deep')).toEqual(['division:d4', 'division:d2', 'division:d1', 'organization:o1', 'platform:root']);
    expect(await h.ancestors('organization:o1')).toEqual(['platform:root']);
    const underD1 = await h.tenantsUnder('division:d1');
    expect(underD1.sort()).toEqual(['tenant:deep', 'tenant:p0', 'tenant:p1', 'tenant:p2', 'tenant:p3', 'tenant:p4', 'tenant:p5', 'tenant:p6', 'tenant:tA', 'tenant:tB'].sort());
    expect((await h.tenantsUnder('organization:o1')).sort()).toEqual([...underD1, 'tenant:tC'].sort());

    // Cached: asking again reads nothing...
    const before = reads;
    await h.ancestors('tenant:deep');
    await h.tenantsUnder('division:d1');
    expect(reads).toBe(before);
    // ...until a version it depends on changes (here: the moved tenant's structure and both parents' listings).
    const move = { deletes: [tuple('division:d4', 'division', 'tenant:deep')], writes: [tuple('division:d3', 'division', 'tenant:deep')] };
    await store.client.write(move);
    const bumps = bumpsFor(move, keys);
    expect(bumps.keys).toEqual(expect.arrayContaining([keys.structureKey('tenant:deep'), '#c|division:d4', '#c|division:d3']));
    await versions.bump(bumps.keys, bumps.roles);
    expect(await h.ancestors('tenant:deep')).toEqual(['division:d3', 'organization:o1', 'platform:root']);
    expect(await h.tenantsUnder('division:d1')).not.toContain('tenant:deep');
    expect((await h.tenantsUnder('division:d3')).sort()).toEqual(['tenant:deep', 'tenant:tC']);
    expect(reads).toBeGreaterThan(before);

    // A role change on a node is no structural change: nothing is read again for it.
    const afterMove = reads;
    const grant = bumpsFor({ writes: [tuple('user:someone', 'admin', 'tenant:deep')], deletes: [] }, keys);
    await versions.bump(grant.keys, grant.roles);
    expect(await h.ancestors('tenant:deep')).toEqual(['division:d3', 'organization:o1', 'platform:root']);
    expect(reads).toBe(afterMove);
  });

  it('the decision cache refuses to start with a model its soundness argument does not cover', async () => {
    const { DecisionCache } = await import('../../src/decisions/index.js');
    const { parseModel } = await import('../../src/fga/model.js');
    const bad = parseModel(`model
  schema 1.1
type user
type group
  relations
    define member: [user]
type doc
  relations
    define viewer: [user, group#member]
`).request;
    expect(
      () =>
        new DecisionCache({
          engine,
          fga: store.client,
          storeId: store.storeId,
          modelId: () => store.authorizationModelId,
          model: bad,
          registry: new Registry(),
          redisTimeoutMs: 5,
          l1Enabled: true,
          l1MaxEntries: 10,
          allowTtlS: 1,
          denyTtlS: 1,
          ttlJitter: 0,
          pollMs: 1000,
        }),
    ).toThrow(/userset subjects/);
  });
});
