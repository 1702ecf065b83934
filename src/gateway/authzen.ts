// The OpenID AuthZEN Authorization API 1.0 (a policy decision point): another policy
// enforcement point asks "may this user do this to that object?" and gets the decision
// the gateway itself would make: the same model, the same mapping of tenant resources,
// the same decision cache (./authzen-mapping.ts).
//
//   POST /access/v1/evaluation             one evaluation → {"decision": bool}
//   POST /access/v1/evaluations            top-level defaults + `evaluations`, with
//                                          options.evaluations_semantic
//   GET  /.well-known/authzen-configuration  PDP metadata (public)
//
// Callers are clients, not end users: a bearer token from a trusted issuer issued to a
// client for itself (`client_id` = `sub`), and the model must grant that client
// `can_evaluate` on the platform. No token or a bad one is 401 with WWW-Authenticate;
// an end-user token or a client without the grant is 403.
//
// Errors are what the specification's HTTPS binding says: the status and an error
// message string (text/plain), not problem+json. `X-Request-ID` is echoed as sent.
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

  app.all(`${AUTHZEN_PREFIX}/*`, (c) => {
    if (c.req.path === `${AUTHZEN_PREFIX}/evaluation` || c.req.path === `${AUTHZEN_PREFIX}/evaluations`) {
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
