// One test per kind of write that can change a decision (the soundness argument in
// src/decisions/soundness.ts, case by case): a decision is cached on two replicas,
// the write happens, and both replicas answer the new way —
//   - through tiergate (write + DecisionInvalidator): on the very next check;
//   - straight in OpenFGA (picked up by ReadChanges): within poll interval + 1 s.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadModel, MODEL_FILE, parseModel } from '../../src/fga/model.js';
import { createTestStore, type TestStore } from '../support/fga.js';
import { engineFor, startReplica, startReplicaPair, closeReplicas, tuple, writeThrough, type Replica } from '../support/decisions-fixture.js';
import { waitFor } from '../support/wait.js';
import type { CheckRequest, TupleKey } from '../../src/authz/types.js';

interface WriteCase {
  name: string;
  /** Tuples present before the decision is cached. */
  setup: (p: string) => TupleKey[];
  /** The decisions to watch, each with its answer before and after the write. */
  checks: (p: string) => Array<{ req: CheckRequest; before: boolean; after: boolean }>;
  change: (p: string) => { writes?: TupleKey[]; deletes?: TupleKey[] };
}

const ask = (user: string, relation: string, object: string, contextualTuples: TupleKey[] = []): CheckRequest => ({ user, relation, object, contextualTuples });
const inTenant = (user: string, tenant: string, relation = 'can_read', kind = 'agent', id = '1'): CheckRequest => {
  const object = `${kind}:${tenant}/${id}`;
  return { user, relation, object, contextualTuples: [tuple(`tenant:${tenant}`, 'tenant', object)], scope: { type: 'tenant', id: tenant } };
};

/** organization:{p}o > division:{p}d1 > division:{p}d2 (nested) > tenant:{p}t; division:{p}d3 beside d1. */
const base = (p: string, opts: { platformLink?: boolean } = {}): TupleKey[] => [
  ...(opts.platformLink === false ? [] : [tuple('platform:root', 'platform', `organization:${p}o`)]),
  tuple(`organization:${p}o`, 'organization', `division:${p}d1`),
  tuple(`organization:${p}o`, 'organization', `division:${p}d2`),
  tuple(`division:${p}d1`, 'parent', `division:${p}d2`),
  tuple(`organization:${p}o`, 'organization', `division:${p}d3`),
  tuple(`division:${p}d2`, 'division', `tenant:${p}t`),
];

const CASES: WriteCase[] = [
  {
    name: 'role grant at platform',
    setup: (p) => base(p),
    checks: (p) => [{ req: ask(`user:${p}plat`, 'can_view', `organization:${p}o`), before: false, after: true }],
    change: (p) => ({ writes: [tuple(`user:${p}plat`, 'admin', 'platform:root')] }),
  },
  {
    name: 'role revoke at platform',
    setup: (p) => [...base(p), tuple(`user:${p}plat`, 'admin', 'platform:root')],
    checks: (p) => [{ req: ask(`user:${p}plat`, 'can_delete', `organization:${p}o`), before: true, after: false }],
    change: (p) => ({ deletes: [tuple(`user:${p}plat`, 'admin', 'platform:root')] }),
  },
  {
    name: 'role grant at organization',
    setup: (p) => base(p),
    checks: (p) => [
      { req: ask(`user:${p}u`, 'can_manage_resources', `tenant:${p}t`), before: false, after: true },
      { req: inTenant(`user:${p}u`, `${p}t`, 'can_write', 'queue'), before: false, after: true },
    ],
    change: (p) => ({ writes: [tuple(`user:${p}u`, 'admin', `organization:${p}o`)] }),
  },
  {
    name: 'role revoke at organization',
    setup: (p) => [...base(p), tuple(`user:${p}u`, 'admin', `organization:${p}o`)],
    checks: (p) => [
      { req: ask(`user:${p}u`, 'can_create_division', `organization:${p}o`), before: true, after: false },
      { req: inTenant(`user:${p}u`, `${p}t`), before: true, after: false },
    ],
    change: (p) => ({ deletes: [tuple(`user:${p}u`, 'admin', `organization:${p}o`)] }),
  },
  {
    name: 'role grant at division',
    setup: (p) => base(p),
    checks: (p) => [
      { req: ask(`user:${p}u`, 'can_rename', `division:${p}d2`), before: false, after: true },
      { req: inTenant(`user:${p}u`, `${p}t`), before: false, after: true },
    ],
    change: (p) => ({ writes: [tuple(`user:${p}u`, 'admin', `division:${p}d1`)] }),
  },
  {
    name: 'role revoke at division',
    setup: (p) => [...base(p), tuple(`user:${p}u`, 'admin', `division:${p}d1`)],
    checks: (p) => [{ req: inTenant(`user:${p}u`, `${p}t`, 'can_read', 'configuration'), before: true, after: false }],
    change: (p) => ({ deletes: [tuple(`user:${p}u`, 'admin', `division:${p}d1`)] }),
  },
  {
    name: 'role grant at nested division',
    setup: (p) => base(p),
    checks: (p) => [
      { req: ask(`user:${p}u`, 'can_create_tenant', `division:${p}d2`), before: false, after: true },
      { req: inTenant(`user:${p}u`, `${p}t`, 'can_write', 'tel_group'), before: false, after: true },
      { req: ask(`user:${p}u`, 'can_view', `division:${p}d1`), before: false, after: false },
    ],
    change: (p) => ({ writes: [tuple(`user:${p}u`, 'admin', `division:${p}d2`)] }),
  },
  {
    name: 'role revoke at nested division',
    setup: (p) => [...base(p), tuple(`user:${p}u`, 'admin', `division:${p}d2`)],
    checks: (p) => [{ req: inTenant(`user:${p}u`, `${p}t`, 'can_read', 'report'), before: true, after: false }],
    change: (p) => ({ deletes: [tuple(`user:${p}u`, 'admin', `division:${p}d2`)] }),
  },
  {
    name: 'role grant at tenant',
    setup: (p) => base(p),
    checks: (p) => [
      { req: inTenant(`user:${p}u`, `${p}t`, 'can_read', 'phone_number'), before: false, after: true },
      { req: inTenant(`user:${p}u`, `${p}t`, 'can_write', 'phone_number'), before: false, after: false },
      { req: ask(`user:${p}u`, 'can_view', `tenant:${p}t`), before: false, after: true },
    ],
    change: (p) => ({ writes: [tuple(`user:${p}u`, 'member', `tenant:${p}t`)] }),
  },
  {
    name: 'role revoke at tenant',
    setup: (p) => [...base(p), tuple(`user:${p}u`, 'admin', `tenant:${p}t`)],
    checks: (p) => [
      { req: inTenant(`user:${p}u`, `${p}t`, 'can_write', 'routing_rule'), before: true, after: false },
      { req: ask(`user:${p}u`, 'can_assign_member', `tenant:${p}t`), before: true, after: false },
    ],
    change: (p) => ({ deletes: [tuple(`user:${p}u`, 'admin', `tenant:${p}t`)] }),
  },
  {
    name: 'structural link organization#platform',
    setup: (p) => [...base(p, { platformLink: false }), tuple(`user:${p}plat`, 'admin', 'platform:root')],
    checks: (p) => [{ req: ask(`user:${p}plat`, 'can_view', `organization:${p}o`), before: false, after: true }],
    change: (p) => ({ writes: [tuple('platform:root', 'platform', `organization:${p}o`)] }),
  },
  {
    name: 'structural unlink division#organization',
    setup: (p) => [...base(p), tuple(`user:${p}u`, 'admin', `organization:${p}o`), tuple(`organization:${p}o`, 'organization', `division:${p}dx`)],
    checks: (p) => [{ req: ask(`user:${p}u`, 'can_view', `division:${p}dx`), before: true, after: false }],
    change: (p) => ({ deletes: [tuple(`organization:${p}o`, 'organization', `division:${p}dx`)] }),
  },
  {
    name: 'structural link division#parent',
    setup: (p) => [...base(p), tuple(`user:${p}u`, 'admin', `division:${p}d3`)],
    checks: (p) => [{ req: ask(`user:${p}u`, 'can_move', `division:${p}dy`), before: false, after: true }],
    change: (p) => ({ writes: [tuple(`division:${p}d3`, 'parent', `division:${p}dy`)] }),
  },
  {
    name: 'structural link tenant#division',
    setup: (p) => [...base(p), tuple(`user:${p}u`, 'admin', `division:${p}d1`)],
    checks: (p) => [
      { req: ask(`user:${p}u`, 'can_delete', `tenant:${p}tz`), before: false, after: true },
      { req: inTenant(`user:${p}u`, `${p}tz`, 'can_write', 'extension'), before: false, after: true },
    ],
    change: (p) => ({ writes: [tuple(`division:${p}d2`, 'division', `tenant:${p}tz`)] }),
  },
  {
    name: 'structural link and unlink <resource>#tenant (stored, beside the contextual link)',
    setup: (p) => [...base(p), tuple(`division:${p}d3`, 'division', `tenant:${p}tw`), tuple(`user:${p}u`, 'admin', `tenant:${p}tw`)],
    checks: (p) => [{ req: inTenant(`user:${p}u`, `${p}t`, 'can_write', 'agent', '9'), before: false, after: true }],
    change: (p) => ({ writes: [tuple(`tenant:${p}tw`, 'tenant', `agent:${p}t/9`)] }),
  },
  {
    name: 'structural unlink <resource>#tenant (the only way in; the tenant itself says no)',
    setup: (p) => [...base(p), tuple(`division:${p}d3`, 'division', `tenant:${p}tw`), tuple(`user:${p}u`, 'admin', `tenant:${p}tw`), tuple(`tenant:${p}tw`, 'tenant', `agent:${p}t/9`)],
    checks: (p) => [
      { req: inTenant(`user:${p}u`, `${p}t`, 'can_write', 'agent', '9'), before: true, after: false },
      { req: inTenant(`user:${p}u`, `${p}t`, 'can_write', 'agent', '8'), before: false, after: false },
    ],
    change: (p) => ({ deletes: [tuple(`tenant:${p}tw`, 'tenant', `agent:${p}t/9`)] }),
  },
  {
    name: 'move of a division',
    setup: (p) => [...base(p), tuple(`user:${p}a1`, 'admin', `division:${p}d1`), tuple(`user:${p}a3`, 'admin', `division:${p}d3`)],
    checks: (p) => [
      { req: ask(`user:${p}a1`, 'can_manage_resources', `tenant:${p}t`), before: true, after: false },
      { req: ask(`user:${p}a3`, 'can_manage_resources', `tenant:${p}t`), before: false, after: true },
      { req: inTenant(`user:${p}a3`, `${p}t`), before: false, after: true },
      { req: ask(`user:${p}a3`, 'can_move', `division:${p}d2`), before: false, after: true },
    ],
    change: (p) => ({ deletes: [tuple(`division:${p}d1`, 'parent', `division:${p}d2`)], writes: [tuple(`division:${p}d3`, 'parent', `division:${p}d2`)] }),
  },
  {
    name: 'move of a tenant',
    setup: (p) => [...base(p), tuple(`user:${p}a2`, 'admin', `division:${p}d2`), tuple(`user:${p}a3`, 'admin', `division:${p}d3`)],
    checks: (p) => [
      { req: inTenant(`user:${p}a2`, `${p}t`), before: true, after: false },
      { req: inTenant(`user:${p}a3`, `${p}t`), before: false, after: true },
      { req: ask(`user:${p}a3`, 'can_rename', `tenant:${p}t`), before: false, after: true },
    ],
    change: (p) => ({ deletes: [tuple(`division:${p}d2`, 'division', `tenant:${p}t`)], writes: [tuple(`division:${p}d3`, 'division', `tenant:${p}t`)] }),
  },
];

async function answers(r: Replica, reqs: CheckRequest[]): Promise<boolean[]> {
  const out: boolean[] = [];
  for (const req of reqs) out.push((await r.cache.authorizer.check(req)).allowed);
  return out;
}

/** Cache every decision on `r` and prove it is served from memory. */
async function warm(r: Replica, reqs: CheckRequest[], expected: boolean[]): Promise<void> {
  expect(await answers(r, reqs)).toEqual(expected);
  const layersOk = await waitFor(async () => {
    const layers: string[] = [];
    for (const req of reqs) layers.push((await r.cache.authorizer.check(req)).layer);
    return layers.every((l) => l === 'l1');
  }, 3000);
  expect(layersOk).toBe(true);
}

describe('every kind of write invalidates what it changes', () => {
  let store: TestStore;
  let A: Replica;
  let B: Replica;
  let C: Replica;
  let D: Replica;

  beforeAll(async () => {
    store = await createTestStore();
    const redisUrl = inject('redisUrl');
    [A, B] = await startReplicaPair(store, { redisUrl, poller: false });
    // Replicas learning about direct writes only from the changelog.
    [C, D] = await startReplicaPair(store, { redisUrl, pollMs: 200 });
  });
  afterAll(() => closeReplicas(A, B, C, D));

  describe.each(CASES.map((c, i) => [c.name, c, i] as const))('%s', (_name, c, i) => {
    it('through tiergate: both replicas answer anew on the next check', async () => {
      const p = `w${i}`;
      await store.client.write({ writes: c.setup(p) });
      const checks = c.checks(p);
      const reqs = checks.map((x) => x.req);
      for (const r of [A, B]) await warm(r, reqs, checks.map((x) => x.before));
      await writeThrough(store.client, A, c.change(p));
      expect(await answers(B, reqs)).toEqual(checks.map((x) => x.after));
      expect(await answers(A, reqs)).toEqual(checks.map((x) => x.after));
    });

    it('straight in OpenFGA: both replicas answer anew within poll interval + 1 s', async () => {
      const p = `r${i}`;
      await store.client.write({ writes: c.setup(p) });
      const checks = c.checks(p);
      const reqs = checks.map((x) => x.req);
      for (const r of [C, D]) await warm(r, reqs, checks.map((x) => x.before));
      const change = c.change(p);
      await store.client.write({ writes: change.writes ?? [], deletes: change.deletes ?? [] });
      const started = Date.now();
      for (const r of [C, D]) {
        const ok = await waitFor(async () => JSON.stringify(await answers(r, reqs)) === JSON.stringify(checks.map((x) => x.after)), 1200, 10);
        expect(ok).toBe(true);
      }
      expect(Date.now() - started).toBeLessThanOrEqual(1200 + 100);
    });
  });
});

describe('a new model', () => {
  let store: TestStore;
  let A: Replica;
  let B: Replica;
  let pinned: string;
  let engines: Array<ReturnType<typeof engineFor>>;

  beforeAll(async () => {
    store = await createTestStore();
    pinned = store.authorizationModelId;
    const redisUrl = inject('redisUrl');
    const start = async () => {
      const engine = engineFor(store);
      const r = await startReplica(store, { redisUrl, poller: false, engine, modelId: () => pinned });
      return { r, engine };
    };
    const a = await start();
    const b = await start();
    A = a.r;
    B = b.r;
    engines = [a.engine, b.engine];
  });
  afterAll(() => closeReplicas(A, B));

  it('changes every key and the global epoch: both replicas answer by the new model', async () => {
    await store.client.write({ writes: [...base('m'), tuple('user:mmember', 'member', 'tenant:mt')] });
    const req = inTenant('user:mmember', 'mt', 'can_read', 'report');
    for (const r of [A, B]) await warm(r, [req], [false]);

    // the same model, except that tenant members may now read reports
    const text = readFileSync(MODEL_FILE, 'utf8');
    const changed = text.replace(/(type tenant[\s\S]*?define can_read_reports: )admin/, '$1admin or member');
    expect(changed).not.toBe(text);
    const next = parseModel(changed);
    expect(next.hash).not.toBe(loadModel().hash);
    const { authorization_model_id } = await store.client.writeAuthorizationModel(next.request);

    // what the gateway does after bootstrap wrote a model: pin it, then tell the cache
    pinned = authorization_model_id;
    for (const e of engines) e.pinModel(authorization_model_id);
    await A.cache.invalidator.modelChanged();

    expect((await B.cache.authorizer.check(req)).allowed).toBe(true);
    expect((await A.cache.authorizer.check(req)).allowed).toBe(true);
  });

  it('modelChanged alone (same id) still invalidates every cached decision on every replica', async () => {
    const req = inTenant('user:mmember', 'mt', 'can_read', 'agent');
    for (const r of [A, B]) await warm(r, [req], [true]);
    await A.cache.invalidator.modelChanged();
    expect((await B.cache.authorizer.check(req)).layer).not.toBe('l1');
  });
});
