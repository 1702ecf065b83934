// Stage 3b (after the route policy, before authorize): the edge policies of the
// request's scope node, from its effective settings (docs/edge-policies.md). The same
// stage object runs in proxy mode and in forward-auth mode.
//
// - Network (`security.ip_allowlist`): the client address is the socket peer, or, only
//   when the peer is in TRUSTED_PROXIES, the rightmost X-Forwarded-For hop that is not a
//   trusted proxy (../shared/trusted-proxies.ts clientAddress). A non-empty list that
//   does not admit it (or an address that cannot be known) → 403 ip-not-allowed.
//   IPv4-mapped IPv6 peers match IPv4 ranges.
// - Authentication strength (RFC 9470): `security.require_mfa` wants a multi-factor
//   sign-in (the token's `amr`, RFC 8176, or an acr of AUTH_MFA_ACR_VALUES);
//   `security.session_max_age` wants `now - (auth_time ?? iat)` within the limit. Either
//   refused → 401 insufficient-user-authentication with a Bearer challenge
//   `error="insufficient_user_authentication"` and `acr_values` / `max_age`.
// - Refusals name the policy (`policy`), never the node that set it. Every outcome of
//   a policy in force is counted (tiergate_edge_policy_total{policy,outcome}).
// - The settings are parsed once per snapshot (a SignedSettings object, which the
//   settings cache shares between requests): the warm path with defaults does a
//   WeakMap lookup, one comparison and one counter.
import type { Context, MiddlewareHandler, Next } from 'hono';
import type { Principal } from '../authz/types.js';
import { EDGE_POLICY_KEYS, IP_ALLOWLIST, REQUIRE_MFA, SESSION_MAX_AGE } from '../settings/edge-keys.js';
import { admits, cidrMatcher, parseAddress, type CidrMatcher } from '../settings/cidr.js';
import { durationSeconds } from '../settings/registry.js';
import { headerValue, incomingOf } from '../shared/node-incoming.js';
import { Problem } from '../shared/problem.js';
import { whenAtHand } from '../shared/at-hand.js';
import { clientAddress, type TrustedPeers } from '../shared/trusted-proxies.js';
import type { SignedSettings } from './assertion-signer.js';
import type { GatewayMetrics } from './metrics.js';
import { scopeSettings, type SettingsForScope } from './scope-settings.js';
import type { GatewayEnv } from './types.js';

/** The edge policies this stage enforces, in the order it checks them. */
export const EDGE_POLICIES = EDGE_POLICY_KEYS;

export interface EdgePolicyOptions {
  /** The scope node's effective settings (resolved once per request, ./scope-settings.ts). */
  settings: SettingsForScope;
  trustedProxies: TrustedPeers;
  metrics: Pick<GatewayMetrics, 'countEdgePolicy'>;
  /** AUTH_MFA_ACR_VALUES: acr values that are a multi-factor sign-in, and the challenge's acr_values. */
  mfaAcrValues: readonly string[];
  /** Seconds since the epoch; tests move it. */
  now?: () => number;
}

/** The edge policies of one settings snapshot, parsed. */
export interface EdgePolicies {
  /** Undefined: any network. */
  allowlist: CidrMatcher | undefined;
  requireMfa: boolean;
  /** Undefined: no limit. */
  maxAgeS: number | undefined;
}

const NOTHING: CidrMatcher = { v4: [], v6: [] };

/** Parses the edge policies out of effective values (a claim's `values`). Anything malformed admits nothing. */
export function parseEdgePolicies(values: Readonly<Record<string, unknown>>): EdgePolicies {
  const list = values[IP_ALLOWLIST];
  const mfa = values[REQUIRE_MFA];
  const age = values[SESSION_MAX_AGE];
  const maxAgeS = age === undefined ? undefined : typeof age === 'string' ? (durationSeconds(age) ?? 0) : 0;
  return {
    allowlist: list === undefined ? undefined : !Array.isArray(list) ? NOTHING : list.length === 0 ? undefined : cidrMatcher(list.filter((x): x is string => typeof x === 'string')),
    requireMfa: mfa !== undefined && mfa !== false,
    maxAgeS,
  };
}

const parsed = new WeakMap<SignedSettings, EdgePolicies>();

/** The edge policies of a snapshot, parsed once per snapshot object. */
export function edgePoliciesOf(settings: SignedSettings): EdgePolicies {
  let p = parsed.get(settings);
  if (p === undefined) {
    p = parseEdgePolicies(settings.claim.values);
    parsed.set(settings, p);
  }
  return p;
}

/**
 * RFC 8176 methods by authentication factor. A sign-in is multi-factor when its `amr` has
 * `mfa`, or methods of two different factors (e.g. `pwd` + `otp`, `hwk` + `pin`,
 * `swk` + `fpt`). Methods that are no factor of their own (`user`, `geo`, `mca`, `rba`,
 * `wia`) and unknown ones count for nothing.
 */
export const AMR_FACTORS: Readonly<Record<string, 'knowledge' | 'possession' | 'inherence'>> = {
  pwd: 'knowledge',
  pin: 'knowledge',
  kba: 'knowledge',
  otp: 'possession',
  hwk: 'possession',
  swk: 'possession',
  sms: 'possession',
  tel: 'possession',
  sc: 'possession',
  fpt: 'inherence',
  face: 'inherence',
  iris: 'inherence',
  retina: 'inherence',
  vbm: 'inherence',
};

/** Whether the principal's sign-in was multi-factor: `amr` has `mfa` or two factors, or `acr` is one of `mfaAcrs`. */
export function multiFactor(principal: Pick<Principal, 'amr' | 'acr'>, mfaAcrs: readonly string[]): boolean {
  if (principal.acr !== undefined && mfaAcrs.includes(principal.acr)) return true;
  const amr = principal.amr;
  if (amr === undefined) return false;
  let first: string | undefined;
  for (const m of amr) {
    if (m === 'mfa') return true;
    const factor = Object.hasOwn(AMR_FACTORS, m) ? AMR_FACTORS[m] : undefined;
    if (factor === undefined) continue;
    if (first === undefined) first = factor;
    else if (factor !== first) return true;
  }
  return false;
}

function ipRefused(): Problem {
  return new Problem(403, 'ip-not-allowed', 'Network not allowed', {
    detail: 'Requests to this resource are not allowed from your network.',
    extensions: { policy: IP_ALLOWLIST },
  });
}

/** The RFC 9470 challenge for what the sign-in lacks. */
export function stepUpProblem(lacksMfa: boolean, maxAgeS: number | undefined, acrValues: readonly string[]): Problem {
  const description = lacksMfa ? 'A multi-factor authentication is required' : 'More recent authentication is required';
  const params = [`Bearer error="insufficient_user_authentication"`, `error_description="${description}"`];
  if (lacksMfa && acrValues.length > 0) params.push(`acr_values="${acrValues.join(' ')}"`);
  if (maxAgeS !== undefined) params.push(`max_age=${maxAgeS}`);
  return new Problem(401, 'insufficient-user-authentication', 'Insufficient user authentication', {
    detail: lacksMfa
      ? 'This resource requires a multi-factor sign-in: sign in again with a second factor and retry with the new token.'
      : `This resource requires a sign-in at most ${maxAgeS} seconds old: sign in again and retry with the new token.`,
    extensions: { policy: lacksMfa ? REQUIRE_MFA : SESSION_MAX_AGE, ...(maxAgeS !== undefined ? { maxAge: maxAgeS } : {}) },
    headers: { 'www-authenticate': params.join(', ') },
  });
}

export function edgePolicy(opts: EdgePolicyOptions): MiddlewareHandler<GatewayEnv> {
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  const count = opts.metrics.countEdgePolicy.bind(opts.metrics);

  // Fail closed: without the node's policies nothing is let through.
  const unavailable = (c: Context<GatewayEnv>, err: unknown): Problem => {
    for (const policy of EDGE_POLICIES) count(policy, 'unavailable');
    c.get('log')?.warn({ err: err instanceof Error ? err.message : String(err), scope: c.get('policy').scope }, 'edge policies of the scope could not be resolved');
    return new Problem(503, 'authorization-unavailable', 'Authorization service unavailable', {
      detail: 'The policies of this resource could not be read, so the request was not allowed. Retry later.',
      headers: { 'retry-after': '1' },
    });
  };

  const judge = (c: Context<GatewayEnv>, next: Next, settings: SignedSettings): Promise<void> => {
    const p = edgePoliciesOf(settings);

    if (p.allowlist !== undefined) {
      const incoming = incomingOf(c);
      const peer = incoming?.socket.remoteAddress ?? '';
      const text = clientAddress(peer, incoming === undefined ? undefined : headerValue(incoming.headers['x-forwarded-for']), opts.trustedProxies);
      const addr = text === undefined ? undefined : parseAddress(text);
      if (addr === undefined || !admits(p.allowlist, addr)) {
        count(IP_ALLOWLIST, 'refused');
        c.get('log')?.info({ client: text ?? null, peer }, 'client network not in the allowlist');
        throw ipRefused();
      }
      count(IP_ALLOWLIST, 'passed');
    }

    const principal = c.get('principal');
    let lacksMfa = false;
    if (p.requireMfa) {
      lacksMfa = !multiFactor(principal, opts.mfaAcrValues);
      count(REQUIRE_MFA, lacksMfa ? 'refused' : 'passed');
    }
    let tooOld = false;
    if (p.maxAgeS !== undefined) {
      // No auth_time and no iat: the sign-in's age cannot be known, and is refused.
      tooOld = principal.authTime === undefined || now() - principal.authTime > p.maxAgeS;
      count(SESSION_MAX_AGE, tooOld ? 'refused' : 'passed');
    }
    if (lacksMfa || tooOld) throw stepUpProblem(lacksMfa, tooOld ? p.maxAgeS : undefined, opts.mfaAcrValues);
    return next();
  };

  // Not async: with the settings at hand (a warm claim) the stage hands on at once.
  return function edgePolicyStage(c, next) {
    return whenAtHand(
      () => scopeSettings(c, opts.settings),
      (settings) => judge(c, next, settings),
      (err) => {
        throw unavailable(c, err);
      },
    );
  };
}
