// Every admin error leaves as RFC 9457 problem+json with the request id. Handlers
// throw AdminError; OpenFGA and validation failures are translated here, once.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { FgaApiValidationError, FgaError } from '@openfga/sdk';
import type { ZodError } from 'zod';
import { problem, problemResponse, type InvalidParam } from '../shared/problem.js';

export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly slug: string,
    readonly title: string,
    readonly detail?: string,
    readonly invalidParams?: InvalidParam[],
  ) {
    super(detail ?? title);
    this.name = 'AdminError';
  }
}

export const notFound = (what: string) => new AdminError(404, 'not-found', 'Not found', `${what} does not exist`);
export const conflict = (detail: string) => new AdminError(409, 'conflict', 'Conflict', detail);
export const unprocessable = (detail: string, invalidParams?: InvalidParam[]) =>
  new AdminError(422, 'invalid-request', 'Invalid request', detail, invalidParams);
export const forbidden = (permission: string, object: string) =>
  new AdminError(403, 'forbidden', 'Forbidden', `the caller lacks ${permission} on ${object}`);

/** A create whose id a deleted node had: ids are never reused. */
export const idRetired = (kind: string, id: string) =>
  new AdminError(
    409,
    'id-retired',
    'Id retired',
    `${kind} id ${id} belonged to a deleted ${kind}; ids are never reused, so nothing of it (grants, data, audit, cached decisions) can reach a new node`,
  );

/**
 * PostgreSQL's integrity refusals (foreign key 23503, unique 23505) as the 409 they
 * are: a concurrent change got there first. Anything else is not translated.
 */
export function fromDbError(err: unknown): AdminError | undefined {
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
    return new AdminError(422, 'rejected-by-openfga', 'Rejected by OpenFGA', err.apiErrorMessage ?? err.message);
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
  return problemResponse(
    problem(422, 'invalid-request', 'Invalid request', {
      detail: `${invalidParams.length} invalid field${invalidParams.length === 1 ? '' : 's'}; nothing was changed`,
      requestId: requestIdOf(c),
      'invalid-params': invalidParams,
    }),
  );
}

/** Renders whatever a handler threw; unknown errors are logged and never leak details. */
export function renderError(err: unknown, c: Context, log?: { error: (obj: object, msg: string) => void }): Response {
  const requestId = requestIdOf(c);
  err = fromDbError(err) ?? err;
  if (err instanceof AdminError) {
    return problemResponse(
      problem(err.status, err.slug, err.title, {
        ...(err.detail ? { detail: err.detail } : {}),
        requestId,
        ...(err.invalidParams ? { 'invalid-params': err.invalidParams } : {}),
      }),
    );
  }
  if (err instanceof EngineUnavailableError) {
    log?.error({ err: err.cause, requestId }, 'OpenFGA unavailable');
    return problemResponse(
      problem(503, 'authorization-engine-unavailable', 'Authorization engine unavailable', {
        detail: 'OpenFGA did not answer; nothing was changed. Retry later.',
        requestId,
      }),
      { 'retry-after': '1' },
    );
  }
  if (err instanceof HTTPException) {
    // Hono's own refusals: malformed JSON (400), unsupported media type (415).
    const status = err.status;
    const slug = status === 415 ? 'unsupported-media-type' : status === 413 ? 'payload-too-large' : 'bad-request';
    return problemResponse(problem(status, slug, err.message || 'Bad request', { requestId }));
  }
  log?.error({ err, requestId }, 'admin request failed');
  return problemResponse(problem(500, 'internal', 'Internal error', { detail: 'see the server log for this request id', requestId }));
}
