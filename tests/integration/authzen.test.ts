// The AuthZEN PDP over real HTTP against a real OpenFGA store holding the certification
// fixture (tests/fixtures/authzen/): the Basic Core and Batch Core cases, the callers it
// answers (clients granted can_evaluate) and refuses, X-Request-ID, the 400s, and the
// three evaluations semantics with their short circuits counted at the engine.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import pino from 'pino';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseModel } from '../../src/fga/model.js';
import { authenticate, createTokenVerifier, trustIssuer } from '../../src/gateway/authenticate.js';
import { createAuthzenApp, MAX_EVALUATIONS } from '../../src/gateway/authzen.js';
import { normalise } from '../../src/gateway/normalise.js';
import { requestContext } from '../../src/gateway/request-context.js';
import type { GatewayEnv } from '../../src/gateway/types.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { owned, tempDir, useCleanup } from '../support/cleanup.js';
import { CountingAuthorizer, engineFor } from '../support/decisions-fixture.js';
import { createTestStore, type TestStore } from '../support/fga.js';
import { call } from '../support/json-call.js';
import { createTestIssuer, type TestIssuer } from '../support/test-issuer.js';

useCleanup();

const FIXTURES = join(REPO_ROOT, 'tests', 'fixtures', 'authzen');

interface CertificationCase {
  id: string;
  endpoint: 'evaluation' | 'evaluations';
  request?: unknown;
  raw?: { contentType: string; body: string };
  status: number;
  decision?: boolean;
  decisions?: Array<boolean | null>;
}

interface CertificationFile {
  model: string;
  tuples: Array<{ user: string; relation: string; object: string }>;
  cases: CertificationCase[];
}

const fixture = parse(readFileSync(join(FIXTURES, 'certification.yaml'), 'utf8')) as CertificationFile;
const fixtureModel = parseModel(readFileSync(join(FIXTURES, fixture.model), 'utf8'));

/** The granted client; `stranger` is a client without the grant. */
const CLIENT = 'pep-1';

let store: TestStore;
let issuer: TestIssuer;
let engine: CountingAuthorizer;
let pdpUrl: string;
let clientAuth: string;

/** A PDP as the gateway builds it (the same stages), on its own listener, over the fixture store. */
async function startPdp(opts: { publicUrl?: string; listObjectsMaxResults?: number } = {}): Promise<string> {
  const verifier = createTokenVerifier({
    issuers: [trustIssuer({ issuer: issuer.issuer, audiences: [issuer.audience], algorithms: ['EdDSA'], jwksFile: issuer.jwksFile }, { cooldownS: 30, cacheMaxAgeS: 600 })],
    clockToleranceS: 5,
    tokenCacheMax: 100,
  });
  const app = new Hono<GatewayEnv>();
  app.use('*', requestContext({ logger: pino({ level: 'silent' }), trustedProxies: new Set() }));
  app.route(
    '/',
    createAuthzenApp({
      model: fixtureModel.request,
      authorizer: engine,
      normalise: normalise({ maxPathLength: 2048, maxHeaderBytes: 16384 }),
      authenticate: authenticate(verifier),
      publicUrl: opts.publicUrl,
      listObjects: async (user, relation, type) => (await store.client.listObjects({ user, relation, type })).objects,
      ...(opts.listObjectsMaxResults !== undefined ? { listObjectsMaxResults: opts.listObjectsMaxResults } : {}),
    }),
  );
  const listener = getRequestListener(app.fetch);
  const server = createServer((req, res) => void listener(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  owned(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  issuer = await createTestIssuer(tempDir());
  store = await createTestStore({ model: fixtureModel, authzenClients: [CLIENT] });
  await store.client.write({ writes: fixture.tuples });
  engine = new CountingAuthorizer(engineFor(store));
  pdpUrl = await startPdp();
  clientAuth = `Bearer ${await issuer.token(CLIENT, { claims: { client_id: CLIENT } })}`;
});

async function post(endpoint: string, body: unknown, headers: Record<string, string> = {}) {
  return call(pdpUrl, 'POST', `/access/v1/${endpoint}`, { auth: clientAuth, body, headers });
}

describe('certification: Basic Core and Batch Core', () => {
  it.each(fixture.cases.map((c) => [c.id, c] as const))('%s', async (_id, c) => {
    let res;
    if (c.raw) {
      const r = await fetch(`${pdpUrl}/access/v1/${c.endpoint}`, {
        method: 'POST',
        headers: { authorization: clientAuth, 'content-type': c.raw.contentType },
        body: c.raw.body,
      });
      res = { status: r.status, contentType: r.headers.get('content-type') ?? '', text: await r.text() };
    } else {
      const r = await post(c.endpoint, c.request);
      res = { status: r.status, contentType: r.contentType, text: r.text };
    }
    expect(res.status, res.text).toBe(c.status);
    if (c.status !== 200) {
      // The HTTPS binding's error body: a message string, not JSON.
      expect(res.contentType).toMatch(/^text\/plain/);
      expect(res.text.length).toBeGreaterThan(0);
      return;
    }
    expect(res.contentType).toMatch(/^application\/json/);
    const body = JSON.parse(res.text) as { decision?: unknown; evaluations?: Array<{ decision: unknown; context?: unknown }> };
    if (c.decision !== undefined) {
      expect(body.decision).toBe(c.decision);
      expect(body.evaluations).toBeUndefined();
    }
    if (c.decisions !== undefined) {
      expect(body.decision).toBeUndefined();
      expect(body.evaluations).toHaveLength(c.decisions.length);
      body.evaluations!.forEach((e, i) => {
        expect(typeof e.decision).toBe('boolean');
        if (c.decisions![i] !== null) expect(e.decision, `evaluation ${i}`).toBe(c.decisions![i]);
        if (e.context !== undefined) expect(typeof e.context).toBe('object');
      });
    }
  });

  it('answers the same request the same way every time (idempotency)', async () => {
    const request = { subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'record', id: 'record-1' } };
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push((await post('evaluation', request)).body);
    expect(answers).toEqual(Array(5).fill({ decision: true }));
  });

  it('an item that fails inside a batch carries the error in its context', async () => {
    const res = await post('evaluations', {
      subject: { type: 'user', id: 'alice' },
      action: { name: 'read' },
      evaluations: [{ resource: { type: 'record', id: 'record-1' } }, {}, { resource: { type: 'record', id: 'bad id' } }],
    });
    expect(res.status).toBe(200);
    expect(res.body.evaluations[0]).toEqual({ decision: true });
    expect(res.body.evaluations[1]).toMatchObject({ decision: false, context: { error: { status: 400 } } });
    expect(res.body.evaluations[1].context.error.message).toContain('resource');
    expect(res.body.evaluations[2]).toMatchObject({ decision: false, context: { error: { status: 400 } } });
  });
});

describe('who may ask', () => {
  const request = { subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'record', id: 'record-1' } };

  it('no token: 401 with WWW-Authenticate', async () => {
    const res = await call(pdpUrl, 'POST', '/access/v1/evaluation', { body: request });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(res.contentType).toMatch(/^text\/plain/);
  });

  it('an invalid token: 401 with WWW-Authenticate naming invalid_token', async () => {
    const res = await call(pdpUrl, 'POST', '/access/v1/evaluation', { auth: 'Bearer a.b.c', body: request });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('invalid_token');
  });

  it('an end-user token (no client_id = sub): 403, even for a user named like the client', async () => {
    for (const sub of ['alice', CLIENT]) {
      const res = await call(pdpUrl, 'POST', '/access/v1/evaluation', { auth: `Bearer ${await issuer.token(sub)}`, body: request });
      expect(res.status, sub).toBe(403);
      expect(res.text).toContain('not end users');
    }
    // client_id naming another party (a user's token issued through an app) is not a client token either.
    const viaApp = await issuer.token('alice', { claims: { client_id: CLIENT } });
    expect((await call(pdpUrl, 'POST', '/access/v1/evaluation', { auth: `Bearer ${viaApp}`, body: request })).status).toBe(403);
  });

  it('a client without can_evaluate: 403', async () => {
    const token = await issuer.token('stranger', { claims: { client_id: 'stranger' } });
    const res = await call(pdpUrl, 'POST', '/access/v1/evaluations', { auth: `Bearer ${token}`, body: request });
    expect(res.status).toBe(403);
    expect(res.text).toContain('can_evaluate');
  });

  it('a granted client: 200; revoking its grant refuses its next request', async () => {
    const token = await issuer.token('pep-2', { claims: { client_id: 'pep-2' } });
    const grant = { user: 'client:pep-2', relation: 'can_evaluate', object: 'platform:root' };
    await store.client.write({ writes: [grant] });
    expect((await call(pdpUrl, 'POST', '/access/v1/evaluation', { auth: `Bearer ${token}`, body: request })).body).toEqual({ decision: true });
    await store.client.write({ deletes: [grant] });
    expect((await call(pdpUrl, 'POST', '/access/v1/evaluation', { auth: `Bearer ${token}`, body: request })).status).toBe(403);
  });
});

describe('request identification', () => {
  const request = { subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'record', id: 'record-1' } };

  it('echoes X-Request-ID as sent, on answers and on errors', async () => {
    const id = 'bfe9eb29-ab87-4ca3-be83-a1d5d8305716 from the PEP';
    const ok = await post('evaluation', request, { 'x-request-id': id });
    expect([ok.status, ok.headers.get('x-request-id')]).toEqual([200, id]);
    const bad = await post('evaluation', { subject: 'alice' }, { 'x-request-id': 'req-400' });
    expect([bad.status, bad.headers.get('x-request-id')]).toEqual([400, 'req-400']);
    const unauthenticated = await call(pdpUrl, 'POST', '/access/v1/evaluation', { body: request, headers: { 'x-request-id': 'req-401' } });
    expect([unauthenticated.status, unauthenticated.headers.get('x-request-id')]).toEqual([401, 'req-401']);
  });

  it('without one, the answer still carries an id of its own', async () => {
    const res = await post('evaluation', request);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('what is a 400 and what is a deny', () => {
  const alice = { type: 'user', id: 'alice' };
  const record1 = { type: 'record', id: 'record-1' };

  it.each([
    ['an unknown evaluations_semantic', { subject: alice, action: { name: 'read' }, options: { evaluations_semantic: 'first_wins' }, evaluations: [{ resource: record1 }] }],
    ['evaluations that is not an array', { subject: alice, action: { name: 'read' }, resource: record1, evaluations: { resource: record1 } }],
    ['a malformed top-level default', { subject: { type: 'user' }, action: { name: 'read' }, evaluations: [{ resource: record1 }] }],
    ['properties that are not an object', { subject: { ...alice, properties: 'x' }, action: { name: 'read' }, resource: record1 }],
    [`more than ${MAX_EVALUATIONS} evaluations`, { subject: alice, action: { name: 'read' }, evaluations: Array(MAX_EVALUATIONS + 1).fill({ resource: record1 }) }],
    ['a body that is an array', [{ subject: alice, action: { name: 'read' }, resource: record1 }]],
  ])('%s: 400 with a message', async (_name, body) => {
    const res = await post('evaluations', body);
    expect(res.status, res.text).toBe(400);
    expect(res.contentType).toMatch(/^text\/plain/);
  });

  it('an id that cannot be an id: 400 for a single evaluation', async () => {
    const bad = await post('evaluation', { subject: { type: 'user', id: 'alice smith' }, action: { name: 'read' }, resource: record1 });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('subject.id');
    const badResource = await post('evaluation', { subject: alice, action: { name: 'read' }, resource: { type: 'record', id: 'record-1#reader' } });
    expect(badResource.status).toBe(400);
  });

  it('what the model grants nothing on is a deny with a reason, and the engine is not asked', async () => {
    const before = engine.calls;
    const answers = await Promise.all([
      post('evaluation', { subject: alice, action: { name: 'reader' }, resource: record1 }),
      post('evaluation', { subject: alice, action: { name: 'can_evaluate' }, resource: record1 }),
      post('evaluation', { subject: alice, action: { name: 'read' }, resource: { type: 'folder', id: 'f1' } }),
      post('evaluation', { subject: { type: 'client', id: CLIENT }, action: { name: 'read' }, resource: record1 }),
    ]);
    expect(answers.map((a) => a.body)).toEqual([
      { decision: false, context: { reason: 'unknown_action' } },
      { decision: false, context: { reason: 'unknown_action' } },
      { decision: false, context: { reason: 'unknown_resource_type' } },
      { decision: false, context: { reason: 'unsupported_subject_type' } },
    ]);
    // Only each request's own client check reached the engine.
    expect(engine.calls - before).toBe(4);
  });

  it('"read" and "can_read" name the same permission', async () => {
    const res = await post('evaluations', { subject: { type: 'user', id: 'bob' }, resource: record1, evaluations: [{ action: { name: 'can_read' } }, { action: { name: 'can_write' } }] });
    expect(res.body).toEqual({ evaluations: [{ decision: true }, { decision: false }] });
  });

  it('GET on an evaluation endpoint is 405 with Allow; an unknown path under /access/v1 is 404', async () => {
    const get = await call(pdpUrl, 'GET', '/access/v1/evaluation', { auth: clientAuth });
    expect([get.status, get.headers.get('allow')]).toEqual([405, 'POST']);
    expect((await call(pdpUrl, 'POST', '/access/v1/search/subject', { auth: clientAuth, body: {} })).status).toBe(404);
    expect((await call(pdpUrl, 'GET', '/access/v1/search/action', { auth: clientAuth })).status).toBe(405);
  });
});

describe('evaluations semantics', () => {
  const permit = { subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'record', id: 'record-1' } };
  const deny = { subject: { type: 'user', id: 'bob' }, action: { name: 'write' }, resource: { type: 'record', id: 'record-1' } };

  /** The answer and how many checks reached the engine for the evaluations (the client check excluded). */
  async function run(semantic: string | undefined, evaluations: unknown[]) {
    const before = engine.calls;
    const res = await post('evaluations', { ...(semantic ? { options: { evaluations_semantic: semantic } } : {}), evaluations });
    expect(res.status, res.text).toBe(200);
    return { decisions: (res.body.evaluations as Array<{ decision: boolean }>).map((e) => e.decision), asked: engine.calls - before - 1 };
  }

  it('execute_all (and no semantic) answers every item, in order', async () => {
    expect(await run('execute_all', [permit, deny, permit, deny])).toEqual({ decisions: [true, false, true, false], asked: 4 });
    expect(await run(undefined, [deny, permit])).toEqual({ decisions: [false, true], asked: 2 });
  });

  it('deny_on_first_deny stops at the first deny: the items after it are never asked', async () => {
    expect(await run('deny_on_first_deny', [permit, deny, permit, permit])).toEqual({ decisions: [true, false], asked: 2 });
    expect(await run('deny_on_first_deny', [permit, permit])).toEqual({ decisions: [true, true], asked: 2 });
  });

  it('deny_on_first_deny counts a failed item as the first deny', async () => {
    expect(await run('deny_on_first_deny', [{ subject: permit.subject }, permit, permit])).toEqual({ decisions: [false], asked: 0 });
  });

  it('permit_on_first_permit stops at the first permit', async () => {
    expect(await run('permit_on_first_permit', [deny, deny, permit, deny])).toEqual({ decisions: [false, false, true], asked: 3 });
    expect(await run('permit_on_first_permit', [deny, {}, deny])).toEqual({ decisions: [false, false, false], asked: 2 });
  });
});

describe('metadata', () => {
  it('is public and names absolute endpoints from the request origin', async () => {
    const res = await call(pdpUrl, 'GET', '/.well-known/authzen-configuration');
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^application\/json/);
    expect(res.body).toEqual({
      policy_decision_point: pdpUrl,
      access_evaluation_endpoint: `${pdpUrl}/access/v1/evaluation`,
      access_evaluations_endpoint: `${pdpUrl}/access/v1/evaluations`,
      search_resource_endpoint: `${pdpUrl}/access/v1/search/resource`,
      search_action_endpoint: `${pdpUrl}/access/v1/search/action`,
    });
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('uses the configured public URL when there is one', async () => {
    const url = await startPdp({ publicUrl: 'https://pdp.example.com/' });
    const res = await call(url, 'GET', '/.well-known/authzen-configuration');
    expect(res.body).toEqual({
      policy_decision_point: 'https://pdp.example.com',
      access_evaluation_endpoint: 'https://pdp.example.com/access/v1/evaluation',
      access_evaluations_endpoint: 'https://pdp.example.com/access/v1/evaluations',
      search_resource_endpoint: 'https://pdp.example.com/access/v1/search/resource',
      search_action_endpoint: 'https://pdp.example.com/access/v1/search/action',
    });
    expect(res.headers.get('cache-control')).toBe('public, max-age=300');
  });
});

describe('search', () => {
  const carol = { type: 'user', id: 'carol' };

  beforeAll(async () => {
    await store.client.write({ writes: ['c', 'a', 'b'].map((x) => ({ user: 'user:carol', relation: 'reader', object: `record:record-${x}` })) });
  });

  it('action search: the permissions the subject holds on the resource', async () => {
    const alice = await post('search/action', { subject: { type: 'user', id: 'alice' }, resource: { type: 'record', id: 'record-1' } });
    const bob = await post('search/action', { subject: { type: 'user', id: 'bob' }, resource: { type: 'record', id: 'record-1' }, action: { name: 'ignored' } });
    expect(alice.body).toEqual({ results: [{ name: 'can_delete' }, { name: 'can_read' }, { name: 'can_write' }] });
    expect(bob.body).toEqual({ results: [{ name: 'can_read' }] });
    expect((await post('search/action', { subject: carol, resource: { type: 'folder', id: 'f' } })).body).toEqual({ results: [] });
    expect((await post('search/action', { subject: carol, resource: { type: 'record' } })).status).toBe(400);
  });

  it('resource search: every object of the type, whole, and the searched id is ignored', async () => {
    const res = await post('search/resource', { subject: carol, action: { name: 'read' }, resource: { type: 'record', id: 'ignored' } });
    expect(res.body).toEqual({ results: ['a', 'b', 'c'].map((x) => ({ type: 'record', id: `record-${x}` })) });
    const none = await post('search/resource', { subject: carol, action: { name: 'write' }, resource: { type: 'record' } });
    expect(none.body).toEqual({ results: [] });
    const unknown = await post('search/resource', { subject: carol, action: { name: 'reader' }, resource: { type: 'record' } });
    expect(unknown.body).toEqual({ results: [], context: { reason: 'unknown_action' } });
  });

  it('pages when asked, to the end, and refuses a token sent with another query', async () => {
    const query = { subject: carol, action: { name: 'read' }, resource: { type: 'record' } };
    const first = await post('search/resource', { ...query, page: { limit: 2 } });
    expect(first.body.page).toMatchObject({ count: 2, total: 3 });
    expect(first.body.results.map((r: { id: string }) => r.id)).toEqual(['record-a', 'record-b']);
    const second = await post('search/resource', { ...query, page: { limit: 2, token: first.body.page.next_token } });
    expect(second.body).toEqual({ page: { next_token: '', count: 1, total: 3 }, results: [{ type: 'record', id: 'record-c' }] });
    const otherQuery = await post('search/resource', { ...query, action: { name: 'write' }, page: { limit: 2, token: first.body.page.next_token } });
    expect(otherQuery.status).toBe(400);
    expect((await post('search/resource', { ...query, page: { token: 'bm90LWEtdG9rZW4' } })).status).toBe(400);
  });

  it('an answer that may be cut short by the list bound is refused, never sent incomplete', async () => {
    const bounded = await startPdp({ listObjectsMaxResults: 3 });
    const res = await call(bounded, 'POST', '/access/v1/search/resource', { auth: clientAuth, body: { subject: carol, action: { name: 'read' }, resource: { type: 'record' } } });
    expect(res.status).toBe(503);
    expect(res.text).toContain('incomplete');
    const below = await call(bounded, 'POST', '/access/v1/search/resource', { auth: clientAuth, body: { subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'record' } } });
    expect(below.body).toEqual({ results: [{ type: 'record', id: 'record-1' }] });
  });
});
