// The AuthZEN PDP answers as the gateway decides: for every rule of policy/routes.yaml,
// every method, every user and every node of a hierarchy built through the admin API,
// the proxy's verdict (forwarded or 403) equals the AuthZEN decision for the rule's
// permission on the rule's object. Then: a revocation is visible to the very next
// evaluation (the same decision cache), and the PDP's callers and metadata as the
// running gateway serves them.
//
//   platform admin pat
//   organization:acme (admin olivia)
//     division:emea (admin dana)
//       tenant:emea-sales   (admin tom, member uma)
//       tenant:emea-support
//       division:emea-north (admin sam)
//         tenant:north-sales
//     division:apac
//       tenant:apac-sales
//   organization:globex (admin gina)
//     division:gx
//       tenant:gx-sales
//   ozzy: no role anywhere
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_EVALUATIONS } from '../../src/gateway/authzen.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { inBatches } from '../../load/lib/concurrency.js';
import { useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { startRecordingUpstream } from '../support/recording-upstream.js';
import { adminOk, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

const CLIENT = 'pep';
const PUBLIC_URL = 'https://pdp.tiergate.test';
const USERS = ['pat', 'olivia', 'dana', 'sam', 'tom', 'uma', 'gina', 'ozzy'];
const NODES: Record<string, string[]> = {
  tenantId: ['emea-sales', 'emea-support', 'north-sales', 'apac-sales', 'gx-sales'],
  divisionId: ['emea', 'emea-north', 'apac', 'gx'],
  organizationId: ['acme', 'globex'],
};
/** Every other path parameter (a business id). */
const BUSINESS_ID = 'seed1';

interface Rule {
  id: string;
  methods: string[];
  path: string;
  permission: string;
  object: string;
}

const rules = (parse(readFileSync(join(REPO_ROOT, 'policy', 'routes.yaml'), 'utf8')) as { rules: Rule[] }).rules;

/** One request of the matrix: the gateway's side and the AuthZEN side of the same question. */
interface Case {
  line: string;
  method: string;
  path: string;
  resource: { type: string; id: string };
  permission: string;
}

function fill(template: string, params: Record<string, string>): string {
  return template.replace(/\{([A-Za-z0-9]+)\}/g, (_m, name: string) => params[name] ?? BUSINESS_ID);
}

/** Every rule × method × node the rule's path names, grouped by node so one batch asks them. */
function casesByNode(): Map<string, Case[]> {
  const byNode = new Map<string, Case[]>();
  for (const rule of rules) {
    const nodeParam = Object.keys(NODES).find((p) => rule.path.includes(`{${p}}`));
    if (nodeParam === undefined) throw new Error(`rule ${rule.id} names no tenant, division or organization`);
    for (const node of NODES[nodeParam]!) {
      const object = fill(rule.object, { [nodeParam]: node });
      const colon = object.indexOf(':');
      for (const method of rule.methods) {
        const path = fill(rule.path, { [nodeParam]: node });
        const list = byNode.get(node) ?? [];
        list.push({ line: `${rule.id} ${method} ${path}`, method, path, resource: { type: object.slice(0, colon), id: object.slice(colon + 1) }, permission: rule.permission });
        byNode.set(node, list);
      }
    }
  }
  return byNode;
}

let s: TestStack;
let clientAuth: string;

beforeAll(async () => {
  const upstream = await startRecordingUpstream();
  s = await startTestStack({ platformAdmins: ['pat'], authzenClients: [CLIENT], upstreamUrl: upstream.url, env: { GATEWAY_PUBLIC_URL: PUBLIC_URL } });
  clientAuth = `Bearer ${await s.issuer.token(CLIENT, { claims: { client_id: CLIENT } })}`;
  await adminOk(s, 'pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await adminOk(s, 'pat', 'POST', '/organizations', { id: 'globex', name: 'Globex', admins: ['gina'] });
  await adminOk(s, 'olivia', 'POST', '/organizations/acme/divisions', { id: 'emea', name: 'EMEA' });
  await adminOk(s, 'olivia', 'POST', '/organizations/acme/divisions', { id: 'apac', name: 'APAC' });
  await adminOk(s, 'olivia', 'POST', '/divisions/emea/divisions', { id: 'emea-north', name: 'EMEA North' });
  await adminOk(s, 'olivia', 'POST', '/divisions/emea/tenants', { id: 'emea-sales', name: 'EMEA Sales' });
  await adminOk(s, 'olivia', 'POST', '/divisions/emea/tenants', { id: 'emea-support', name: 'EMEA Support' });
  await adminOk(s, 'olivia', 'POST', '/divisions/emea-north/tenants', { id: 'north-sales', name: 'North Sales' });
  await adminOk(s, 'olivia', 'POST', '/divisions/apac/tenants', { id: 'apac-sales', name: 'APAC Sales' });
  await adminOk(s, 'gina', 'POST', '/organizations/globex/divisions', { id: 'gx', name: 'Globex Ops' });
  await adminOk(s, 'gina', 'POST', '/divisions/gx/tenants', { id: 'gx-sales', name: 'Globex Sales' });
  await adminOk(s, 'olivia', 'PUT', '/divisions/emea/roles/admin/dana');
  await adminOk(s, 'olivia', 'PUT', '/divisions/emea-north/roles/admin/sam');
  await adminOk(s, 'olivia', 'PUT', '/tenants/emea-sales/roles/admin/tom');
  await adminOk(s, 'olivia', 'PUT', '/tenants/emea-sales/roles/member/uma');
});

async function evaluations(body: unknown): Promise<boolean[]> {
  const res = await call(s.gatewayUrl, 'POST', '/access/v1/evaluations', { auth: clientAuth, body });
  expect(res.status, res.text).toBe(200);
  return (res.body.evaluations as Array<{ decision: boolean }>).map((e) => e.decision);
}

describe('AuthZEN equals the gateway, over the whole route policy', () => {
  const byNode = casesByNode();
  const cells = USERS.flatMap((user) => [...byNode.keys()].map((node) => ({ user, node })));
  let allowed = 0;
  let denied = 0;

  it.each(cells)('$user on $node', async ({ user, node }) => {
    const cases = byNode.get(node)!;
    const auth = await s.authHeader(user);
    const gateway = await inBatches(cases, 6, async (c) => {
      const res = await call(s.gatewayUrl, c.method, c.path, { auth, ...(c.method === 'GET' || c.method === 'DELETE' ? {} : { body: {} }) });
      if (res.status !== 200 && res.status !== 403) throw new Error(`${user} ${c.line}: unexpected ${res.status} ${res.text.slice(0, 200)}`);
      return res.status === 200;
    });
    const pdp: boolean[] = [];
    for (let i = 0; i < cases.length; i += MAX_EVALUATIONS) {
      const chunk = cases.slice(i, i + MAX_EVALUATIONS);
      pdp.push(...(await evaluations({ subject: { type: 'user', id: user }, evaluations: chunk.map((c) => ({ resource: c.resource, action: { name: c.permission } })) })));
    }
    expect(pdp).toHaveLength(cases.length);
    const differ = cases.flatMap((c, i) => (gateway[i] === pdp[i] ? [] : [`${user} ${c.line}: gateway ${gateway[i] ? 'allows' : 'denies'}, AuthZEN ${pdp[i]}`]));
    expect(differ).toEqual([]);
    allowed += gateway.filter(Boolean).length;
    denied += gateway.filter((g) => !g).length;
  });

  it('the matrix held both answers', () => {
    expect(allowed).toBeGreaterThan(100);
    expect(denied).toBeGreaterThan(100);
  });
});

describe('the same decision cache', () => {
  it('a revoked membership is denied by the next evaluation, as by the gateway', async () => {
    await adminOk(s, 'olivia', 'PUT', '/tenants/emea-support/roles/member/vera');
    const question = {
      subject: { type: 'user', id: 'vera' },
      action: { name: 'can_read' },
      resource: { type: 'agent', id: `emea-support/${BUSINESS_ID}` },
    };
    const ask = async () => (await call(s.gatewayUrl, 'POST', '/access/v1/evaluation', { auth: clientAuth, body: question })).body as { decision: boolean };
    // Asked twice: the second answer comes from the cache the first one filled.
    const counts = s.gateway.cache.metrics.counts;
    expect(await ask()).toEqual({ decision: true });
    const hits = counts.l1.hit;
    expect(await ask()).toEqual({ decision: true });
    expect(counts.l1.hit).toBeGreaterThan(hits);

    const res = await call(s.gatewayUrl, 'DELETE', '/admin/v1/tenants/emea-support/roles/member/vera', { auth: await s.authHeader('olivia') });
    expect(res.status, res.text).toBeLessThan(300);
    expect(await ask()).toEqual({ decision: false });
    const viaGateway = await call(s.gatewayUrl, 'GET', `/api/v1/tenants/emea-support/agents/${BUSINESS_ID}`, { auth: await s.authHeader('vera') });
    expect(viaGateway.status).toBe(403);
  });
});

describe('the PDP as the gateway serves it', () => {
  const question = { subject: { type: 'user', id: 'uma' }, action: { name: 'read' }, resource: { type: 'agent', id: 'emea-sales/1000' } };

  it('answers a granted client, refuses end users and other clients, and asks for a token', async () => {
    const client = await call(s.gatewayUrl, 'POST', '/access/v1/evaluation', { auth: clientAuth, body: question });
    expect([client.status, client.body]).toEqual([200, { decision: true }]);
    const endUser = await call(s.gatewayUrl, 'POST', '/access/v1/evaluation', { auth: await s.authHeader('olivia'), body: question });
    expect(endUser.status).toBe(403);
    const other = await s.issuer.token('pep-2', { claims: { client_id: 'pep-2' } });
    expect((await call(s.gatewayUrl, 'POST', '/access/v1/evaluation', { auth: `Bearer ${other}`, body: question })).status).toBe(403);
    const none = await call(s.gatewayUrl, 'POST', '/access/v1/evaluation', { body: question, headers: { 'x-request-id': 'pep-req-1' } });
    expect([none.status, none.headers.get('x-request-id')]).toEqual([401, 'pep-req-1']);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('a tenant resource is asked about with its tenant, like the route policy does', async () => {
    const decisions = await evaluations({
      subject: { type: 'user', id: 'uma' },
      resource: { type: 'agent', id: 'emea-sales/1000' },
      evaluations: [{ action: { name: 'read' } }, { action: { name: 'change_status' } }, { action: { name: 'write' } }, { resource: { type: 'agent', id: 'emea-support/1000' }, action: { name: 'read' } }],
    });
    expect(decisions).toEqual([true, true, false, false]);
  });

  it('searches: the tenants a user may operate, and the actions on a tenant resource', async () => {
    const search = (path: string, body: unknown) => call(s.gatewayUrl, 'POST', `/access/v1/search/${path}`, { auth: clientAuth, body });
    const tenants = async (user: string) =>
      ((await search('resource', { subject: { type: 'user', id: user }, action: { name: 'read_operational' }, resource: { type: 'tenant' } })).body.results as Array<{ id: string }>).map((r) => r.id);
    expect(await tenants('dana')).toEqual(['emea-sales', 'emea-support', 'north-sales']);
    expect(await tenants('uma')).toEqual(['emea-sales']);
    expect(await tenants('pat')).toEqual([]);
    const agents = await search('resource', { subject: { type: 'user', id: 'uma' }, action: { name: 'read' }, resource: { type: 'agent' } });
    expect(agents.status).toBe(400);
    const actions = await search('action', { subject: { type: 'user', id: 'uma' }, resource: { type: 'agent', id: 'emea-sales/1000' } });
    expect(actions.body).toEqual({ results: [{ name: 'can_change_status' }, { name: 'can_read' }] });
  });

  it('publishes metadata with GATEWAY_PUBLIC_URL', async () => {
    const res = await call(s.gatewayUrl, 'GET', '/.well-known/authzen-configuration');
    expect(res.body).toEqual({
      policy_decision_point: PUBLIC_URL,
      access_evaluation_endpoint: `${PUBLIC_URL}/access/v1/evaluation`,
      access_evaluations_endpoint: `${PUBLIC_URL}/access/v1/evaluations`,
      search_resource_endpoint: `${PUBLIC_URL}/access/v1/search/resource`,
      search_action_endpoint: `${PUBLIC_URL}/access/v1/search/action`,
    });
  });
});
