// Stage 4: ask the Authorizer (decision cache in front of OpenFGA) whether the
// principal holds the rule's permission on the rule's object. Deny by default:
// only an explicit `allowed: true` answer lets the request through; any error,
// timeout or unreachable engine is 503 and the request is not forwarded.
import type { Context, MiddlewareHandler, Next } from 'hono';
import { Problem } from '../shared/problem.js';
import { whenAtHand } from '../shared/at-hand.js';
import type { Authorizer, Decision, Scope, TupleKey } from '../authz/types.js';
import type { GatewayEnv } from './types.js';

export interface DeniedRequest {
  requestId: string;
  subject: string;
  /** The id of the policy rule that matched. */
  rule: string;
  permission: string;
  object: string;
  scope: Scope;
  method: string;
  path: string;
  /** The version of the route policy the request was matched under (when it is reloadable). */
  policyVersion?: string | undefined;
}

/** An allowed request (the cross-level access audit counts them). */
export interface AllowedRequest {
  subject: string;
  rule: string;
  permission: string;
  object: string;
  contextualTuples: readonly TupleKey[];
  scope: Scope;
  method: string;
  /** The rule's path template, not the request's path. */
  route: string;
}

export interface AuthorizeOptions {
  authorizer: Authorizer;
  /** Response header naming the missing permission; empty or undefined sends none. */
  denyReasonHeader?: string;
  /** Told about every denial (the audit trail); never delays the answer. */
  onDenied?: (denied: DeniedRequest) => void;
  /** Told about every allowed request before it goes on; must only count (never waits, never throws). */
  onAllowed?: (allowed: AllowedRequest) => void;
  /** Told about every decision, allowed or not, with the layer that answered (metrics). */
  onDecision?: (decision: Decision) => void;
}

export function authorize(opts: AuthorizeOptions): MiddlewareHandler<GatewayEnv> {
  const reasonHeader = opts.denyReasonHeader?.trim() || undefined;

  const unavailable = (c: Context<GatewayEnv>, err: unknown): Problem => {
    c.get('log')?.warn({ err: err instanceof Error ? err.message : String(err) }, 'authorization engine unavailable');
    return new Problem(503, 'authorization-unavailable', 'Authorization service unavailable', {
      detail: 'The decision could not be made, so the request was not forwarded. Retry later.',
      headers: { 'retry-after': '1' },
    });
  };

  const enforce = (c: Context<GatewayEnv>, next: Next, decision: Decision): Promise<void> => {
    // c.get, not c.var: Hono's `var` getter copies every variable into a new object per access.
    const policy = c.get('policy');
    const principal = c.get('principal');
    c.set('decision', decision);
    opts.onDecision?.(decision);
    if (decision.allowed !== true) {
      opts.onDenied?.({
        requestId: c.get('requestId'),
        subject: principal.subject,
        rule: policy.ruleId,
        permission: policy.permission,
        object: policy.object,
        scope: policy.scope,
        method: c.get('canonical').method,
        path: c.get('canonical').path,
        policyVersion: c.get('policyVersion'),
      });
      // Name the missing permission and nothing else: not who holds it, not
      // whether the object exists, nothing about other tenants.
      throw new Problem(403, 'forbidden', 'Forbidden', {
        detail: `Missing permission ${policy.permission} for this request.`,
        extensions: { permission: policy.permission },
        ...(reasonHeader ? { headers: { [reasonHeader]: `missing ${policy.permission}` } } : {}),
      });
    }
    opts.onAllowed?.({
      subject: principal.subject,
      rule: policy.ruleId,
      permission: policy.permission,
      object: policy.object,
      contextualTuples: policy.contextualTuples,
      scope: policy.scope,
      method: c.get('canonical').method,
      route: policy.route,
    });
    return next();
  };

  // Not async: a decision the cache holds is enforced and handed on at once.
  return (c, next) => {
    const policy = c.get('policy');
    const question = {
      user: c.get('principal').subject,
      relation: policy.permission,
      object: policy.object,
      contextualTuples: policy.contextualTuples,
      scope: policy.scope,
      consistency: policy.consistency,
    };
    return whenAtHand(
      () => opts.authorizer.check(question),
      (decision) => enforce(c, next, decision),
      (err) => {
        throw unavailable(c, err);
      },
    );
  };
}
