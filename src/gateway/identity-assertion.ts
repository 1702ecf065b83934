// The signed assertion of who is calling for which tenants, for one authorized
// request: what the forward stage sends the upstream in proxy mode, and what a
// forward-auth decision hands the ingress to copy upstream. One function, so both
// modes assert exactly the same thing for the same canonical request.
import type { Context } from 'hono';
import { Problem } from '../shared/problem.js';
import type { Scope } from '../authz/types.js';
import type { AssertionSigner, SignedSettings } from './assertion-signer.js';
import { scopeSettings, type SettingsForScope } from './scope-settings.js';
import { upstreamSettings } from './settings-claim.js';
import type { GatewayEnv } from './types.js';

export interface AssertionOptions {
  signer: AssertionSigner;
  /** The tenants a scope covers: the tenant itself, or every tenant under a division/organization. */
  resolveTenants: (scope: Scope) => Promise<string[]>;
  /**
   * The scope node's effective settings for the assertion's `settings` claim (./settings-claim.ts),
   * cut to the keys the rule's upstream lists; none when absent.
   */
  settings?: SettingsForScope;
}

/**
 * The assertion for the request the earlier stages authorized (principal, policy, canonical).
 * `path` is the path the upstream receives (its `htu`): the canonical one unless the
 * proxy strips a prefix on the way. At once when the tenants and settings are at hand (a
 * tenant's scope, a warm claim), else a promise.
 */
export function identityAssertion(c: Context<GatewayEnv>, opts: AssertionOptions, path?: string): string | Promise<string> {
  const policy = c.get('policy');
  let tenants: string[] | Promise<string[]> | undefined;
  let settings: SignedSettings | Promise<SignedSettings> | undefined;
  try {
    tenants = policy.scope.type === 'tenant' ? [policy.scope.id] : opts.resolveTenants(policy.scope);
    // An upstream that lists no keys gets no claim: nothing to resolve for it.
    settings = opts.settings && policy.assertionSettings?.length !== 0 ? scopeSettings(c, opts.settings) : undefined;
  } catch (err) {
    // Settings failed at once while the tenants were still being resolved: their outcome no longer matters.
    if (tenants instanceof Promise) tenants.catch(() => undefined);
    throw unavailable(c, err);
  }
  if (tenants instanceof Promise || settings instanceof Promise) {
    return Promise.all([tenants, settings]).then(
      ([resolvedTenants, resolvedSettings]) => signed(c, opts, path, resolvedTenants, resolvedSettings),
      (err: unknown) => {
        throw unavailable(c, err);
      },
    );
  }
  return signed(c, opts, path, tenants, settings);
}

/**
 * The tenants under a division or organization come from OpenFGA, the settings from the
 * database: when either cannot answer, this is an outage like the authorize stage's (503), not a 500.
 */
function unavailable(c: Context<GatewayEnv>, err: unknown): Problem {
  c.get('log')?.warn({ err: err instanceof Error ? err.message : String(err), scope: c.get('policy').scope }, 'tenants or settings of the scope could not be resolved');
  return new Problem(503, 'authorization-unavailable', 'Authorization service unavailable', {
    detail: 'The tenants or the settings of this node could not be resolved, so the request was not allowed. Retry later.',
    headers: { 'retry-after': '1' },
  });
}

function signed(c: Context<GatewayEnv>, opts: AssertionOptions, path: string | undefined, tenants: string[], settings: SignedSettings | undefined): string {
  const canonical = c.get('canonical');
  const policy = c.get('policy');
  // Edge policies and rate limits read the full settings (scopeSettings); only the claim is cut.
  const claim = settings === undefined ? undefined : upstreamSettings(settings, policy.assertionSettings);
  return opts.signer.sign(c.get('principal').sub, policy.scope, tenants, canonical.method, path ?? canonical.path, claim);
}
