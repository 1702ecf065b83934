// The OpenFGA side of the decision cache against a real server: the Authorizer
// (typed errors, contextual tuples), its request-path client (failures) and the
// hierarchy reader (paging).
import { createServer, type Server, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthorizerRequestError, OpenFgaAuthorizer } from '../../src/fga/authorizer.js';
import { FgaStructureSource, HierarchyResolver, structureOf } from '../../src/fga/hierarchy.js';
import { bumpsFor, VersionKeys } from '../../src/decisions/version-keys.js';
import { LocalVersionStore } from '../../src/decisions/local-version-store.js';
import { FgaRequestClient } from '../../src/fga/request-client.js';
import { freePort } from '../../src/stack/ports.js';
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

  it('rejects a question OpenFGA refuses with a typed error', async () => {
    const refused = engine.check({ user: 'user:a', relation: 'no_such_relation', object: 'tenant:tA', contextualTuples: [] });
    await expect(refused).rejects.toBeInstanceOf(AuthorizerRequestError);
    await expect(refused).rejects.toMatchObject({ failure: 'invalid_request' });
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

describe('FgaRequestClient', () => {
  const question = { user: 'user:tAuser', relation: 'can_read', object: 'agent:tA/1', contextualTuples: [tuple('tenant:tA', 'tenant', 'agent:tA/1')] };
  /** A peer that accepts connections and never answers: a frozen server. */
  let silent: Server;
  const held: Socket[] = [];
  beforeAll(async () => {
    silent = createServer((socket) => void held.push(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  });
  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise((r) => silent.close(r));
  });

  it('answers Check in both consistencies, with and without the contextual link, and reports each call', async () => {
    const calls: Array<[string, string]> = [];
    const api = new FgaRequestClient({
      apiUrl: store.apiUrl,
      apiToken: store.apiToken,
      storeId: store.storeId,
      timeoutMs: 5000,
      onCall: (call, outcome, seconds) => {
        expect(seconds).toBeGreaterThan(0);
        calls.push([call, outcome]);
      },
    });
    try {
      expect(await api.check(question, store.authorizationModelId, 'strong')).toBe(true);
      expect(await api.check(question, store.authorizationModelId, 'cached')).toBe(true);
      expect(await api.check({ ...question, contextualTuples: [] }, store.authorizationModelId, 'strong')).toBe(false);
      expect(await api.check({ ...question, user: 'user:tBadmin' }, store.authorizationModelId, 'strong')).toBe(false);
      await expect(api.check({ ...question, relation: 'no_such_relation' }, store.authorizationModelId, 'strong')).rejects.toThrow();
      await api.read({ relation: 'tenant', object: 'agent:tA/1' }, { pageSize: 10, consistency: 'strong' });
      expect(calls).toEqual([
        ['check', 'ok'],
        ['check', 'ok'],
        ['check', 'ok'],
        ['check', 'ok'],
        ['check', 'error'],
        ['read', 'ok'],
      ]);
    } finally {
      await api.close();
    }
  });

  it('reads stored tuples page by page, with a continuation token until the last page', async () => {
    const api = new FgaRequestClient({ apiUrl: store.apiUrl, apiToken: store.apiToken, storeId: store.storeId, timeoutMs: 5000 });
    try {
      const first = await api.read({ user: 'division:d2', relation: 'division', object: 'tenant:' }, { pageSize: 1, consistency: 'strong' });
      expect(first.tuples).toHaveLength(1);
      expect(first.continuationToken).toEqual(expect.any(String));
      const all = await api.read({ user: 'division:d2', relation: 'division', object: 'tenant:' }, { pageSize: 100, consistency: 'strong' });
      expect(all.continuationToken).toBeUndefined();
      expect(all.tuples.map((t) => t.object)).toEqual(expect.arrayContaining(['tenant:tA', 'tenant:tB']));
      expect(all.tuples.every((t) => t.user === 'division:d2' && t.relation === 'division')).toBe(true);
    } finally {
      await api.close();
    }
  });

  it('reads the changelog page by page, writes and deletes in order, from a start time or a token, without reporting a request-path call', async () => {
    const calls: string[] = [];
    const api = new FgaRequestClient({ apiUrl: store.apiUrl, apiToken: store.apiToken, storeId: store.storeId, timeoutMs: 5000, onCall: (call) => calls.push(call) });
    try {
      const since = new Date(Date.now() - 1000).toISOString();
      const grant = tuple('user:changelog-reader', 'member', 'tenant:tA');
      await store.client.write({ writes: [grant] });
      await store.client.write({ deletes: [grant] });
      const pages: Array<Awaited<ReturnType<FgaRequestClient['readChanges']>>> = [];
      let page = await api.readChanges({ pageSize: 1, startTime: since });
      pages.push(page);
      while (page.changes.length === 1 && pages.length < 50) {
        page = await api.readChanges({ pageSize: 1, continuationToken: page.continuationToken! });
        pages.push(page);
      }
      const mine = pages.flatMap((p) => p.changes).filter((c) => c.tuple.user === 'user:changelog-reader');
      expect(mine.map((c) => c.operation)).toEqual(['write', 'delete']);
      expect(mine[0]!.tuple).toEqual(grant);
      expect(Number.isFinite(Date.parse(mine[0]!.timestamp))).toBe(true);
      // The last page still carries a token to poll on from.
      expect(page.changes).toHaveLength(0);
      expect(page.continuationToken).toEqual(expect.any(String));
      expect(calls).toEqual([]);
    } finally {
      await api.close();
    }
  });

  it('rejects typed: refused question, unknown store, closed port, silent server', async () => {
    const api = new FgaRequestClient({ apiUrl: store.apiUrl, apiToken: store.apiToken, storeId: store.storeId, timeoutMs: 5000 });
    const otherStore = new FgaRequestClient({ apiUrl: store.apiUrl, apiToken: store.apiToken, storeId: '01ARZ3NDEKTSV4RRFFQ69G5FAV', timeoutMs: 5000 });
    const closed = new FgaRequestClient({ apiUrl: `http://127.0.0.1:${await freePort()}`, storeId: store.storeId, timeoutMs: 5000 });
    const frozen = new FgaRequestClient({ apiUrl: `http://127.0.0.1:${(silent.address() as { port: number }).port}`, storeId: store.storeId, timeoutMs: 200 });
    const single = new FgaRequestClient({ apiUrl: `http://127.0.0.1:${(silent.address() as { port: number }).port}`, storeId: store.storeId, timeoutMs: 200, connections: 1 });
    try {
      await expect(api.check({ ...question, relation: 'no_such_relation' }, store.authorizationModelId, 'strong')).rejects.toMatchObject({
        name: 'AuthorizerRequestError',
        failure: 'invalid_request',
      });
      await expect(otherStore.check(question, store.authorizationModelId, 'strong')).rejects.toMatchObject({ failure: 'invalid_request' });
      await expect(closed.check(question, store.authorizationModelId, 'strong')).rejects.toMatchObject({
        name: 'AuthorizerUnavailableError',
        failure: 'unreachable',
      });
      const started = performance.now();
      await expect(frozen.read({ relation: 'tenant', object: 'agent:tA/1' }, { pageSize: 10, consistency: 'strong' })).rejects.toMatchObject({
        name: 'AuthorizerUnavailableError',
        failure: 'timeout',
      });
      // The budget covers the whole call: it ends near 200 ms, not at some library default.
      expect(performance.now() - started).toBeLessThan(3000);
      // With one connection the second call waits in the pool's queue, and its budget counts from the call too.
      const queuedAt = performance.now();
      const both = await Promise.allSettled([0, 1].map(() => single.check(question, store.authorizationModelId, 'strong')));
      expect(both.map((r) => (r.status === 'rejected' ? (r.reason as { failure?: string }).failure : 'answered'))).toEqual(['timeout', 'timeout']);
      expect(performance.now() - queuedAt).toBeLessThan(3000);
      // A closed client refuses at once, and leaves no timer to reject later.
      const gone = new FgaRequestClient({ apiUrl: store.apiUrl, apiToken: store.apiToken, storeId: store.storeId, timeoutMs: 200 });
      await gone.close();
      await expect(gone.check(question, store.authorizationModelId, 'strong')).rejects.toMatchObject({ failure: 'unreachable' });
    } finally {
      await Promise.all([api.close(), otherStore.close(), closed.close(), frozen.close(), single.close()]);
    }
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
    const versions = new LocalVersionStore({ keys });
    const reader = new FgaStructureSource(store.api, 2);
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
