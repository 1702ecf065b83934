// The shadow (candidate) route policy against real OpenFGA and HTTP: a candidate
// derived from policy/routes.yaml with four changes (one permission tightened, one
// loosened, one rule renamed, one rule removed) is evaluated beside the enforced
// policy. Every request is still answered by the enforced policy; the divergences
// appear in tiergate_shadow_divergences_total and in GET /admin/v1/policy/shadow,
// which only platform admins may read. Sampling 0 evaluates nothing; a bad candidate
// file stops the start naming file:line:col.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { policyVersion } from '../../src/gateway/shadow.js';
import { useCleanup, tempDir } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { adminOk, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

const ENFORCED = readFileSync('policy/routes.yaml', 'utf8');

/** One exact replacement that must apply (so the candidate is what the test says it is). */
function replaceOnce(text: string, from: string | RegExp, to: string): string {
  const out = text.replace(from, to);
  expect(out, `candidate edit ${String(from)}`).not.toBe(text);
  return out;
}

function candidateText(): string {
  let t = ENFORCED;
  // allow → deny for tenant members: listing agents needs the configuration permission.
  t = replaceOnce(t, /(- id: agents\.list\n(?:.*\n)*?\s+permission: )can_read_operational/, '$1can_read_configuration');
  // deny → allow for tenant members: listing configurations needs only operational read.
  t = replaceOnce(t, /(- id: configurations\.list\n(?:.*\n)*?\s+permission: )can_read_configuration/, '$1can_read_operational');
  // Same outcome from another rule: queues.list renamed.
  t = replaceOnce(t, '- id: queues.list\n', '- id: queues.index\n');
  // No rule: reading one call record is gone.
  t = replaceOnce(t, / {2}- id: call-records\.read\n(?:.+\n)+\n/, '');
  return t;
}

const A = '/api/v1/tenants/t1';
/** A test that starts a gateway of its own (a fresh store, tenant service and gateway). */
const START_TIMEOUT_MS = 120_000;

let upstream: RecordingUpstream;
let s: TestStack;
let candidateFile: string;
let mia: string;
let tom: string;

async function metricsText(stack: TestStack): Promise<string> {
  return stack.gateway.registry.metrics();
}

function counter(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function summary(stack: TestStack, sub = 'pat') {
  await stack.gateway.shadow?.settled();
  return call(stack.gatewayUrl, 'GET', '/admin/v1/policy/shadow', { auth: await stack.authHeader(sub) });
}

async function seed(stack: TestStack): Promise<void> {
  const ok = (sub: string, method: string, path: string, body?: unknown) => adminOk(stack, sub, method, path, body);
  await ok('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await ok('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  await ok('olivia', 'PUT', '/tenants/t1/roles/admin/tom');
  await ok('olivia', 'PUT', '/tenants/t1/roles/member/mia');
}

beforeAll(async () => {
  const dir = tempDir('tiergate-shadow-');
  candidateFile = join(dir, 'candidate.yaml');
  writeFileSync(candidateFile, candidateText());
  upstream = await startRecordingUpstream();
  s = await startTestStack({
    platformAdmins: ['pat'],
    upstreamUrl: upstream.url,
    env: { SHADOW_POLICY_FILE: candidateFile, SHADOW_SAMPLE_RATE: '1' },
    captureLogs: true,
  });
  await seed(s);
  mia = await s.authHeader('mia');
  tom = await s.authHeader('tom');
});

describe('a candidate evaluated beside the enforced policy (SHADOW_SAMPLE_RATE=1)', () => {
  it('allow → deny: the enforced policy still answers (200, forwarded); the divergence is counted and summarised', async () => {
    upstream.clear();
    const res = await call(s.gatewayUrl, 'GET', `${A}/agents`, { auth: mia });
    expect(res.status, res.text).toBe(200);
    expect(upstream.received.map((r) => r.url)).toEqual([`${A}/agents`]);
    const requestId = res.headers.get('x-request-id');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);

    const sum = await summary(s);
    expect(sum.status, sum.text).toBe(200);
    const d = (sum.body.divergences as Array<Record<string, any>>).find((x) => x.kind === 'allow_to_deny'); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(d).toMatchObject({ rule: 'agents.list', candidateRule: 'agents.list', count: 1 });
    expect(d!.examples[0]).toEqual({
      requestId,
      at: expect.any(String),
      subject: 'user:mia',
      method: 'GET',
      path: `${A}/agents`,
      enforced: { outcome: 'allow', rule: 'agents.list', permission: 'can_read_operational', object: 'tenant:t1' },
      candidate: { outcome: 'deny', rule: 'agents.list', permission: 'can_read_configuration', object: 'tenant:t1' },
    });
    expect(sum.text).not.toContain('Bearer');
    const metrics = await metricsText(s);
    expect(counter(metrics, 'tiergate_shadow_divergences_total', 'kind="allow_to_deny",rule="agents.list",candidate_rule="agents.list"')).toBe(1);
    expect(s.logs.some((l) => l.includes('shadow policy diverges') && l.includes(requestId!))).toBe(true);

    // The same request from the tenant admin: allowed by both, on another permission.
    expect((await call(s.gatewayUrl, 'GET', `${A}/agents`, { auth: tom })).status).toBe(200);
    const after = await summary(s);
    expect(after.body.byKind).toMatchObject({ allow_to_deny: 1, rule_changed: 1 });
    const same = (after.body.divergences as Array<Record<string, any>>).find((x) => x.kind === 'rule_changed'); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(same).toMatchObject({ rule: 'agents.list', candidateRule: 'agents.list', count: 1 });
    expect(same!.examples[0].candidate).toMatchObject({ outcome: 'allow', permission: 'can_read_configuration' });
  });

  it('deny → allow: still 403 and not forwarded; counted as deny_to_allow', async () => {
    upstream.clear();
    const res = await call(s.gatewayUrl, 'GET', `${A}/configurations`, { auth: mia });
    expect(res.status, res.text).toBe(403);
    expect(res.body.permission).toBe('can_read_configuration');
    expect(upstream.received).toEqual([]);
    const sum = await summary(s);
    const d = (sum.body.divergences as Array<Record<string, any>>).find((x) => x.kind === 'deny_to_allow'); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(d).toMatchObject({ rule: 'configurations.list', candidateRule: 'configurations.list', count: 1 });
    expect(d!.examples[0].requestId).toBe(res.headers.get('x-request-id'));
    expect(counter(await metricsText(s), 'tiergate_shadow_divergences_total', 'kind="deny_to_allow",rule="configurations.list",candidate_rule="configurations.list"')).toBe(1);
  });

  it('the same outcome from another rule is rule_changed; a removed rule is route_changed (candidate: no rule)', async () => {
    expect((await call(s.gatewayUrl, 'GET', `${A}/queues`, { auth: tom })).status).toBe(200);
    expect((await call(s.gatewayUrl, 'GET', `${A}/call-records/c1`, { auth: mia })).status).toBe(200);
    const sum = await summary(s);
    const divergences = sum.body.divergences as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(divergences.find((x) => x.kind === 'rule_changed' && x.rule === 'queues.list')).toMatchObject({ candidateRule: 'queues.index', count: 1 });
    const removed = divergences.find((x) => x.kind === 'route_changed');
    expect(removed).toMatchObject({ rule: 'call-records.read', candidateRule: '-', count: 1 });
    expect(removed!.examples[0].enforced.outcome).toBe('allow');
    expect(removed!.examples[0].candidate).toEqual({ outcome: 'no-route', rule: '-' });
    const metrics = await metricsText(s);
    expect(counter(metrics, 'tiergate_shadow_divergences_total', 'kind="rule_changed",rule="queues.list",candidate_rule="queues.index"')).toBe(1);
    expect(counter(metrics, 'tiergate_shadow_divergences_total', 'kind="route_changed",rule="call-records.read",candidate_rule="-"')).toBe(1);
  });

  it('requests both policies decide alike are evaluated and counted as matching; a 404 of both is no divergence', async () => {
    const before = (await summary(s)).body;
    expect((await call(s.gatewayUrl, 'GET', `${A}/agents/2000`, { auth: tom })).status).toBe(200);
    expect((await call(s.gatewayUrl, 'GET', `${A}/nothing-here`, { auth: tom })).status).toBe(404);
    const after = (await summary(s)).body;
    expect(after.requestsEvaluated - before.requestsEvaluated).toBe(2);
    expect(after.matching - before.matching).toBe(2);
    expect(after.diverging).toBe(before.diverging);
    expect(counter(await metricsText(s), 'tiergate_shadow_evaluations_total', 'result="match"')).toBe(after.matching);
  });

  it('the summary names both policy versions (content hashes) and the sample rate', async () => {
    const sum = (await summary(s)).body;
    expect(sum.enabled).toBe(true);
    expect(sum.sampleRate).toBe(1);
    expect(sum.enforced.version).toBe(policyVersion(ENFORCED));
    expect(sum.candidate).toEqual({ file: candidateFile, version: policyVersion(readFileSync(candidateFile, 'utf8')) });
    expect(sum.enforced.version).not.toBe(sum.candidate.version);
    expect(sum.errors).toBe(0);
  });

  it('only platform admins read the summary: an organization admin gets 403, no token 401', async () => {
    expect((await summary(s, 'pat')).status).toBe(200);
    const org = await summary(s, 'olivia');
    expect(org.status, org.text).toBe(403);
    expect(org.body.type).toBe('https://tiergate.dev/problems/forbidden');
    expect((await summary(s, 'tom')).status).toBe(403);
    expect((await call(s.gatewayUrl, 'GET', '/admin/v1/policy/shadow')).status).toBe(401);
  });

  it('the admin OpenAPI document describes the endpoint', async () => {
    const doc = await call(s.gatewayUrl, 'GET', '/admin/v1/openapi.json');
    expect(doc.body.paths['/policy/shadow'].get.responses['200']).toBeDefined();
  });
});

describe('sampling and start checks', () => {
  it('SHADOW_SAMPLE_RATE=0 evaluates nothing; requests are answered as usual', async () => {
    const zero = await startTestStack({ platformAdmins: ['pat'], upstreamUrl: upstream.url, env: { SHADOW_POLICY_FILE: candidateFile, SHADOW_SAMPLE_RATE: '0' } });
    await seed(zero);
    const member = await zero.authHeader('mia');
    expect((await call(zero.gatewayUrl, 'GET', `${A}/agents`, { auth: member })).status).toBe(200);
    expect((await call(zero.gatewayUrl, 'GET', `${A}/configurations`, { auth: member })).status).toBe(403);
    const sum = await summary(zero);
    expect(sum.status, sum.text).toBe(200);
    expect(sum.body).toMatchObject({ enabled: true, sampleRate: 0, requestsEvaluated: 0, diverging: 0, divergences: [] });
    expect(counter(await metricsText(zero), 'tiergate_shadow_evaluations_total', 'result="match"')).toBe(0);
    expect(counter(await metricsText(zero), 'tiergate_shadow_evaluations_total', 'result="divergent"')).toBe(0);
    await zero.stop();
  }, START_TIMEOUT_MS);

  it('a bad shadow file stops the start naming file:line:col', async () => {
    const bad = join(tempDir('tiergate-shadow-bad-'), 'bad.yaml');
    writeFileSync(bad, replaceOnce(ENFORCED, /(- id: agents\.list\n(?:.*\n)*?\s+permission: )can_read_operational/, '$1can_fly'));
    const line = readFileSync(bad, 'utf8').split('\n').findIndex((l) => l.includes('can_fly')) + 1;
    await expect(startTestStack({ upstreamUrl: upstream.url, env: { SHADOW_POLICY_FILE: bad } })).rejects.toThrow(
      new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:${line}:\\d+: rules\\[0\\]\\.permission: "can_fly" is not a relation`),
    );
  }, START_TIMEOUT_MS);

  it('without SHADOW_POLICY_FILE the summary says shadow is off', async () => {
    const off = await startTestStack({ platformAdmins: ['pat'], upstreamUrl: upstream.url });
    const sum = await summary(off);
    expect(sum.status, sum.text).toBe(200);
    expect(sum.body).toMatchObject({ enabled: false, requestsEvaluated: 0, divergences: [] });
    expect(sum.body.candidate).toBeUndefined();
    expect(off.gateway.shadow).toBeUndefined();
    await off.stop();
  }, START_TIMEOUT_MS);
});
