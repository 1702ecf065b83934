// The cross-level audit's in-memory side: counting per (hour, subject, node, rule,
// method), resolving once per key and flush, bounded keys, retry of a failed resolution,
// and the write on close. The database is a recorder of the upserts it is sent.
import { describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/index.js';
import { createCrossLevelAudit, type AllowedAccess, type Resolution, type RoleSourceResolver } from '../../src/admin/cross-level.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

const HOUR = 3_600_000;

function access(over: Partial<AllowedAccess> = {}): AllowedAccess {
  return {
    subject: 'user:olivia',
    rule: 'agents.list',
    permission: 'can_read_operational',
    object: 'tenant:acme-sales',
    contextualTuples: [],
    scope: { type: 'tenant', id: 'acme-sales' },
    method: 'GET',
    route: '/api/v1/tenants/{tenantId}/agents',
    ...over,
  };
}

function recorder(): { db: Db; writes: unknown[][] } {
  const writes: unknown[][] = [];
  const db = {
    query: async (_sql: string, params: unknown[] = []) => {
      writes.push(params);
      return { rows: [], rowCount: 1 };
    },
  } as unknown as Db;
  return { db, writes };
}

const fromOrganization: Resolution = {
  source: { node: 'organization:acme', role: 'admin', breakGlass: false },
  path: ['organization:acme', 'division:emea', 'tenant:acme-sales'],
};

function resolver(answer: (a: AllowedAccess) => Resolution | Error): RoleSourceResolver & { calls: AllowedAccess[] } {
  const calls: AllowedAccess[] = [];
  return {
    calls,
    resolve: async (a) => {
      calls.push(a);
      const r = answer(a);
      if (r instanceof Error) throw r;
      return r;
    },
  };
}

describe('createCrossLevelAudit', () => {
  it('counts 10,000 accesses of one key as one resolution and one row', async () => {
    const { db, writes } = recorder();
    const r = resolver(() => fromOrganization);
    let t = 5 * HOUR + 1000;
    const audit = createCrossLevelAudit({ db, resolver: r, now: () => t, flushMs: 60_000 });
    for (let i = 0; i < 10_000; i++) {
      audit.record(access());
      t++;
    }
    await audit.close();
    expect(r.calls).toHaveLength(1);
    expect(writes).toHaveLength(1);
    const [hour, subject, node, roleNode, role, breakGlass, rule, method, route, permission, path, first, last, count] = writes[0]!;
    expect({ hour, subject, node, roleNode, role, breakGlass, rule, method, route, permission, path, count }).toEqual({
      hour: new Date(5 * HOUR).toISOString(),
      subject: 'user:olivia',
      node: 'tenant:acme-sales',
      roleNode: 'organization:acme',
      role: 'admin',
      breakGlass: false,
      rule: 'agents.list',
      method: 'GET',
      route: '/api/v1/tenants/{tenantId}/agents',
      permission: 'can_read_operational',
      path: fromOrganization.path,
      count: 10_000,
    });
    expect(first).toBe(new Date(5 * HOUR + 1000).toISOString());
    expect(last).toBe(new Date(5 * HOUR + 1000 + 9_999).toISOString());
  });

  it('keeps hours, subjects, tenants, rules and methods apart', async () => {
    const { db, writes } = recorder();
    let t = 7 * HOUR - 10;
    const audit = createCrossLevelAudit({ db, resolver: resolver(() => fromOrganization), now: () => t, flushMs: 60_000 });
    audit.record(access());
    t += 20; // the next hour
    audit.record(access());
    audit.record(access({ subject: 'user:dana' }));
    audit.record(access({ scope: { type: 'tenant', id: 'apac-sales' } }));
    audit.record(access({ rule: 'queues.list' }));
    audit.record(access({ method: 'HEAD' }));
    audit.record(access());
    await audit.flush();
    expect(writes).toHaveLength(6);
    expect(writes.map((w) => w[13]).sort()).toEqual([1, 1, 1, 1, 1, 2]);
  });

  it('writes nothing for an access that is not cross-level', async () => {
    const { db, writes } = recorder();
    const audit = createCrossLevelAudit({ db, resolver: resolver(() => ({ source: undefined, path: [] })), flushMs: 60_000 });
    audit.record(access({ subject: 'user:tom' }));
    await audit.close();
    expect(writes).toEqual([]);
  });

  it('holds at most maxKeys keys and reports what it dropped', async () => {
    const { db, writes } = recorder();
    const lost: number[] = [];
    const audit = createCrossLevelAudit({ db, resolver: resolver(() => fromOrganization), maxKeys: 2, flushMs: 60_000, onError: (_e, n) => lost.push(n) });
    audit.record(access({ subject: 'user:a' }));
    audit.record(access({ subject: 'user:b' }));
    audit.record(access({ subject: 'user:c' }));
    audit.record(access({ subject: 'user:c' }));
    audit.record(access({ subject: 'user:a' })); // a known key is still counted
    await audit.close();
    expect(lost).toEqual([2]);
    expect(writes.map((w) => [w[1], w[13]]).sort()).toEqual([
      ['user:a', 2],
      ['user:b', 1],
    ]);
  });

  it('retries a failed resolution at the next flush with its count, and reports it lost on close', async () => {
    const { db, writes } = recorder();
    let failing = true;
    const errors: number[] = [];
    const r = resolver(() => (failing ? new Error('OpenFGA unavailable') : fromOrganization));
    const audit = createCrossLevelAudit({ db, resolver: r, flushMs: 60_000, onError: (_e, n) => errors.push(n) });
    audit.record(access());
    audit.record(access());
    await audit.flush();
    expect(writes).toEqual([]);
    expect(errors).toEqual([0]); // kept for the next flush
    audit.record(access());
    failing = false;
    await audit.flush();
    expect(writes.map((w) => w[13])).toEqual([3]);

    failing = true;
    audit.record(access());
    await audit.close();
    expect(errors).toEqual([0, 1]);
  });
});
