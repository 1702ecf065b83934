// Every admin error leaves as RFC 9457 problem+json with the request id. Handlers
// throw a Problem; OpenFGA, database and validation failures are translated here, once.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { FgaApiValidationError, FgaError } from '@openfga/sdk';
import type { ZodError } from 'zod';
import { Problem, type InvalidParam } from '../shared/problem.js';

export const notFound = (what: string) => new Problem(404, 'not-found', 'Not found', { detail: `${what} does not exist` });
export const conflict = (detail: string) => new Problem(409, 'conflict', 'Conflict', { detail });
export const unprocessable = (detail: string, invalidParams?: InvalidParam[]) =>
  new Problem(422, 'invalid-request', 'Invalid request', { detail, 'invalid-params': invalidParams });
export const forbidden = (permission: string, object: string) =>
  new Problem(403, 'forbidden', 'Forbidden', { detail: `the caller lacks ${permission} on ${object}` });

/** A create whose id a deleted node had: ids are never reused. */
export const idRetired = (kind: string, id: string) =>
  new Problem(409, 'id-retired', 'Id retired', {
    detail: `${kind} id ${id} belonged to a deleted ${kind}; ids are never reused, so nothing of it (grants, data, audit, cached decisions) can reach a new node`,
  });

/**
 * PostgreSQL's integrity refusals (foreign key 23503, unique 23505) as the 409 they
 * are: a concurrent change got there first. Anything else is not translated.
 */
export function fromDbError(err: unknown): Problem | undefined {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  const constraint = typeof e?.constraint === 'string' ? ` (${e.constraint})` : '';
  if (e?.code === '23503') {
    return conflict(`a node this change refers to was deleted, or another node still refers to it${constraint}; nothing was changed`);
  }
  if (e?.code === '23505') return conflict(`a concurrent change already wrote this${constraint}; nothing was changed`);
  return undefined;
}

/** OpenFGA did not answer (down, timeout, 5xx, rate limit): fail closed, nothing changed. */
export class EngineUnavailableError extends Error {
  constructor(override readonly cause: unknown) {
    super(`OpenFGA unavailable: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'EngineUnavailableError';
  }
}

/** Wraps any OpenFGA SDK failure in the error the API maps to a status. */
export function fromFgaError(err: unknown): Error {
  if (err instanceof FgaApiValidationError) {
    return new Problem(422, 'rejected-by-openfga', 'Rejected by OpenFGA', { detail: err.apiErrorMessage ?? err.message });
  }
  if (err instanceof FgaError || isNetworkError(err)) return new EngineUnavailableError(err);
  return err instanceof Error ? err : new Error(String(err));
}

function isNetworkError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|ECONNABORTED|ERR_SOCKET|UND_ERR)/.test(code);
}

/** A location and a path in it → `body.writes[3].relation`. */
export function locationOf(location: string, path: readonly PropertyKey[]): string {
  let name = location;
  for (const seg of path) name += typeof seg === 'number' ? `[${seg}]` : `.${String(seg)}`;
  return name;
}

/** Zod issue path → `body.writes[3].relation`, `path.tenantId`, `query.limit`. */
export function issuesToInvalidParams(location: string, error: ZodError): InvalidParam[] {
  const out: InvalidParam[] = [];
  for (const issue of error.issues) {
    const name = locationOf(location, issue.path);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ name: `${name}.${key}`, reason: 'unknown field' });
    } else {
      out.push({ name, reason: issue.message });
    }
  }
  return out;
}

export const TARGET_LOCATION: Record<string, string> = { json: 'body', param: 'path', query: 'query', header: 'header', form: 'body', cookie: 'cookie' };

export function requestIdOf(c: Context): string | undefined {
  return (c.get('requestId') as string | undefined) ?? undefined;
}

export function validationProblem(c: Context, invalidParams: InvalidParam[]): Response {
  return new Problem(422, 'invalid-request', 'Invalid request', {
    detail: `${invalidParams.length} invalid field${invalidParams.length === 1 ? '' : 's'}; nothing was changed`,
    'invalid-params': invalidParams,
  }).response({ requestId: requestIdOf(c) });
}

/** The admin API's one error renderer: whatever a handler threw; unknown errors are logged and never leak details. */
export function renderError(err: unknown, c: Context, log?: { error: (obj: object, msg: string) => void }): Response {
  const requestId = requestIdOf(c);
  return asProblem(fromDbError(err) ?? err, requestId, log).response({ requestId });
}

function asProblem(err: unknown, requestId: string | undefined, log?: { error: (obj: object, msg: string) => void }): Problem {
  if (err instanceof Problem) return err;
  if (err instanceof EngineUnavailableError) {
    log?.error({ err: err.cause, requestId }, 'OpenFGA unavailable');
    return new Problem(503, 'authorization-engine-unavailable', 'Authorization engine unavailable', {
      detail: 'OpenFGA did not answer; nothing was changed. Retry later.',
      headers: { 'retry-after': '1' },
    });
  }
  if (err instanceof HTTPException) {
    // Hono's own refusals: malformed JSON (400), unsupported media type (415).
    const status = err.status;
    const slug = status === 415 ? 'unsupported-media-type' : status === 413 ? 'payload-too-large' : 'bad-request';
    return new Problem(status, slug, err.message || 'Bad request');
  }
  log?.error({ err, requestId }, 'admin request failed');
  return new Problem(500, 'internal', 'Internal error', { detail: 'see the server log for this request id' });
}
