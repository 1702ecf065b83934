// Admin writes racing each other through the real gateway, on PGlite and on a real
// PostgreSQL (only PostgreSQL runs transactions truly side by side): grants,
// revocations, deletes, moves and creates fired together in shuffled order with
// small random delays. Whatever the interleaving, afterwards:
//   - no tuple names a node that does not exist, and the structural tuples are
//     exactly the database's parent columns;
//   - every organization has an admin;
//   - the audit's successful entries, replayed, give exactly OpenFGA's final role
//     tuples, and every entry is a real change (`changed` agrees with it);
//   - the gateway decides as OpenFGA does;
//   - nothing answered 5xx.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../src/db/index.js';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../../src/stack/postgres-server.js';
import { useCleanup } from '../support/cleanup.js';
import { call, type JsonResponse } from '../support/json-call.js';
import { startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

type Kind = 'organization' | 'division' | 'tenant';
interface Tuple {
  user: string;
  relation: string;
  object: string;
}
const key = (t: Tuple) => `${t.user} ${t.relation} ${t.object}`;
const ROLE_RELATIONS = new Set(['admin', 'member']);
const USERS = ['u1', 'u2', 'u3', 'u4'];

/** mulberry32: a small seeded generator, so a failing interleaving's seed can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const database of ['pglite', 'postgresql'] as const) {
  describe(`concurrent admin writes on ${database}`, () => {
    let s: TestStack;
    let pgServer: ThrowawayPostgres | undefined;
    let pgDb: Db | undefined;

    async function admin(sub: string, method: string, path: string, body?: unknown): Promise<JsonResponse> {
      return call(s.gatewayUrl, method, `/admin/v1${path}`, { auth: await s.authHeader(sub), ...(body !== undefined ? { body } : {}) });
    }
    async function ok(sub: string, method: string, path: string, body?: unknown, status = 201): Promise<void> {
      const r = await admin(sub, method, path, body);
      expect({ status: r.status, body: r.status === status ? 'ok' : r.body }).toEqual({ status, body: 'ok' });
    }

    /** Every tuple in the store. */
    async function allTuples(): Promise<Tuple[]> {
      const out: Tuple[] = [];
      let continuationToken: string | undefined;
      do {
        const page = await s.store.client.read({}, { pageSize: 100, ...(continuationToken ? { continuationToken } : {}) });
        out.push(...page.tuples.map((t) => ({ user: t.key.user, relation: t.key.relation, object: t.key.object })));
        continuationToken = page.continuation_token || undefined;
      } while (continuationToken);
      return out;
    }

    async function liveNodes(): Promise<Map<string, { parent: string | null }>> {
      const nodes = new Map<string, { parent: string | null }>();
      for (const r of (await s.db.query<{ id: string }>('select id from admin_organizations')).rows) nodes.set(`organization:${r.id}`, { parent: null });
      const divisions = await s.db.query<{ id: string; organization_id: string; parent_division_id: string | null }>(
        'select id, organization_id, parent_division_id from admin_divisions',
      );
      for (const r of divisions.rows) {
        nodes.set(`division:${r.id}`, { parent: r.parent_division_id ? `division:${r.parent_division_id}` : `organization:${r.organization_id}` });
      }
      for (const r of (await s.db.query<{ id: string; division_id: string }>('select id, division_id from admin_tenants')).rows) {
        nodes.set(`tenant:${r.id}`, { parent: `division:${r.division_id}` });
      }
      return nodes;
    }

    /** The invariants that must hold whatever the interleaving was. */
    async function expectConsistent(label: string): Promise<Tuple[]> {
      const [tuples, nodes] = await Promise.all([allTuples(), liveNodes()]);
      const isNode = (ref: string) => /^(organization|division|tenant):/.test(ref);
      // No tuple on (or from) a node that does not exist.
      const dangling = tuples.filter((t) => (isNode(t.object) && !nodes.has(t.object)) || (isNode(t.user) && !nodes.has(t.user)));
      expect(dangling.map(key), `${label}: tuples on missing nodes`).toEqual([]);
      // The structural tuples are exactly the database's links.
      const structural = tuples.filter((t) => !ROLE_RELATIONS.has(t.relation) && isNode(t.object)).map(key).sort();
      const expected: string[] = [];
      const divisionRows = await s.db.query<{ id: string; organization_id: string }>('select id, organization_id from admin_divisions');
      const orgOf = new Map(divisionRows.rows.map((r) => [r.id, r.organization_id]));
      for (const [ref, { parent }] of nodes) {
        if (ref.startsWith('organization:')) expected.push(`platform:root platform ${ref}`);
        else if (ref.startsWith('tenant:')) expected.push(`${parent} division ${ref}`);
        else {
          expected.push(`organization:${orgOf.get(ref.slice('division:'.length))} organization ${ref}`);
          if (parent!.startsWith('division:')) expected.push(`${parent} parent ${ref}`);
        }
      }
      expect(structural, `${label}: structural tuples`).toEqual(expected.sort());
      // Every organization keeps an admin.
      for (const ref of nodes.keys()) {
        if (!ref.startsWith('organization:')) continue;
        expect(tuples.some((t) => t.object === ref && t.relation === 'admin'), `${label}: ${ref} has no admin`).toBe(true);
      }
      return tuples.filter((t) => ROLE_RELATIONS.has(t.relation) && isNode(t.object));
    }

    interface AuditRow {
      seq: string;
      action: string;
      target: string;
      request_id: string | null;
      before: { role?: string; user?: string; grants?: Tuple[] } | null;
      after: { role?: string; user?: string } | null;
    }
    async function successesSince(seq: string): Promise<AuditRow[]> {
      const r = await s.db.query<AuditRow>(
        `select seq::text as seq, action, target, request_id, before, after from admin_audit
         where outcome = 'success' and admin_audit.seq > $1::bigint order by admin_audit.seq`,
        [seq],
      );
      return r.rows;
    }
    const lastSeq = async () => (await s.db.query<{ seq: string }>('select coalesce(max(seq), 0)::text as seq from admin_audit')).rows[0]!.seq;

    /**
     * Replays the successful entries over `start`: every grant must add a tuple
     * that was not there, every revoke remove one that was, every delete remove
     * exactly the grants it lists. Returns the role tuples the audit says exist.
     */
    function replay(start: Tuple[], rows: AuditRow[]): Set<string> {
      const roles = new Set(start.map(key));
      for (const e of rows) {
        if (e.action === 'role.grant' || e.action === 'role.revoke') {
          const grant = e.action === 'role.grant';
          const change = grant ? e.after! : e.before!;
          const k = `${change.user} ${change.role} ${e.target}`;
          expect(roles.has(k), `seq ${e.seq}: ${e.action} ${k} is no change`).toBe(!grant);
          if (grant) roles.add(k);
          else roles.delete(k);
        } else if (e.action.endsWith('.delete')) {
          const onNode = [...roles].filter((k) => k.endsWith(` ${e.target}`)).sort();
          expect((e.before?.grants ?? []).map(key).sort(), `seq ${e.seq}: ${e.action} ${e.target} lists what it removed`).toEqual(onNode);
          for (const k of onNode) roles.delete(k);
        }
      }
      return roles;
    }

    beforeAll(async () => {
      if (database === 'postgresql') {
        pgServer = await startThrowawayPostgres();
        pgDb = await openDb({ url: pgServer.url });
      }
      s = await startTestStack({ platformAdmins: ['pat'], ...(pgDb ? { db: pgDb } : {}) });
      await ok('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['user:ada'] });
      await ok('pat', 'POST', '/organizations', { id: 'globex', name: 'Globex', admins: ['user:gina'] });
      await ok('pat', 'POST', '/organizations', { id: 'duo', name: 'Duo', admins: ['user:olivia', 'user:oscar'] });
      await ok('ada', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
      await ok('ada', 'POST', '/organizations/acme/divisions', { id: 'd2', name: 'D2' });
      await ok('ada', 'POST', '/divisions/d1/divisions', { id: 'd1a', name: 'D1a' });
      await ok('gina', 'POST', '/organizations/globex/divisions', { id: 'g1', name: 'G1' });
      await ok('gina', 'POST', '/organizations/globex/divisions', { id: 'g2', name: 'G2' });
    }, 60_000);

    afterAll(async () => {
      await s?.stop();
      await pgDb?.close();
      pgServer?.stop();
    });

    it('interleaved grants, revocations, deletes, moves and creates leave OpenFGA, the database, the audit and the gateway in step', async () => {
      const seed = Date.now() >>> 0;
      const rnd = prng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
      const label = `seed ${seed} on ${database}`;

      // Every node ever created here (deleted ones stay: operations keep aiming at them).
      const known: { ref: string; org: string }[] = [
        { ref: 'division:d1', org: 'acme' },
        { ref: 'division:d2', org: 'acme' },
        { ref: 'division:d1a', org: 'acme' },
        { ref: 'division:g1', org: 'globex' },
        { ref: 'division:g2', org: 'globex' },
      ];
      const deleted: string[] = [];
      const divisions = (org?: string) => known.filter((n) => n.ref.startsWith('division:') && (!org || n.org === org));
      const pathOf = (ref: string) => `/${ref.replace(':', 's/')}`;
      /** Each organization's standing admin acts in it (platform admins hold no role inside). */
      const actor = (org: string) => (org === 'acme' ? 'ada' : 'gina');

      const startRoles = await expectConsistent(`${label} (before)`);
      const fromSeq = await lastSeq();
      const roleAnswers: { changed: boolean }[] = [];
      const unexpected: string[] = [];
      const expectStatus = (what: string, r: JsonResponse, allowed: number[]) => {
        if (!allowed.includes(r.status)) unexpected.push(`${what}: ${r.status} ${r.text.slice(0, 300)}`);
      };

      const ROUNDS = 100;
      for (let round = 0; round < ROUNDS; round += 1) {
        const ops: (() => Promise<void>)[] = [];
        ops.push(async () => {
          const parent = pick(divisions());
          const id = `t${round}`;
          const r = await admin(actor(parent.org), 'POST', `${pathOf(parent.ref)}/tenants`, { id, name: `T ${round}` });
          expectStatus(`create tenant ${id} under ${parent.ref}`, r, [201, 403, 404]);
          if (r.status === 201) known.push({ ref: `tenant:${id}`, org: parent.org });
        });
        ops.push(async () => {
          const org = pick(['acme', 'globex']);
          const parent = rnd() < 0.4 ? { ref: `organization:${org}`, org } : pick(divisions(org));
          const id = `x${round}`;
          const r = await admin(actor(parent.org), 'POST', `${pathOf(parent.ref)}/divisions`, { id, name: `X ${round}` });
          expectStatus(`create division ${id} under ${parent.ref}`, r, [201, 403, 404]);
          if (r.status === 201) known.push({ ref: `division:${id}`, org: parent.org });
        });
        for (let i = 0; i < 3; i += 1) {
          ops.push(async () => {
            const node = pick(known);
            const role = node.ref.startsWith('tenant:') && rnd() < 0.5 ? 'member' : 'admin';
            const grant = rnd() < 0.6;
            const r = await admin(actor(node.org), grant ? 'PUT' : 'DELETE', `${pathOf(node.ref)}/roles/${role}/${pick(USERS)}`);
            expectStatus(`${grant ? 'grant' : 'revoke'} ${role} on ${node.ref}`, r, [200, 403, 404]);
            if (r.status === 200) roleAnswers.push({ changed: r.body.changed });
          });
        }
        // duo's two admins revoke and grant each other; the last one never goes.
        for (const [by, user] of [['olivia', 'oscar'], ['oscar', 'olivia'], [pick(['olivia', 'oscar']), pick(['olivia', 'oscar'])]] as const) {
          ops.push(async () => {
            const grant = rnd() < 0.4;
            const r = await admin(by, grant ? 'PUT' : 'DELETE', `/organizations/duo/roles/admin/${user}`);
            expectStatus(`${by} ${grant ? 'grants' : 'revokes'} duo admin ${user}`, r, [200, 403, 409]);
            if (r.status === 200) roleAnswers.push({ changed: r.body.changed });
          });
        }
        for (let i = 0; i < 2; i += 1) {
          ops.push(async () => {
            const node = pick(known.slice(2));
            const r = await admin(actor(node.org), 'DELETE', pathOf(node.ref));
            expectStatus(`delete ${node.ref}`, r, [200, 403, 404, 409]);
            if (r.status === 200) deleted.push(node.ref);
          });
        }
        ops.push(async () => {
          const node = pick(known.filter((n) => n.ref.startsWith(rnd() < 0.5 ? 'tenant:' : 'division:')));
          if (!node) return;
          const choices = node.ref.startsWith('tenant:') ? divisions(node.org) : [{ ref: `organization:${node.org}`, org: node.org }, ...divisions(node.org)];
          const to = pick(choices);
          const r = await admin(actor(node.org), 'POST', `${pathOf(node.ref)}/move`, { parent: to.ref });
          expectStatus(`move ${node.ref} to ${to.ref}`, r, [200, 403, 404, 409, 422]);
        });
        if (deleted.length > 0) {
          ops.push(async () => {
            const ref = pick(deleted);
            const [kind, id] = ref.split(':') as [Kind, string];
            const parent = pick(divisions());
            const r = await admin(actor(parent.org), 'POST', `${pathOf(parent.ref)}/${kind === 'tenant' ? 'tenants' : 'divisions'}`, { id, name: 'again' });
            expectStatus(`create ${ref} again`, r, [403, 404, 409]);
            if (r.status === 409 && r.body.type !== 'https://tiergate.dev/problems/id-retired') unexpected.push(`create ${ref} again: ${r.text}`);
          });
        }
        // Shuffled, each after a small random delay.
        for (let i = ops.length - 1; i > 0; i -= 1) {
          const j = Math.floor(rnd() * (i + 1));
          [ops[i], ops[j]] = [ops[j]!, ops[i]!];
        }
        await Promise.all(ops.map(async (op) => {
          await sleep(Math.floor(rnd() * 5));
          await op();
        }));
      }

      expect(unexpected, label).toEqual([]);
      const finalRoles = await expectConsistent(label);
      const rows = await successesSince(fromSeq);
      const replayed = replay(startRoles, rows);
      expect([...replayed].sort(), `${label}: the audit replayed gives OpenFGA's role tuples`).toEqual(finalRoles.map(key).sort());
      // `changed: true` answers and the audit's role entries are the same changes.
      const roleEntries = rows.filter((e) => e.action === 'role.grant' || e.action === 'role.revoke').length;
      expect(roleAnswers.filter((a) => a.changed).length, label).toBe(roleEntries);
      // Enough happened for the run to mean something.
      expect(deleted.length, label).toBeGreaterThan(3);
      expect(roleEntries, label).toBeGreaterThan(20);

      // The gateway decides as OpenFGA does, for live and deleted tenants alike.
      const tenants = known.filter((n) => n.ref.startsWith('tenant:')).map((n) => n.ref.slice('tenant:'.length));
      const subjects = [...USERS, 'ada', 'gina'];
      const sample = Array.from({ length: 60 }, () => ({ sub: pick(subjects), tenant: pick(tenants) }));
      for (const { sub, tenant } of sample) {
        const [r, fga] = await Promise.all([
          call(s.gatewayUrl, 'GET', `/api/v1/tenants/${tenant}/configurations`, { auth: await s.authHeader(sub) }),
          s.store.client.check({ user: `user:${sub}`, relation: 'can_read_configuration', object: `tenant:${tenant}` }),
        ]);
        expect({ sub, tenant, status: r.status }, label).toEqual({ sub, tenant, status: fga.allowed ? 200 : 403 });
      }
    }, 120_000);

    it('a division delete racing a tenant create under it: one wins, the other is 404 or 409, never 500 and never an orphan', async () => {
      for (let i = 0; i < 20; i += 1) {
        await ok('ada', 'POST', '/organizations/acme/divisions', { id: `race-d${i}`, name: 'Race' });
        const ops = [
          () => admin('ada', 'DELETE', `/divisions/race-d${i}`),
          () => admin('ada', 'POST', `/divisions/race-d${i}/tenants`, { id: `race-t${i}`, name: 'Race' }),
        ];
        const order = i % 2 === 0 ? ops : [...ops].reverse();
        const [a, b] = await Promise.all(
          order.map(async (op, k) => {
            await sleep(k * (i % 3));
            return op();
          }),
        );
        const [del, create] = i % 2 === 0 ? [a!, b!] : [b!, a!];
        const pair = `${del.status}/${create.status}`;
        expect(['200/404', '200/403', '409/201'], `delete/create ${pair}: ${del.text} ${create.text}`).toContain(pair);
        if (create.status === 201) {
          expect(del.body.detail).toBe(`division:race-d${i} still has 0 division(s) and 1 tenant(s); delete or move them first`);
        }
      }
      await expectConsistent(`division delete racing a tenant create on ${database}`);
      const tenants = await s.db.query<{ id: string }>("select t.id from admin_tenants t left join admin_divisions d on d.id = t.division_id where t.id like 'race-t%' and d.id is null");
      expect(tenants.rows).toEqual([]);
    }, 60_000);

    it('two concurrent revocations of an organization\'s last two admins: exactly one 200, one 409, one admin left', async () => {
      for (let i = 0; i < 10; i += 1) {
        const org = `last${i}`;
        await ok('pat', 'POST', '/organizations', { id: org, name: 'Last', admins: ['user:ann', 'user:bob'] });
        const fromSeq = await lastSeq();
        // Each steps down at once (each stays allowed to until the other's revocation is decided).
        const answers = await Promise.all(['ann', 'bob'].map((u) => admin(u, 'DELETE', `/organizations/${org}/roles/admin/${u}`)));
        expect(answers.map((r) => r.status).sort(), answers.map((r) => r.text).join(' ')).toEqual([200, 409]);
        const refused = answers.find((r) => r.status === 409)!;
        expect(refused.body.detail).toMatch(new RegExp(`^user:(ann|bob) is the last admin of organization:${org}; grant another admin first$`));
        const admins = (await s.store.client.read({ object: `organization:${org}`, relation: 'admin' })).tuples.map((t) => t.key.user);
        expect(admins).toHaveLength(1);
        const revokes = (await successesSince(fromSeq)).filter((e) => e.action === 'role.revoke');
        expect(revokes.map((e) => e.before?.user)).toEqual(['user:ann', 'user:bob'].filter((u) => !admins.includes(u)));
      }
    }, 60_000);
  });
}
