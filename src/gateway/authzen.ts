// The OpenID AuthZEN Authorization API 1.0 (a policy decision point): another policy
// enforcement point asks "may this user do this to that object?" and gets the decision
// the gateway itself would make: the same model, the same mapping of tenant resources,
// the same decision cache (./authzen-mapping.ts).
//
//   POST /access/v1/evaluation             one evaluation → {"decision": bool}
//   POST /access/v1/evaluations            top-level defaults + `evaluations`, with
//                                          options.evaluations_semantic
//   POST /access/v1/search/action          the `can_*` permissions the subject holds on the resource
//   POST /access/v1/search/resource        the nodes of a type the subject holds a permission on
//                                          (OpenFGA ListObjects; an answer that may be cut short by
//                                          its bounds is refused, never sent incomplete)
//   GET  /.well-known/authzen-configuration  PDP metadata (public)
//
// Callers are clients, not end users: a bearer token from a trusted issuer issued to a
// client for itself (`client_id` = `sub`), and the model must grant that client
// `can_evaluate` on the platform. No token or a bad one is 401 with WWW-Authenticate;
// an end-user token or a client without the grant is 403.
//
// Errors are what the specification's HTTPS binding says: the status and an error
// message string (text/plain), not problem+json. `X-Request-ID` is echoed as sent.
import { createHash } from 'node:crypto';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { z } from 'zod';
import type { AuthorizationModel } from '@openfga/sdk';
import type { Logger } from 'pino';
import { bodyLimitWhenBody } from '../shared/body-limit.js';
import { parseJsonBody } from '../shared/json-body.js';
import { Problem } from '../shared/problem.js';
import { AuthzenMapping, type AuthzenEvaluation } from './authzen-mapping.js';
import type { Authorizer, Decision, RequestEnv } from '../authz/types.js';
import type { GatewayEnv } from './types.js';

export const AUTHZEN_PREFIX = '/access/v1';
export const AUTHZEN_METADATA_PATH = '/.well-known/authzen-configuration';
/** The platform object a client must hold `can_evaluate` on. */
const PLATFORM_OBJECT = 'platform:root';
/** The most evaluations one request may hold (more is a 400, never a truncated answer). */
export const MAX_EVALUATIONS = 100;
/** How many evaluations of an `execute_all` batch are asked at once. */
const PARALLEL = 8;
const MAX_BODY_BYTES = 256 * 1024;
const POST_PATHS: ReadonlySet<string> = new Set(['/evaluation', '/evaluations', '/search/action', '/search/resource']);

export const EVALUATIONS_SEMANTICS = ['execute_all', 'deny_on_first_deny', 'permit_on_first_permit'] as const;
export type EvaluationsSemantic = (typeof EVALUATIONS_SEMANTICS)[number];

export interface AuthzenDeps {
  model: Pick<AuthorizationModel, 'type_definitions'>;
  /** The decision cache (or the engine): the same the gateway asks. */
  authorizer: Authorizer;
  normalise: MiddlewareHandler<GatewayEnv>;
  authenticate: MiddlewareHandler<RequestEnv>;
  /** GATEWAY_PUBLIC_URL: the PDP identifier in the metadata; else the request's origin. */
  publicUrl?: string | undefined;
  log?: Logger;
  /** Every decision asked (metrics). */
  onDecision?: (decision: Decision) => void;
  /** OpenFGA ListObjects (`type:id` objects), fresh: enables the resource search. */
  listObjects?: (user: string, relation: string, type: string) => Promise<string[]>;
  /** OpenFGA's --listObjects-max-results (its default: 1000). */
  listObjectsMaxResults?: number;
  /** OpenFGA's --listObjects-deadline in ms (its default: 3000). */
  listObjectsDeadlineMs?: number;
}

// ---------------------------------------------------------------- request shapes
// Unknown members are ignored (the specification's forward compatibility); the members
// it names must have their types.

const properties = z.record(z.string(), z.unknown()).optional();
const entity = z.object({ type: z.string().min(1).max(128), id: z.string().min(1).max(256), properties });
const action = z.object({ name: z.string().min(1).max(128), properties });
const context = z.record(z.string(), z.unknown()).optional();

const evaluationRequest = z.object({ subject: entity, action, resource: entity, context });

const evaluationsRequest = z.object({
  subject: entity.optional(),
  action: action.optional(),
  resource: entity.optional(),
  context,
  evaluations: z.array(z.unknown()).max(MAX_EVALUATIONS, `at most ${MAX_EVALUATIONS} evaluations per request`).optional(),
  options: z.object({ evaluations_semantic: z.enum(EVALUATIONS_SEMANTICS).optional() }).optional(),
});

const evaluationItem = z.object({ subject: entity.optional(), action: action.optional(), resource: entity.optional(), context });

const page = z.object({ token: z.string().min(1).max(512).optional(), limit: z.number().int().min(0).max(1000).optional() }).optional();
/** The searched entity's `id` may be sent; it is ignored (the specification says so). */
const searchedResource = z.object({ type: entity.shape.type, properties });
const resourceSearchRequest = z.object({ subject: entity, action, resource: searchedResource, context, page });
const actionSearchRequest = z.object({ subject: entity, resource: entity, context, page });

/** A search answer: every result, or one page of them when the PEP asked for pages. */
interface SearchAnswer<T> {
  page?: { next_token: string; count: number; total: number };
  results: T[];
}

/**
 * Pages over the whole, sorted result set: a token holds the offset and a fingerprint
 * of the query, so a token sent with another query is refused (400), not misapplied.
 */
function paged<T>(all: readonly T[], request: { page?: { token?: string | undefined; limit?: number | undefined } | undefined }, query: unknown): SearchAnswer<T> {
  if (request.page === undefined) return { results: [...all] };
  const fingerprint = createHash('sha256').update(JSON.stringify([query, request.page.limit ?? null])).digest('base64url').slice(0, 22);
  let offset = 0;
  if (request.page.token !== undefined) {
    const m = /^(\d{1,9})\.([A-Za-z0-9_-]{22})$/.exec(Buffer.from(request.page.token, 'base64url').toString('latin1'));
    if (m === null || m[2] !== fingerprint) throw badRequest('page.token does not belong to this query (every other member must be as in the first request)');
    offset = Number(m[1]);
  }
  const results = all.slice(offset, offset + (request.page.limit ?? all.length));
  const end = offset + results.length;
  const nextToken = end < all.length ? Buffer.from(`${end}.${fingerprint}`, 'latin1').toString('base64url') : '';
  return { page: { next_token: nextToken, count: results.length, total: all.length }, results };
}

/** One answer of an evaluations response. */
export interface AuthzenDecision {
  decision: boolean;
  context?: Record<string, unknown>;
}

function issuesText(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`).join('; ');
}

function badRequest(message: string): Problem {
  return new Problem(400, 'invalid-request', 'Bad Request', { detail: message });
}

// ---------------------------------------------------------------- the app

export function createAuthzenApp(deps: AuthzenDeps): Hono<GatewayEnv> {
  const mapping = new AuthzenMapping(deps.model);
  const app = new Hono<GatewayEnv>();
  app.onError(renderAuthzenError(deps.log));

  app.get(AUTHZEN_METADATA_PATH, echoRequestId, deps.normalise, (c) => {
    const base = (deps.publicUrl ?? new URL(c.req.url).origin).replace(/\/+$/, '');
    return c.json(
      {
        policy_decision_point: base,
        access_evaluation_endpoint: `${base}${AUTHZEN_PREFIX}/evaluation`,
        access_evaluations_endpoint: `${base}${AUTHZEN_PREFIX}/evaluations`,
        ...(deps.listObjects ? { search_resource_endpoint: `${base}${AUTHZEN_PREFIX}/search/resource` } : {}),
        search_action_endpoint: `${base}${AUTHZEN_PREFIX}/search/action`,
      },
      200,
      // Derived from the request's Host, it must not be kept by a shared cache.
      { 'cache-control': deps.publicUrl !== undefined ? 'public, max-age=300' : 'no-store' },
    );
  });

  const ask = async (e: AuthzenEvaluation): Promise<AuthzenDecision> => {
    const q = mapping.question(e);
    if (q.kind === 'deny') return { decision: false, context: { reason: q.reason } };
    if (q.kind === 'invalid') return { decision: false, context: { error: { status: 400, message: q.message } } };
    const d = await deps.authorizer.check(q.check);
    deps.onDecision?.(d);
    return { decision: d.allowed === true };
  };

  app.use(
    `${AUTHZEN_PREFIX}/*`,
    echoRequestId,
    deps.normalise,
    deps.authenticate,
    requireClient(deps.authorizer, deps.log),
    bodyLimitWhenBody({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new Problem(413, 'payload-too-large', 'Payload Too Large', { detail: `the body is larger than ${MAX_BODY_BYTES} bytes` });
      },
    }),
  );

  app.post(`${AUTHZEN_PREFIX}/evaluation`, async (c) => {
    const parsed = evaluationRequest.safeParse(await readJson(c));
    if (!parsed.success) throw badRequest(issuesText(parsed.error));
    return c.json(await single(parsed.data, ask));
  });

  app.post(`${AUTHZEN_PREFIX}/evaluations`, async (c) => {
    const parsed = evaluationsRequest.safeParse(await readJson(c));
    if (!parsed.success) throw badRequest(issuesText(parsed.error));
    const req = parsed.data;
    // No (or an empty) `evaluations` array: the single evaluation, answered as one.
    if (req.evaluations === undefined || req.evaluations.length === 0) {
      const one = evaluationRequest.safeParse(req);
      if (!one.success) throw badRequest(issuesText(one.error));
      return c.json(await single(one.data, ask));
    }
    const items = req.evaluations.map((raw) => merged(req, raw));
    const semantic = req.options?.evaluations_semantic ?? 'execute_all';
    return c.json({ evaluations: await evaluateAll(items, semantic, (item) => answerItem(item, ask, deps.log)) });
  });

  app.post(`${AUTHZEN_PREFIX}/search/action`, async (c) => {
    const parsed = actionSearchRequest.safeParse(await readJson(c));
    if (!parsed.success) throw badRequest(issuesText(parsed.error));
    const { subject, resource } = parsed.data;
    const query = { subject: [subject.type, subject.id], resource: [resource.type, resource.id] };
    const names = subject.type === 'user' ? mapping.permissionsOf(resource.type) : [];
    const questions = names.map((name) => mapping.question({ subject, resource, action: { name } }));
    const invalid = questions.find((q) => q.kind === 'invalid');
    if (invalid !== undefined) throw badRequest(invalid.message);
    let allowed: boolean[];
    try {
      allowed = await Promise.all(
        questions.map(async (q) => {
          if (q.kind !== 'check') return false;
          const d = await deps.authorizer.check(q.check);
          deps.onDecision?.(d);
          return d.allowed === true;
        }),
      );
    } catch {
      throw unavailable();
    }
    return c.json(paged(names.filter((_n, i) => allowed[i]).map((name) => ({ name })), parsed.data, query));
  });

  const listObjects = deps.listObjects;
  if (listObjects !== undefined) {
    const maxResults = deps.listObjectsMaxResults ?? 1000;
    const deadlineMs = deps.listObjectsDeadlineMs ?? 3000;
    app.post(`${AUTHZEN_PREFIX}/search/resource`, async (c) => {
      const parsed = resourceSearchRequest.safeParse(await readJson(c));
      if (!parsed.success) throw badRequest(issuesText(parsed.error));
      const { subject, action: act, resource } = parsed.data;
      const query = { subject: [subject.type, subject.id], action: act.name, resource: resource.type };
      const q = mapping.search(subject, resource.type, act.name);
      if (q.kind === 'invalid') throw badRequest(q.message);
      if (q.kind === 'deny') return c.json({ ...paged([], parsed.data, query), context: { reason: q.reason } });
      const started = performance.now();
      let objects: string[];
      try {
        objects = await listObjects(q.user, q.relation, resource.type);
      } catch {
        throw unavailable();
      }
      // OpenFGA stops ListObjects silently at either bound: such an answer may be a subset.
      if (objects.length >= maxResults || performance.now() - started >= deadlineMs * 0.9) {
        throw new Problem(503, 'authorization-unavailable', 'Service Unavailable', {
          detail: 'the result set may be incomplete (OpenFGA list bound reached), so it is not sent; narrow the search or ask evaluations',
        });
      }
      const prefix = `${resource.type}:`;
      const ids = objects.filter((o) => o.startsWith(prefix)).map((o) => o.slice(prefix.length)).sort();
      return c.json(paged(ids.map((id) => ({ type: resource.type, id })), parsed.data, query));
    });
  }

  app.all(`${AUTHZEN_PREFIX}/*`, (c) => {
    if (POST_PATHS.has(c.req.path.slice(AUTHZEN_PREFIX.length)) && (c.req.path !== `${AUTHZEN_PREFIX}/search/resource` || listObjects !== undefined)) {
      throw new Problem(405, 'method-not-allowed', 'Method Not Allowed', { detail: 'use POST', headers: { allow: 'POST' } });
    }
    throw new Problem(404, 'not-found', 'Not Found', { detail: `no AuthZEN endpoint ${c.req.path}` });
  });
  return app;
}

/** A single evaluation: an engine failure is an error of the whole request (503), not a deny. */
async function single(e: AuthzenEvaluation, ask: (e: AuthzenEvaluation) => Promise<AuthzenDecision>): Promise<AuthzenDecision> {
  let answer: AuthzenDecision;
  try {
    answer = await ask(e);
  } catch {
    throw unavailable();
  }
  const error = answer.context?.['error'] as { message?: string } | undefined;
  if (error !== undefined) throw badRequest(error.message ?? 'invalid evaluation');
  return answer;
}

/** One item of a batch: complete after the defaults, or why not. */
type Item = { ok: true; evaluation: AuthzenEvaluation } | { ok: false; message: string };

/** The item with the top-level defaults for what it leaves out (whole entities, never merged field by field). */
function merged(top: z.infer<typeof evaluationsRequest>, raw: unknown): Item {
  const parsed = evaluationItem.safeParse(raw);
  if (!parsed.success) return { ok: false, message: issuesText(parsed.error) };
  const subject = parsed.data.subject ?? top.subject;
  const action = parsed.data.action ?? top.action;
  const resource = parsed.data.resource ?? top.resource;
  const missing = [subject ? undefined : 'subject', action ? undefined : 'action', resource ? undefined : 'resource'].filter(Boolean);
  if (!subject || !action || !resource) return { ok: false, message: `missing ${missing.join(', ')} (neither in the evaluation nor a top-level default)` };
  return { ok: true, evaluation: { subject, action, resource } };
}

/** An item's answer; every failure is a deny with the error in its context. */
async function answerItem(item: Item, ask: (e: AuthzenEvaluation) => Promise<AuthzenDecision>, log: Logger | undefined): Promise<AuthzenDecision> {
  if (!item.ok) return { decision: false, context: { error: { status: 400, message: item.message } } };
  try {
    return await ask(item.evaluation);
  } catch (err) {
    log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'authorization engine unavailable');
    return { decision: false, context: { error: { status: 503, message: 'the decision could not be made' } } };
  }
}

/**
 * The batch under its semantic. execute_all answers every item (PARALLEL at a time), in
 * request order. The short-circuit semantics ask one item after the other and stop at the
 * first deny (an error is a deny) or the first permit: the items after it are not asked,
 * and the answer ends with it.
 */
export async function evaluateAll<T>(items: readonly T[], semantic: EvaluationsSemantic, answer: (item: T) => Promise<AuthzenDecision>): Promise<AuthzenDecision[]> {
  if (semantic === 'execute_all') {
    const out = new Array<AuthzenDecision>(items.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < items.length) {
        const i = next++;
        out[i] = await answer(items[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
    return out;
  }
  const stopOn = semantic === 'permit_on_first_permit';
  const out: AuthzenDecision[] = [];
  for (const item of items) {
    const d = await answer(item);
    out.push(d);
    if (d.decision === stopOn) break;
  }
  return out;
}

// ---------------------------------------------------------------- the stages around it

/** The caller must be a client (not an end user) that the model lets ask. */
function requireClient(authorizer: Authorizer, log: Logger | undefined): MiddlewareHandler<GatewayEnv> {
  return async function requireClientStage(c, next) {
    const principal = c.get('principal');
    if (principal.clientId === undefined) {
      throw new Problem(403, 'forbidden', 'Forbidden', { detail: 'the AuthZEN API answers clients (a client-credentials token), not end users' });
    }
    let allowed: boolean;
    try {
      // No scope can be derived for the platform: asked fresh, so a revoked client is refused at once.
      const d = await authorizer.check({ user: `client:${principal.clientId}`, relation: 'can_evaluate', object: PLATFORM_OBJECT, contextualTuples: [], consistency: 'strong' });
      allowed = d.allowed === true;
    } catch (err) {
      log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'authorization engine unavailable');
      throw unavailable();
    }
    if (!allowed) throw new Problem(403, 'forbidden', 'Forbidden', { detail: 'this client may not use the AuthZEN API (it lacks can_evaluate)' });
    await next();
  };
}

function unavailable(): Problem {
  return new Problem(503, 'authorization-unavailable', 'Service Unavailable', {
    detail: 'the decision could not be made; retry later',
    headers: { 'retry-after': '1' },
  });
}

const JSON_MEDIA_TYPE = /^application\/json$/i;

/** The body: `Content-Type: application/json`, strict UTF-8 JSON, an object at the top. */
async function readJson(c: Context<GatewayEnv>): Promise<unknown> {
  const contentType = c.req.header('content-type');
  if (contentType === undefined || !JSON_MEDIA_TYPE.test(contentType.split(';')[0]!.trim())) {
    throw badRequest('Content-Type must be application/json');
  }
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.length === 0) throw badRequest('the body is empty');
  const parsed = parseJsonBody(bytes);
  if (!parsed.ok) throw badRequest(parsed.detail);
  if (parsed.value === null || typeof parsed.value !== 'object' || Array.isArray(parsed.value)) throw badRequest('the body must be a JSON object');
  return parsed.value;
}

/** The PEP's X-Request-ID, echoed as sent (the specification's request identification). */
const echoRequestId: MiddlewareHandler<GatewayEnv> = async function echoRequestId(c, next) {
  const offered = c.req.header('x-request-id');
  await next();
  if (offered !== undefined && offered !== '') c.res.headers.set('x-request-id', offered);
};

/** Errors as the HTTPS binding has them: the status, and an error message string. */
function renderAuthzenError(log: Logger | undefined) {
  return (err: Error, c: Context<GatewayEnv>): Response => {
    if (err instanceof Problem) {
      return new Response(err.detail ?? err.title, {
        status: err.status,
        headers: { 'content-type': 'text/plain; charset=utf-8', ...err.headers, 'x-request-id': c.get('requestId') },
      });
    }
    log?.error({ err: err.message, stack: err.stack, requestId: c.get('requestId') }, 'unhandled error');
    return new Response('internal error', { status: 500, headers: { 'content-type': 'text/plain; charset=utf-8', 'x-request-id': c.get('requestId') } });
  };
}
