// The route policy's upstream services: how the file names them, what it refuses (with
// the line), how a rule's path is rewritten, and how deploy-time URLs are resolved.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config.js';
import { loadModel, type LoadedModel } from '../../../src/fga/model.js';
import { forwardedPath, loadPolicy, parsePolicy, PolicyError, type CompiledPolicy } from '../../../src/gateway/policy.js';
import { resolveUpstreams } from '../../../src/server/upstreams.js';

const ROOT = join(import.meta.dirname, '../../..');
let model: LoadedModel;

beforeAll(() => {
  model = loadModel();
});

/** Two rules (agents.list, reports.tenant-summary) after the given upstream section; `{reports}` is the second rule's upstream line. */
function policyText(upstreams: string, reportsUpstream = '    upstream: reports\n'): string {
  return `version: 1
${upstreams}rules:
  - id: agents.list
    methods: [GET]
    path: /api/v1/tenants/{tenantId}/agents
    permission: can_read_operational
    object: tenant:{tenantId}
    scope: tenant:{tenantId}
  - id: reports.tenant-summary
    methods: [GET]
    path: /api/v1/tenants/{tenantId}/reports/summary
    permission: can_read_reports
    object: tenant:{tenantId}
    scope: tenant:{tenantId}
${reportsUpstream}`;
}

const REPORTS = `upstreams:
  reports:
    url: http://reports.internal:8080
`;

function parse(text: string): CompiledPolicy {
  return parsePolicy(text, { model, source: 'routes.yaml' });
}

function issuesOf(text: string): Array<{ line: number; col: number; at: string; message: string }> {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as PolicyError).issues.map(({ line, col, at, message }) => ({ line, col, at, message }));
  }
  throw new Error('the policy was accepted');
}

describe('upstreams in the route policy', () => {
  it('the shipped policy sends the report rules to `reports` and every other rule to the built-in tenant-service', () => {
    const policy = loadPolicy(join(ROOT, 'policy/routes.yaml'), model);
    expect([...policy.upstreams.keys()].sort()).toEqual(['reports', 'tenant-service']);
    const reports = policy.rules.filter((r) => r.upstream === 'reports').map((r) => r.id);
    expect(reports.sort()).toEqual(['reports.division-summary', 'reports.organization-summary', 'reports.tenant-summary']);
    expect(policy.rules.length - reports.length).toBeGreaterThan(30);
    expect(policy.upstreams.get('reports')).toMatchObject({ url: 'http://127.0.0.1:8091', timeoutMs: 30000, healthPath: '/healthz' });
    expect(policy.upstreams.get('tenant-service')).toMatchObject({ url: undefined, timeoutMs: undefined, stripPrefix: undefined });
  });

  it('a file without upstreams sends every rule to tenant-service (the file format before upstreams)', () => {
    const policy = parse(policyText('', ''));
    expect(policy.rules.map((r) => r.upstream)).toEqual(['tenant-service', 'tenant-service']);
    expect([...policy.upstreams.keys()]).toEqual(['tenant-service']);
  });

  it('the matched request carries its rule upstream; defaultUpstream serves the rules without one', () => {
    const policy = parse(policyText(`${REPORTS}defaultUpstream: reports\n`, ''));
    expect(policy.rules.map((r) => r.upstream)).toEqual(['reports', 'reports']);
    // tenant-service is built in and unused here: not an upstream of this policy, and no error.
    expect([...policy.upstreams.keys()]).toEqual(['reports']);
    const m = policy.match('GET', ['api', 'v1', 'tenants', 't1', 'agents']);
    expect(m.kind === 'matched' && m.rule.upstream).toBe('reports');
  });

  it('a rule naming an unknown upstream is refused at its line and column', () => {
    expect(issuesOf(policyText(REPORTS, '    upstream: report\n'))).toEqual([
      { line: 3, col: 3, at: 'upstreams.reports', message: 'upstream "reports" is declared but no rule uses it' },
      { line: 18, col: 15, at: 'rules[1].upstream', message: 'unknown upstream "report" (declared: reports, tenant-service)' },
    ]);
  });

  it('an unknown defaultUpstream is refused', () => {
    expect(issuesOf(policyText(`${REPORTS}defaultUpstream: nowhere\n`))).toEqual([
      { line: 5, col: 18, at: 'defaultUpstream', message: 'unknown upstream "nowhere" (declared: reports, tenant-service)' },
    ]);
  });

  it('a declared upstream no rule uses is refused at its name', () => {
    const text = policyText(`${REPORTS}  billing:\n    url: http://billing:80\n`);
    expect(issuesOf(text)).toEqual([{ line: 5, col: 3, at: 'upstreams.billing', message: 'upstream "billing" is declared but no rule uses it' }]);
  });

  it.each([
    ['http://reports:8080/base', 'must be an origin only (scheme, host, port): no path, query or fragment (use stripPrefix to change the path)'],
    ['http://reports:8080?x=1', 'must be an origin only (scheme, host, port): no path, query or fragment (use stripPrefix to change the path)'],
    ['ftp://reports', 'must be an http:// or https:// URL'],
    ['http://user:secret@reports', 'must not hold a user name or password'],
    ['reports:8080', 'must be an http:// or https:// URL'],
    ['not a url', 'must be an absolute http:// or https:// URL'],
  ])('url %s is refused', (url, message) => {
    expect(issuesOf(policyText(`upstreams:\n  reports:\n    url: "${url}"\n`))).toEqual([{ line: 4, col: 10, at: 'upstreams.reports.url', message: `"${url}" ${message}` }]);
  });

  it('an upstream without a url, and a url on the built-in tenant-service, are refused', () => {
    expect(issuesOf(policyText('upstreams:\n  reports:\n    timeoutMs: 500\n'))).toEqual([
      expect.objectContaining({ line: 4, at: 'upstreams.reports', message: 'needs a url (the default; UPSTREAM_URLS can override it at deploy time)' }),
    ]);
    expect(issuesOf(policyText(`${REPORTS}  tenant-service:\n    url: http://t:1\n`))).toEqual([
      expect.objectContaining({ line: 6, at: 'upstreams.tenant-service.url', message: expect.stringContaining('takes its URL from TENANT_SERVICE_URL') }),
    ]);
  });

  it('a malformed name, timeout, health path or stripPrefix is refused at its line', () => {
    expect(issuesOf(policyText('upstreams:\n  Reports:\n    url: http://r:1\n', '    upstream: Reports\n'))).toEqual([
      expect.objectContaining({ line: 3, at: 'upstreams.Reports', message: expect.stringContaining('upstream name "Reports" must be lower-case') }),
    ]);
    expect(issuesOf(policyText(`${REPORTS}    timeoutMs: 0\n`))).toEqual([expect.objectContaining({ line: 5, at: 'upstreams.reports.timeoutMs' })]);
    expect(issuesOf(policyText(`${REPORTS}    healthPath: healthz\n`))).toEqual([
      expect.objectContaining({ line: 5, at: 'upstreams.reports.healthPath', message: '"healthz" must be a path of [A-Za-z0-9._~/-] starting with "/"' }),
    ]);
    expect(issuesOf(policyText(`${REPORTS}    rewrite: /x\n`))).toEqual([expect.objectContaining({ line: 5, at: 'upstreams.reports.rewrite', message: 'unknown field "rewrite"' })]);
    for (const prefix of ['api/v1', '/api/v1/', '/api//v1', '/api/../v1', '/api/{v}']) {
      expect(issuesOf(policyText(`${REPORTS}    stripPrefix: "${prefix}"\n`)), prefix).toEqual([
        expect.objectContaining({ line: 5, col: 18, at: 'upstreams.reports.stripPrefix', message: expect.stringContaining(`"${prefix}" must be whole path segments`) }),
      ]);
    }
  });

  it('a stripPrefix must start the path of every rule of its upstream, at a segment boundary', () => {
    expect(parse(policyText(`${REPORTS}    stripPrefix: /api/v1/tenants\n`)).upstreams.get('reports')?.stripPrefix).toBe('/api/v1/tenants');
    expect(issuesOf(policyText(`${REPORTS}    stripPrefix: /api/v1/tenant\n`))).toEqual([
      {
        line: 19,
        col: 15,
        at: 'rules[1].upstream',
        message: 'path /api/v1/tenants/{tenantId}/reports/summary does not start with the stripPrefix /api/v1/tenant of upstream "reports" (line 3)',
      },
    ]);
    // A rule sent there by defaultUpstream is refused at its path.
    expect(issuesOf(policyText(`${REPORTS}    stripPrefix: /api/v1/tenants/x\ndefaultUpstream: reports\n`, ''))).toEqual([
      expect.objectContaining({ line: 10, at: 'rules[0].path' }),
      expect.objectContaining({ line: 16, at: 'rules[1].path' }),
    ]);
  });

  it('forwardedPath removes the prefix, leaves "/" for the prefix itself, and is the path itself without one', () => {
    expect(forwardedPath('/api/v1/tenants/t1/reports/summary', '/api/v1')).toBe('/tenants/t1/reports/summary');
    expect(forwardedPath('/api/v1', '/api/v1')).toBe('/');
    const path = '/api/v1/tenants/t1/agents';
    expect(forwardedPath(path, undefined)).toBe(path);
  });
});

describe('deploy-time upstream URLs', () => {
  const base = { OPENFGA_API_URL: 'http://127.0.0.1:1' };
  let policy: CompiledPolicy;
  beforeAll(() => {
    policy = parse(policyText(`${REPORTS}    timeoutMs: 750\n    stripPrefix: /api/v1\n`));
  });

  it('UPSTREAM_URLS is parsed once: name=url pairs', () => {
    expect(loadConfig({ ...base, UPSTREAM_URLS: ' reports=http://10.0.0.7:8080 , billing=https://billing.internal ' }).UPSTREAM_URLS).toEqual({
      reports: 'http://10.0.0.7:8080',
      billing: 'https://billing.internal',
    });
    expect(loadConfig(base).UPSTREAM_URLS).toBeUndefined();
    expect(loadConfig({ ...base, UPSTREAM_URLS: '' }).UPSTREAM_URLS).toEqual({});
  });

  it.each([
    ['reports', 'UPSTREAM_URLS: "reports" must be <upstream>=<url>'],
    ['=http://a:1', 'UPSTREAM_URLS: "=http://a:1" must be <upstream>=<url>'],
    ['Reports=http://a:1', 'UPSTREAM_URLS: upstream name "Reports" must be lower-case'],
    ['reports=http://a:1,reports=http://b:1', 'UPSTREAM_URLS: reports is named twice'],
    ['reports=http://a:1/v2', 'UPSTREAM_URLS: reports: "http://a:1/v2" must be an origin only'],
    ['tenant-service=http://a:1', 'UPSTREAM_URLS: tenant-service: its URL is TENANT_SERVICE_URL'],
  ])('UPSTREAM_URLS=%s stops the start', (value, message) => {
    expect(() => loadConfig({ ...base, UPSTREAM_URLS: value })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, UPSTREAM_URLS: value })).toThrow(message);
  });

  it('an override wins over the wiring, which wins over the file; timeouts default to UPSTREAM_TIMEOUT_MS', () => {
    const wired = { 'tenant-service': 'http://127.0.0.1:8090', reports: 'http://127.0.0.1:9999' };
    const fileOnly = resolveUpstreams(policy, loadConfig({ ...base, UPSTREAM_TIMEOUT_MS: '1234' }), { 'tenant-service': 'http://127.0.0.1:8090' });
    expect(fileOnly).toEqual([
      { name: 'reports', url: 'http://reports.internal:8080', timeoutMs: 750, stripPrefix: '/api/v1', healthPath: '/healthz' },
      { name: 'tenant-service', url: 'http://127.0.0.1:8090', timeoutMs: 1234, stripPrefix: undefined, healthPath: '/healthz' },
    ]);
    expect(resolveUpstreams(policy, loadConfig(base), wired).find((u) => u.name === 'reports')?.url).toBe('http://127.0.0.1:9999');
    const overridden = resolveUpstreams(policy, loadConfig({ ...base, UPSTREAM_URLS: 'reports=https://reports.prod:443' }), wired);
    expect(overridden.find((u) => u.name === 'reports')?.url).toBe('https://reports.prod:443');
  });

  it('an override naming an upstream the policy does not use stops the start, listing the ones it has', () => {
    const config = loadConfig({ ...base, UPSTREAM_URLS: 'reports=http://a:1,billing=http://b:1' });
    expect(() => resolveUpstreams(policy, config, { 'tenant-service': 'http://127.0.0.1:8090' })).toThrow(
      'UPSTREAM_URLS: "billing" not an upstream of routes.yaml (its upstreams: reports, tenant-service)',
    );
  });

  it('a TENANT_SERVICE_URL with a path stops the start, named as TENANT_SERVICE_URL', () => {
    expect(() => resolveUpstreams(policy, loadConfig(base), { 'tenant-service': 'http://127.0.0.1:8090/x' })).toThrow(/TENANT_SERVICE_URL: must be an origin only/);
  });
});
