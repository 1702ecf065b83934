// Scope checks: the path names a hierarchy node, the assertion names the node the
// gateway authorized. They must agree, or the request is refused with 403 and
// nothing about the other node is read. Runs after requireAssertion.
import type { MiddlewareHandler } from 'hono';
import type { AssertionClaims } from '../shared/assertion.js';
import { Problem } from '../shared/problem.js';
import { type TenantServiceEnv } from './http.js';

function forbidden(detail: string) {
  return new Problem(403, 'scope-mismatch', 'Forbidden', { detail });
}

/**
 * Tenant routes: the assertion must be scoped to exactly this tenant and list it.
 * Sets `tenantId` from the assertion, which is what every query binds, so even a
 * misrouted request can only ever read the asserted tenant.
 */
export function requireTenantScope(): MiddlewareHandler<TenantServiceEnv> {
  return async (c, next) => {
    const claims = c.get('claims');
    const pathTenant = c.req.param('tenantId');
    if (!tenantScopeMatches(claims, pathTenant)) {
      throw forbidden('the gateway assertion does not cover this tenant');
    }
    c.set('tenantId', claims.scope.id);
    await next();
  };
}

export function tenantScopeMatches(claims: AssertionClaims, pathTenant: string | undefined): boolean {
  return (
    claims.scope.type === 'tenant' &&
    pathTenant !== undefined &&
    claims.scope.id === pathTenant &&
    claims.tenants.includes(claims.scope.id)
  );
}

/** Division / organization routes: the assertion's scope must be this very node. */
export function requireNodeScope(type: 'division' | 'organization', param: string): MiddlewareHandler<TenantServiceEnv> {
  return async (c, next) => {
    const claims = c.get('claims');
    if (claims.scope.type !== type || claims.scope.id !== c.req.param(param)) {
      throw forbidden(`the gateway assertion does not cover this ${type}`);
    }
    await next();
  };
}
