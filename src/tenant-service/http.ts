// Hono plumbing shared by the tenant service's modules: the typed context, and
// errors as RFC 9457 problem+json. Handlers throw a Problem; app.onError renders it
// (renderProblem).
import type { Context } from 'hono';
import type { AssertionClaims } from '../shared/assertion.js';
import { Problem } from '../shared/problem.js';

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

/** The tenant service's one renderer: a problem with the request id and the path it happened on. */
export function renderProblem(c: Context, p: Problem): Response {
  const requestId = (c.get('requestId') as string | undefined) || undefined;
  return p.response({ instance: c.req.path, requestId }, requestId ? { 'x-request-id': requestId } : {});
}

export function notFound(what: string): Problem {
  return new Problem(404, 'not-found', 'Not Found', { detail: `${what} does not exist` });
}

/** A known path asked with a method it does not take (call-records writes, for example). */
export function methodNotAllowed(allowed: readonly string[]) {
  return (c: Context): Response =>
    renderProblem(
      c,
      new Problem(405, 'method-not-allowed', 'Method Not Allowed', {
        detail: `${c.req.method} is not allowed here; allowed: ${allowed.join(', ')}`,
        headers: { allow: allowed.join(', ') },
      }),
    );
}
