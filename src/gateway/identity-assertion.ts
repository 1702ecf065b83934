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
 * proxy strips a prefix on the way.
 */
export async function identityAssertion(c: Context<GatewayEnv>, opts: AssertionOptions, path?: string): Promise<string> {
  const canonical = c.get('canonical');
  const principal = c.get('principal');
  const policy = c.get('policy');
  let tenants: string[];
  let settings: SignedSettings | undefined;
  try {
    [tenants, settings] = await Promise.all([
      policy.scope.type === 'tenant' ? [policy.scope.id] : opts.resolveTenants(policy.scope),
      // An upstream that lists no keys gets no claim: nothing to resolve for it.
      opts.settings && policy.assertionSettings?.length !== 0 ? scopeSettings(c, opts.settings) : undefined,
    ]);
  } catch (err) {
    // The tenants under a division or organization come from OpenFGA, the settings from the
    // database: when either cannot answer, this is an outage like the authorize stage's (503), not a 500.
    c.get('log')?.warn({ err: err instanceof Error ? err.message : String(err), scope: policy.scope }, 'tenants or settings of the scope could not be resolved');
    throw new Problem(503, 'authorization-unavailable', 'Authorization service unavailable', {
      detail: 'The tenants or the settings of this node could not be resolved, so the request was not allowed. Retry later.',
      headers: { 'retry-after': '1' },
    });
  }
  // Edge policies and rate limits read the full settings (scopeSettings); only the claim is cut.
  const claim = settings === undefined ? undefined : upstreamSettings(settings, policy.assertionSettings);
  return opts.signer.sign(principal.sub, policy.scope, tenants, canonical.method, path ?? canonical.path, claim);
}
