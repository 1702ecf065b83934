// The access matrix of the foundation issue, driven over real HTTP through the
// gateway with real tokens: every role × every route kind × tenants placed where
// each rule of the matrix has a near miss (same division, sibling division, one-
// and two-level nested divisions, another organization), plus the division and
// organization reports. The hierarchy is built once, through the admin API.
//
//   platform admin pat
//   organization:acme (admin olivia)
//     division:emea (admin dana)
//       tenant:emea-sales     (admin tom, member uma)
//       tenant:emea-support
//       division:emea-north (admin sam)            nested, level 1
//         tenant:north-sales
//         division:north-metro                     nested, level 2
//           tenant:metro-ops
//     division:apac
//       tenant:apac-sales
//   organization:globex (admin gina)
//     division:gx
//       tenant:gx-sales
//   ozzy: no role anywhere
import { beforeAll, describe, expect, it } from 'vitest';
import { RESOURCE_KINDS } from '../../src/shared/resource-kinds.js';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import { insertCallRecord } from '../../src/tenant-service/repository.js';
import { useCleanup } from '../support/cleanup.js';
import { call, type JsonResponse } from '../support/json-call.js';
import { startTestStack, type TestStack } from '../support/test-stack.js';
import { inBatches } from '../../load/lib/concurrency.js';
import {
  bodyFor,
  buildMatrixHierarchy,
  CHAINS,
  DIVISIONS,
  expectedStatus,
  ORGANIZATIONS,
  ROLES,
  SEED,
  TENANTS,
  UNDER,
  WHERE,
  type Role,
  type TenantId,
} from '../support/access-matrix.js';

useCleanup();

// ---------------------------------------------------------------- running requests and reporting

let s: TestStack;

interface Outcome {
  line: string;
  expected: number;
  res: JsonResponse;
  permission?: string;
}

async function send(sub: string, method: string, path: string, body?: unknown): Promise<JsonResponse> {
  return call(s.gatewayUrl, method, path, { auth: await s.authHeader(sub), ...(body !== undefined ? { body } : {}) });
}

/** What is wrong with an outcome, in one readable line; undefined when it is right. */
function mismatch(o: Outcome): string | undefined {
  const shown = () => (typeof o.res.body === 'string' ? o.res.body.slice(0, 160) : JSON.stringify(o.res.body).slice(0, 160));
  if (o.res.status !== o.expected) return `${o.line}: expected ${o.expected}, got ${o.res.status} ${shown()}`;
  if (o.expected === 403) {
    // A denial is problem+json naming the missing permission and nothing else.
    if (!o.res.contentType.startsWith(PROBLEM_CONTENT_TYPE)) return `${o.line}: 403 is not problem+json (${o.res.contentType})`;
    if (o.res.body.status !== 403 || o.res.body.permission !== o.permission) {
      return `${o.line}: 403 should name permission ${o.permission}, got ${shown()}`;
    }
    const leaked = TENANTS.filter((t) => !o.line.includes(`/${t}/`) && o.res.text.includes(t));
    if (leaked.length > 0) return `${o.line}: 403 body mentions other tenants ${leaked.join(', ')}`;
  }
  if (o.expected === 405 && o.res.contentType.startsWith(PROBLEM_CONTENT_TYPE) === false) return `${o.line}: 405 is not problem+json`;
  return undefined;
}

async function runChains(role: Role, tenant: TenantId): Promise<Outcome[]> {
  const access = role.tenants[tenant] ?? 'none';
  const own = `m-${role.sub}`;
  const chains = CHAINS.map((chain) => async () => {
    const out: Outcome[] = [];
    for (const rc of chain) {
      const path = rc.path(tenant, own);
      const res = await send(role.sub, rc.method, path, rc.body?.(own));
      out.push({ line: `${role.sub} (${role.role}) ${rc.name}: ${rc.method} ${path}`, expected: expectedStatus(access, rc), res, ...(rc.permission ? { permission: rc.permission } : {}) });
    }
    return out;
  });
  return (await inBatches(chains, 6, (run) => run())).flat();
}

// ---------------------------------------------------------------- the hierarchy, built through the admin API

async function admin(sub: string, method: string, path: string, body?: unknown, status = 201): Promise<void> {
  const res = await send(sub, method, `/admin/v1${path}`, body);
  expect({ call: `${sub} ${method} ${path}`, status: res.status, body: res.status === status ? 'ok' : res.body }).toEqual({
    call: `${sub} ${method} ${path}`,
    status,
    body: 'ok',
  });
}

beforeAll(async () => {
  s = await startTestStack({ platformAdmins: ['pat'] });
  await buildMatrixHierarchy(admin);

  // The resources every read targets: one per tenant and kind, made through the gateway
  // by an admin of the tenant's organization; call records come from the platform (the db).
  const seeds = TENANTS.flatMap((tenant) =>
    RESOURCE_KINDS.filter((k) => !k.readOnly).map((kind) => async () => {
      const res = await send(tenant === 'gx-sales' ? 'gina' : 'olivia', 'POST', `/api/v1/tenants/${tenant}/${kind.segment}`, bodyFor(kind, SEED).create);
      return res.status === 201 ? undefined : `seed ${tenant}/${kind.segment}: ${res.status} ${res.text.slice(0, 200)}`;
    }),
  );
  expect((await inBatches(seeds, 6, (run) => run())).filter(Boolean)).toEqual([]);
  for (const tenant of TENANTS) {
    await insertCallRecord(s.db, tenant, {
      callId: SEED,
      direction: 'inbound',
      from: '+14155550100',
      to: '+14155550199',
      startedAt: new Date().toISOString(),
      disposition: 'answered',
      durationSeconds: 42,
    });
  }
});

// ---------------------------------------------------------------- the matrix

describe('every role × every route × every tenant', () => {
  const cells = ROLES.flatMap((role) => TENANTS.map((tenant) => ({ role, tenant })));
  it.each(cells)('$role.sub ($role.role) on $tenant', async ({ role, tenant }) => {
    const outcomes = await runChains(role, tenant);
    expect(outcomes.length).toBe(CHAINS.flat().length);
    const access = role.tenants[tenant] ?? 'none';
    const problems = outcomes.map(mismatch).filter((m): m is string => m !== undefined);
    expect(problems, `${role.sub} (${role.role}) has "${access}" access to ${tenant} in ${WHERE[tenant]}`).toEqual([]);
  });
});

describe('division and organization reports', () => {
  it.each(ROLES)('$sub ($role)', async (role) => {
    const targets = [...DIVISIONS.map((d) => ['divisions', d] as const), ...ORGANIZATIONS.map((o) => ['organizations', o] as const)];
    const outcomes = await inBatches(
      targets.map(([kind, id]) => async () => {
        const path = `/api/v1/${kind}/${id}/reports/summary`;
        const res = await send(role.sub, 'GET', path);
        return { id, outcome: { line: `${role.sub} (${role.role}) GET ${path}`, expected: role.reports.includes(id) ? 200 : 403, res, permission: 'can_read_reports' } };
      }),
      6,
      (run) => run(),
    );
    const problems = outcomes.map(({ outcome }) => mismatch(outcome)).filter((m): m is string => m !== undefined);
    // An allowed report aggregates exactly the tenants under the node, no more.
    for (const { id, outcome } of outcomes) {
      if (outcome.res.status !== 200) continue;
      const tenants = (outcome.res.body.tenants as { tenantId: string }[]).map((t) => t.tenantId);
      if (outcome.res.body.tenantCount !== UNDER[id]!.length || JSON.stringify(tenants) !== JSON.stringify(UNDER[id])) {
        problems.push(`${outcome.line}: expected tenants ${UNDER[id]!.join(',')}, got ${tenants.join(',')} (count ${outcome.res.body.tenantCount})`);
      }
    }
    expect(problems).toEqual([]);
  });
});

// ---------------------------------------------------------------- the named cases of the matrix

describe('named cases', () => {
  it('the same agentNo in two tenants is two agents; a duplicate within one tenant is 409', async () => {
    const a = await send('tom', 'POST', '/api/v1/tenants/emea-sales/agents', { agentNo: '1000', name: 'Sales 1000' });
    const b = await send('dana', 'POST', '/api/v1/tenants/emea-support/agents', { agentNo: '1000', name: 'Support 1000' });
    expect([a.status, b.status]).toEqual([201, 201]);
    expect((await send('tom', 'POST', '/api/v1/tenants/emea-sales/agents', { agentNo: '1000', name: 'again' })).status).toBe(409);

    const fromSales = await send('tom', 'GET', '/api/v1/tenants/emea-sales/agents/1000');
    const fromSupport = await send('dana', 'GET', '/api/v1/tenants/emea-support/agents/1000');
    expect([fromSales.body.tenantId, fromSales.body.name]).toEqual(['emea-sales', 'Sales 1000']);
    expect([fromSupport.body.tenantId, fromSupport.body.name]).toEqual(['emea-support', 'Support 1000']);

    // Deleting one leaves the other.
    expect((await send('tom', 'DELETE', '/api/v1/tenants/emea-sales/agents/1000')).status).toBe(204);
    expect((await send('tom', 'GET', '/api/v1/tenants/emea-sales/agents/1000')).status).toBe(404);
    expect((await send('dana', 'GET', '/api/v1/tenants/emea-support/agents/1000')).body.name).toBe('Support 1000');
  });

  it('a tenant admin gets 403 on another tenant of the same division', async () => {
    const own = await send('tom', 'GET', '/api/v1/tenants/emea-sales/agents');
    const other = await send('tom', 'GET', '/api/v1/tenants/emea-support/agents');
    expect([own.status, other.status]).toEqual([200, 403]);
    expect(other.body.permission).toBe('can_read_operational');
  });

  it("a division admin gets 403 on a sibling division's tenant and on the organization report", async () => {
    const mine = await send('dana', 'GET', '/api/v1/tenants/emea-sales/agents');
    const sibling = await send('dana', 'GET', '/api/v1/tenants/apac-sales/agents');
    const siblingReport = await send('dana', 'GET', '/api/v1/divisions/apac/reports/summary');
    const orgReport = await send('dana', 'GET', '/api/v1/organizations/acme/reports/summary');
    expect([mine.status, sibling.status, siblingReport.status, orgReport.status]).toEqual([200, 403, 403, 403]);
  });

  it('a nested division admin reaches two levels down, but not its parent division', async () => {
    const nested = await send('sam', 'POST', '/api/v1/tenants/metro-ops/queues', { queueNo: 'sam-q', name: 'Sam queue' });
    const parent = await send('sam', 'GET', '/api/v1/tenants/emea-sales/agents');
    const parentReport = await send('sam', 'GET', '/api/v1/divisions/emea/reports/summary');
    expect([nested.status, parent.status, parentReport.status]).toEqual([201, 403, 403]);
  });

  it('an organization admin of acme gets 403 in globex', async () => {
    const mine = await send('olivia', 'GET', '/api/v1/tenants/apac-sales/agents');
    const theirs = await send('olivia', 'GET', '/api/v1/tenants/gx-sales/agents');
    const theirReport = await send('olivia', 'GET', '/api/v1/organizations/globex/reports/summary');
    const theirDivision = await send('olivia', 'GET', '/api/v1/divisions/gx/reports/summary');
    expect([mine.status, theirs.status, theirReport.status, theirDivision.status]).toEqual([200, 403, 403, 403]);
  });

  it('the platform admin, who created acme, gets 403 inside it', async () => {
    const results = await Promise.all([
      send('pat', 'GET', '/api/v1/tenants/emea-sales/agents'),
      send('pat', 'POST', '/api/v1/tenants/emea-sales/agents', { agentNo: 'pat-1', name: 'x' }),
      send('pat', 'GET', '/api/v1/organizations/acme/reports/summary'),
      send('pat', 'GET', '/api/v1/divisions/emea/reports/summary'),
    ]);
    expect(results.map((r) => r.status)).toEqual([403, 403, 403, 403]);
    // …while it still may create organizations: the 403s are not a broken token.
    expect((await send('pat', 'POST', '/admin/v1/organizations', { id: 'initech', name: 'Initech', admins: ['ivy'] })).status).toBe(201);
  });

  it('a tenant user reads and changes agent status, but writes nothing and reads no configuration or report', async () => {
    const results = await Promise.all([
      send('uma', 'GET', '/api/v1/tenants/emea-sales/agents'),
      send('uma', 'PUT', `/api/v1/tenants/emea-sales/agents/${SEED}/status`, { status: 'available' }),
      send('uma', 'POST', '/api/v1/tenants/emea-sales/agents', { agentNo: 'uma-1', name: 'x' }),
      send('uma', 'PATCH', `/api/v1/tenants/emea-sales/agents/${SEED}`, { name: 'renamed' }),
      send('uma', 'GET', '/api/v1/tenants/emea-sales/configurations'),
      send('uma', 'GET', '/api/v1/tenants/emea-sales/reports/summary'),
    ]);
    expect(results.map((r) => r.status)).toEqual([200, 200, 403, 403, 403, 403]);
    expect(results[1]!.body.status).toBe('available');
  });
});
