// Hono plumbing shared by the tenant service's modules: the typed context, and
// errors as RFC 9457 problem+json. Handlers throw HttpProblem; app.onError renders it.
import type { Context } from 'hono';
import type { AssertionClaims } from '../shared/assertion.js';
import { problem, problemResponse, type Problem } from '../shared/problem.js';

export interface TenantServiceVariables {
  requestId: string;
  /** Claims of the verified gateway assertion (set by requireAssertion). */
  claims: AssertionClaims;
  /** The asserted tenant every tenant-route query binds (set by requireTenantScope). */
  tenantId: string;
}

export interface TenantServiceEnv {
  Variables: TenantServiceVariables;
}

export type TsContext = Context<TenantServiceEnv>;

export class HttpProblem extends Error {
  constructor(
    readonly problem: Problem,
    readonly headers: Record<string, string> = {},
    options?: { cause?: unknown },
  ) {
    super(problem.detail ?? problem.title, options);
    this.name = 'HttpProblem';
  }
}

export function httpProblem(
  status: number,
  slug: string,
  title: string,
  extra: Partial<Problem> = {},
  options: { headers?: Record<string, string>; cause?: unknown } = {},
): HttpProblem {
  return new HttpProblem(problem(status, slug, title, extra), options.headers, { cause: options.cause });
}

/** Renders a problem with the request id and the path it happened on. */
export function renderProblem(c: Context, p: Problem, headers: Record<string, string> = {}): Response {
  const requestId = c.get('requestId') as string | undefined;
  return problemResponse(
    { ...p, instance: c.req.path, ...(requestId ? { requestId } : {}) },
    { ...headers, ...(requestId ? { 'x-request-id': requestId } : {}) },
  );
}

export function notFound(what: string): HttpProblem {
  return httpProblem(404, 'not-found', 'Not Found', { detail: `${what} does not exist` });
}

/** A known path asked with a method it does not take (call-records writes, for example). */
export function methodNotAllowed(allowed: readonly string[]) {
  return (c: Context): Response =>
    renderProblem(
      c,
      problem(405, 'method-not-allowed', 'Method Not Allowed', {
        detail: `${c.req.method} is not allowed here; allowed: ${allowed.join(', ')}`,
      }),
      { allow: allowed.join(', ') },
    );
}
