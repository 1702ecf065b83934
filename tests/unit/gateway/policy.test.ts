import { join } from 'node:path';
import { Hono } from 'hono';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type LoadedModel } from '../../../src/fga/model.js';
import { normalise } from '../../../src/gateway/normalise.js';
import { loadPolicy, matchPolicy, parsePolicy, PolicyError, type CompiledPolicy } from '../../../src/gateway/policy.js';
import type { GatewayEnv, PolicyDecisionRequest } from '../../../src/gateway/types.js';
import { renderGatewayError } from '../../../src/gateway/app.js';
import { RESOURCE_KINDS } from '../../../src/shared/resource-kinds.js';

const ROOT = join(import.meta.dirname, '../../..');
let model: LoadedModel;
let policy: CompiledPolicy;

beforeAll(() => {
  model = loadModel();
  policy = loadPolicy(join(ROOT, 'policy/routes.yaml'), model);
});

function app(p: CompiledPolicy = policy): Hono<GatewayEnv> {
  const a = new Hono<GatewayEnv>();
  a.onError(renderGatewayError);
  a.use('*', async (c, next) => {
    c.set('requestId', 'req-7');
    await next();
  });
  a.use('*', normalise({ maxPathLength: 2048, maxHeaderBytes: 16384 }));
  a.use('*', matchPolicy(p));
  a.all('*', (c) => c.json(c.var.policy));
  return a;
}

async function decide(method: string, path: string): Promise<{ status: number; body: Record<string, unknown>; allow: string | null }> {
  const res = await app().request(path, { method });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, allow: res.headers.get('allow') };
}

/** What the tenant service reads from the assertion's settings claim (policy/routes.yaml). */
const TENANT_SERVICE_SETTINGS = ['quota.agents', 'recording.retention_days', 'timezone'];

const tenantLink = (object: string) => [{ user: 'tenant:t1', relation: 'tenant', object }];

describe('the shipped policy: every route kind', () => {
  for (const kind of RESOURCE_KINDS) {
    const base = `/api/v1/tenants/t1/${kind.segment}`;
    const object = `${kind.fgaType}:t1/r-9`;

    it(`${kind.segment}: list and create act on the tenant`, async () => {
      expect((await decide('GET', base)).body).toEqual({
        ruleId: `${kind.segment}.list`,
        route: `/api/v1/tenants/{tenantId}/${kind.segment}`,
        permission: kind.adminOnly ? 'can_read_configuration' : 'can_read_operational',
        object: 'tenant:t1',
        contextualTuples: [],
        params: { tenantId: 't1' },
        scope: { type: 'tenant', id: 't1' },
        consistency: 'cached',
        upstream: 'tenant-service',
        assertionSettings: TENANT_SERVICE_SETTINGS,
      } satisfies PolicyDecisionRequest);
      const create = await decide('POST', base);
      if (kind.readOnly) {
        expect(create.status).toBe(405);
        expect(create.allow).toBe('GET');
      } else {
        expect(create.body).toMatchObject({
          ruleId: `${kind.segment}.create`,
          permission: kind.adminOnly ? 'can_write_configuration' : 'can_manage_resources',
          object: 'tenant:t1',
          contextualTuples: [],
        });
      }
    });

    it(`${kind.segment}: one resource is ${kind.fgaType}:<tenant>/<${kind.idParam}>, linked to its tenant`, async () => {
      expect((await decide('GET', `${base}/r-9`)).body).toEqual({
        ruleId: `${kind.segment}.read`,
        route: `/api/v1/tenants/{tenantId}/${kind.segment}/{${kind.idParam}}`,
        permission: 'can_read',
        object,
        contextualTuples: tenantLink(object),
        params: { tenantId: 't1', [kind.idParam]: 'r-9' },
        scope: { type: 'tenant', id: 't1' },
        consistency: 'cached',
        upstream: 'tenant-service',
        assertionSettings: TENANT_SERVICE_SETTINGS,
      } satisfies PolicyDecisionRequest);
      for (const method of ['PUT', 'PATCH', 'DELETE']) {
        const r = await decide(method, `${base}/r-9`);
        if (kind.readOnly) {
          expect(r.status).toBe(405);
          expect(r.allow).toBe('GET');
        } else {
          expect(r.body).toMatchObject({ ruleId: `${kind.segment}.write`, permission: 'can_write', object, contextualTuples: tenantLink(object) });
        }
      }
    });
  }

  it('agent status change is its own permission', async () => {
    expect((await decide('PUT', '/api/v1/tenants/t1/agents/2000/status')).body).toMatchObject({
      ruleId: 'agents.status',
      permission: 'can_change_status',
      object: 'agent:t1/2000',
      contextualTuples: tenantLink('agent:t1/2000'),
      scope: { type: 'tenant', id: 't1' },
    });
  });

  it('reports: tenant, division and organization summaries', async () => {
    expect((await decide('GET', '/api/v1/tenants/t1/reports/summary')).body).toMatchObject({
      permission: 'can_read',
      object: 'report:t1/summary',
      contextualTuples: tenantLink('report:t1/summary'),
      scope: { type: 'tenant', id: 't1' },
    });
    expect((await decide('GET', '/api/v1/divisions/d1/reports/summary')).body).toMatchObject({
      permission: 'can_read_reports',
      object: 'division:d1',
      contextualTuples: [],
      scope: { type: 'division', id: 'd1' },
    });
    expect((await decide('GET', '/api/v1/organizations/o1/reports/summary')).body).toMatchObject({
      permission: 'can_read_reports',
      object: 'organization:o1',
      contextualTuples: [],
      scope: { type: 'organization', id: 'o1' },
    });
  });

  it('has exactly the rules of the route table, nothing more', () => {
    const expected = RESOURCE_KINDS.flatMap((k) => (k.readOnly ? ['list', 'read'] : ['list', 'create', 'read', 'write']).map((r) => `${k.segment}.${r}`));
    expected.push('agents.status', 'reports.tenant-summary', 'reports.division-summary', 'reports.organization-summary');
    expect(policy.rules.map((r) => r.id).sort()).toEqual(expected.sort());
  });
});

describe('404, 405, exact matching', () => {
  it.each([
    ['GET', '/api/v1/tenants/t1/widgets'],
    ['GET', '/api/v2/tenants/t1/agents'],
    ['GET', '/api/v1/tenants/t1'],
    ['GET', '/api/v1/tenants/t1/agents/2000/status/x'],
    ['GET', '/API/v1/tenants/t1/agents'],
    ['GET', '/api/v1/Tenants/t1/agents'],
    ['GET', '/api/v1/tenants/t1/Agents'],
    ['GET', '/api/v1/tenants/t1/agents/2000/STATUS'],
    ['GET', '/api/v1/tenants/t1/reports/Summary'],
  ])('%s %s → 404', async (method, path) => {
    const r = await decide(method, path);
    expect(r.status).toBe(404);
    expect(r.body).toMatchObject({ type: 'https://tiergate.dev/problems/no-route', status: 404, requestId: 'req-7' });
  });

  it.each([
    ['DELETE', '/api/v1/tenants/t1/agents', 'GET, POST'],
    ['HEAD', '/api/v1/tenants/t1/queues', 'GET, POST'],
    ['POST', '/api/v1/tenants/t1/agents/2000', 'GET, PUT, PATCH, DELETE'],
    ['GET', '/api/v1/tenants/t1/agents/2000/status', 'PUT'],
    ['POST', '/api/v1/divisions/d1/reports/summary', 'GET'],
    ['OPTIONS', '/api/v1/tenants/t1/call-records/c1', 'GET'],
  ])('%s %s → 405, Allow: %s', async (method, path, allow) => {
    const res = await app().request(path, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe(allow);
    if (method !== 'HEAD') expect(await res.json()).toMatchObject({ type: 'https://tiergate.dev/problems/method-not-allowed', status: 405 });
  });

  it('ids are case-sensitive values, not part of the route', async () => {
    expect((await decide('GET', '/api/v1/tenants/T1/agents/A-2000')).body).toMatchObject({ object: 'agent:T1/A-2000' });
  });

  it.each([
    ['/api/v1/tenants/t!1/agents', 'tenantId'],
    ['/api/v1/tenants/_t1/agents', 'tenantId'],
    ['/api/v1/tenants/-t1/agents', 'tenantId'],
    ['/api/v1/tenants/t1/agents/a.b', 'agentNo'],
    ['/api/v1/tenants/t1/agents/a:b', 'agentNo'],
    [`/api/v1/tenants/t1/agents/${'a'.repeat(65)}`, 'agentNo'],
    ['/api/v1/divisions/d@1/reports/summary', 'divisionId'],
  ])('%s → 400 naming %s', async (path, param) => {
    const r = await decide('GET', path);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ type: 'https://tiergate.dev/problems/invalid-id', 'invalid-params': [{ name: `path.${param}` }] });
  });

  it('accepts a 64-character id', async () => {
    const id = `A${'b'.repeat(63)}`;
    expect((await decide('GET', `/api/v1/tenants/t1/agents/${id}`)).body).toMatchObject({ object: `agent:t1/${id}` });
  });
});

// ------------------------------------------------------------ bad files

const HEADER = 'version: 1\nrules:\n';
const rule = (lines: string) => lines.replace(/^\n/, '');
const AGENT_READ = rule(`
  - id: agents.read
    methods: [GET]
    path: /api/v1/tenants/{tenantId}/agents/{agentNo}
    permission: can_read
    object: agent:{tenantId}/{agentNo}
    contextualTuples:
      - user: tenant:{tenantId}
        relation: tenant
        object: agent:{tenantId}/{agentNo}
    scope: tenant:{tenantId}
`);

function issuesOf(text: string): Array<{ line: number; message: string; at: string }> {
  try {
    parsePolicy(text, { model, source: 'routes.yaml' });
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as PolicyError).issues.map(({ line, message, at }) => ({ line, message, at }));
  }
  throw new Error('the policy was accepted');
}

describe('bad policy files fail naming the line', () => {
  it('a minimal good file compiles', () => {
    expect(parsePolicy(HEADER + AGENT_READ, { model }).rules.map((r) => [r.id, r.line])).toEqual([['agents.read', 3]]);
  });

  it('a YAML syntax error', () => {
    expect(issuesOf(HEADER + AGENT_READ.replace('permission: can_read', 'permission: can: read'))).toEqual([expect.objectContaining({ line: 6 })]);
    // An unclosed flow sequence is reported where the parser gives up: the end of the file.
    expect(issuesOf(`${HEADER}${AGENT_READ}  - id: [unclosed\n`)).toEqual([expect.objectContaining({ line: 14 })]);
  });

  it('an unknown field in a rule (a typo)', () => {
    const text = HEADER + AGENT_READ.replace('    permission: can_read\n', '    permision: can_read\n');
    expect(issuesOf(text)).toEqual(
      expect.arrayContaining([
        { line: 6, at: 'rules[0].permision', message: 'unknown field "permision"' },
        expect.objectContaining({ line: 3, at: 'rules[0].permission' }),
      ]),
    );
  });

  it('an unknown top-level field and an unknown tuple field', () => {
    const text = `version: 1\ndefaults: {}\nrules:\n${AGENT_READ.replace('        relation: tenant\n', '        relation: tenant\n        condition: x\n')}`;
    expect(issuesOf(text)).toEqual([
      { line: 2, at: 'defaults', message: 'unknown field "defaults"' },
      { line: 12, at: 'rules[0].contextualTuples[0].condition', message: 'unknown field "condition"' },
    ]);
  });

  it('a parameter the path does not have', () => {
    const text = HEADER + AGENT_READ.replace('    object: agent:{tenantId}/{agentNo}\n    contextualTuples', '    object: agent:{tenantId}/{agentId}\n    contextualTuples');
    expect(issuesOf(text)).toEqual([{ line: 7, at: 'rules[0].object', message: '{agentId} is not a parameter of the path (known: {tenantId}, {agentNo})' }]);
  });

  it('a permission model.fga does not define on the type', () => {
    const text = HEADER + AGENT_READ.replace('permission: can_read', 'permission: can_read_operational');
    expect(issuesOf(text)).toEqual([
      {
        line: 6,
        at: 'rules[0].permission',
        message: '"can_read_operational" is not a relation of type "agent" in model.fga (it has: can_read, can_write, can_change_status)',
      },
    ]);
  });

  it('an object type model.fga does not define', () => {
    const text = HEADER + AGENT_READ.replace('    object: agent:{tenantId}/{agentNo}\n    contextualTuples', '    object: robot:{tenantId}/{agentNo}\n    contextualTuples');
    expect(issuesOf(text)).toEqual([{ line: 7, at: 'rules[0].object', message: 'type "robot" is not defined in model.fga' }]);
  });

  it('a contextual tuple the model cannot hold', () => {
    const text = HEADER + AGENT_READ.replace('      - user: tenant:{tenantId}', '      - user: division:{tenantId}');
    expect(issuesOf(text)).toEqual([
      { line: 9, at: 'rules[0].contextualTuples[0].user', message: 'agent#tenant cannot hold a division directly (model.fga allows: tenant)' },
    ]);
    const badRelation = HEADER + AGENT_READ.replace('        relation: tenant', '        relation: owner');
    expect(issuesOf(badRelation)).toEqual([{ line: 10, at: 'rules[0].contextualTuples[0].relation', message: '"owner" is not a relation of type "agent" in model.fga' }]);
  });

  it('a missing field, a bad method, a bad scope', () => {
    expect(issuesOf(HEADER + AGENT_READ.replace('    scope: tenant:{tenantId}\n', ''))).toEqual([expect.objectContaining({ line: 3, at: 'rules[0].scope' })]);
    expect(issuesOf(HEADER + AGENT_READ.replace('methods: [GET]', 'methods: [GET, FETCH]'))).toEqual([expect.objectContaining({ line: 4, at: 'rules[0].methods[1]' })]);
    expect(issuesOf(HEADER + AGENT_READ.replace('scope: tenant:{tenantId}', 'scope: tenant:{agentId}'))).toEqual([
      { line: 12, at: 'rules[0].scope', message: '{agentId} is not a parameter of the path' },
    ]);
    expect(issuesOf(HEADER + AGENT_READ.replace('scope: tenant:{tenantId}', 'scope: queue:{tenantId}'))).toEqual([expect.objectContaining({ line: 12, at: 'rules[0].scope' })]);
  });

  it('a bad path template', () => {
    expect(issuesOf(HEADER + AGENT_READ.replace('/agents/{agentNo}', '/agents/{tenantId}'))).toEqual([
      expect.objectContaining({ line: 5, message: 'parameter {tenantId} appears twice' }),
    ]);
    expect(issuesOf(HEADER + AGENT_READ.replace('/agents/{agentNo}', '/agents/x{agentNo}'))).toEqual([expect.objectContaining({ line: 5, at: 'rules[0].path' })]);
    expect(issuesOf(HEADER + AGENT_READ.replace('/api/v1/tenants', '/api/v1//tenants'))).toEqual([expect.objectContaining({ line: 5, at: 'rules[0].path' })]);
  });

  it('the wrong version, and a duplicate YAML key', () => {
    expect(issuesOf(`version: 2\nrules:\n${AGENT_READ}`)).toEqual([expect.objectContaining({ line: 1, at: 'version' })]);
    expect(issuesOf(HEADER + AGENT_READ.replace('    methods: [GET]\n', '    methods: [GET]\n    methods: [PUT]\n'))).toEqual([expect.objectContaining({ line: 5 })]);
  });

  it('reports every problem, with the file name and line in the message', () => {
    const text = HEADER + AGENT_READ.replace('permission: can_read', 'permission: can_fly').replace('scope: tenant:{tenantId}', 'scope: tenant:{nope}');
    try {
      parsePolicy(text, { model, source: 'policy/routes.yaml' });
      throw new Error('accepted');
    } catch (err) {
      expect((err as Error).message).toContain('policy/routes.yaml:6:17: rules[0].permission: "can_fly" is not a relation of type "agent"');
      expect((err as Error).message).toContain('policy/routes.yaml:12:12: rules[0].scope: {nope} is not a parameter of the path');
    }
  });
});

describe('ambiguity is refused at load', () => {
  it('two rules for the same method and path', () => {
    const second = AGENT_READ.replace('id: agents.read', 'id: agents.read2').replace('methods: [GET]', 'methods: [PUT, GET]');
    expect(issuesOf(HEADER + AGENT_READ + second)).toEqual([
      {
        line: 13,
        at: 'rules[1]',
        message: 'rule "agents.read2" and rule "agents.read" (line 3) can both match GET /api/v1/tenants/{tenantId}/agents/{agentNo}',
      },
    ]);
  });

  it('a parameter and a literal in the same place', () => {
    const literal = rule(`
  - id: agents.summary
    methods: [GET]
    path: /api/v1/tenants/{tenantId}/agents/summary
    permission: can_read_operational
    object: tenant:{tenantId}
    scope: tenant:{tenantId}
`);
    expect(issuesOf(HEADER + AGENT_READ + literal)).toEqual([
      expect.objectContaining({ line: 13, message: 'rule "agents.summary" and rule "agents.read" (line 3) can both match GET /api/v1/tenants/{tenantId}/agents/summary' }),
    ]);
  });

  it('differently named parameters are still the same shape', () => {
    const renamed = AGENT_READ.replace('id: agents.read', 'id: agents.other').replaceAll('{agentNo}', '{no}');
    expect(issuesOf(HEADER + AGENT_READ + renamed)[0]?.message).toMatch(/can both match GET/);
  });

  it('the same path with disjoint methods is fine, and so are YAML anchors', () => {
    const text = `${HEADER}${AGENT_READ.replace('    contextualTuples:\n', '    contextualTuples: &agentLink\n')}
  - id: agents.write
    methods: [PUT, DELETE]
    path: /api/v1/tenants/{tenantId}/agents/{agentNo}
    permission: can_write
    object: agent:{tenantId}/{agentNo}
    contextualTuples: *agentLink
    scope: tenant:{tenantId}
`;
    const p = parsePolicy(text, { model });
    const write = p.match('DELETE', ['api', 'v1', 'tenants', 't1', 'agents', '7']);
    expect(write.kind === 'matched' && write.rule.id).toBe('agents.write');
    expect(p.match('PATCH', ['api', 'v1', 'tenants', 't1', 'agents', '7'])).toEqual({ kind: 'method-not-allowed', allow: 'GET, PUT, DELETE' });
  });

  it('a duplicate rule id', () => {
    const again = AGENT_READ.replace('methods: [GET]', 'methods: [PUT]');
    expect(issuesOf(HEADER + AGENT_READ + again)).toEqual([{ line: 13, at: 'rules[1].id', message: 'duplicate rule id "agents.read" (first at line 3)' }]);
  });
});

describe('matchPolicy stage', () => {
  it('needs the canonical request from the normalise stage', async () => {
    const a = new Hono<GatewayEnv>();
    a.onError(renderGatewayError);
    a.use('*', matchPolicy(policy));
    a.get('*', (c) => c.text('reached'));
    const res = await a.request('/api/v1/tenants/t1/agents');
    expect(res.status).toBe(500);
  });

  it('matches the normalised path, not the raw one', async () => {
    // %31 decodes to 1 in normalise; the policy sees /tenants/t1.
    expect((await decide('GET', '/api/v1/tenants/t%31/agents')).body).toMatchObject({ object: 'tenant:t1' });
  });
});
