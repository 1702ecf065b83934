// Data residency: the stage after authorize that picks, for a rule whose upstream declares
// `regions`, the target of the scope node's effective `data.residency_region`
// (docs/edge-policies.md#data-residency). A region the upstream has no target in is
// refused 503 no-upstream-in-region: the request is never sent to another region.
//
// Rules whose upstream declares no regions pass straight through, without resolving
// the settings. For the others the region is read from the same per-request snapshot
// (./scope-settings.ts) the assertion's `settings` claim is signed from, so the region
// the upstream is chosen by is the region the upstream is told.
import type { Context, MiddlewareHandler, Next } from 'hono';
import { Problem } from '../shared/problem.js';
import { whenAtHand } from '../shared/at-hand.js';
import { scopeSettings, type SettingsForScope } from './scope-settings.js';
import type { GatewayEnv } from './types.js';

/** The setting whose effective value at the request's scope node chooses the region. */
export const RESIDENCY_SETTING = 'data.residency_region';

/** Sent with an allowed forward-auth answer for a regional upstream: the target and region the ingress must use. */
export const UPSTREAM_HEADER = 'x-tiergate-upstream';
export const REGION_HEADER = 'x-tiergate-region';

export type ResidencyOutcome = 'passed' | 'refused' | 'unavailable';

export interface ResidencyOptions {
  /** The scope node's effective settings; without it a regional upstream is never served (fail closed). */
  settings?: SettingsForScope | undefined;
  /** Each regional request's outcome (metrics: tiergate_edge_policy_total{policy="residency"}). */
  onOutcome?: (outcome: ResidencyOutcome) => void;
}

export function residency(opts: ResidencyOptions): MiddlewareHandler<GatewayEnv> {
  const { settings, onOutcome } = opts;

  const unavailable = (c: Context<GatewayEnv>, err: unknown): Problem => {
    onOutcome?.('unavailable');
    c.get('log')?.warn({ err: err instanceof Error ? err.message : String(err), scope: c.get('policy').scope }, 'residency region of the scope could not be resolved');
    return new Problem(503, 'authorization-unavailable', 'Authorization service unavailable', {
      detail: 'The data residency region of this node could not be resolved, so the request was not sent anywhere. Retry later.',
      headers: { 'retry-after': '1' },
    });
  };

  const choose = (c: Context<GatewayEnv>, next: Next, regions: readonly string[], region: unknown): Promise<void> => {
    if (typeof region !== 'string' || !regions.includes(region)) {
      onOutcome?.('refused');
      const policy = c.get('policy');
      const node = `${policy.scope.type}:${policy.scope.id}`;
      throw new Problem(503, 'no-upstream-in-region', 'No upstream in the region', {
        detail:
          typeof region === 'string'
            ? `The upstream "${policy.upstream}" has no target in region "${region}" (the ${RESIDENCY_SETTING} of ${node}); the request was not sent to another region.`
            : `The ${RESIDENCY_SETTING} of ${node} is not known; the request was not sent to any region.`,
        extensions: { upstream: policy.upstream, ...(typeof region === 'string' ? { region } : {}) },
      });
    }
    onOutcome?.('passed');
    c.set('region', region);
    return next();
  };

  // Not async: most rules pass straight through, and a warm claim is at hand.
  return function residencyStage(c, next) {
    const regions = c.get('policy').regions;
    if (regions === undefined) return next();
    // Without the settings a regional upstream is never served (fail closed).
    if (settings === undefined) return choose(c, next, regions, undefined);
    return whenAtHand(
      () => scopeSettings(c, settings),
      (resolved) => choose(c, next, regions, resolved.claim.values[RESIDENCY_SETTING]),
      (err) => {
        throw unavailable(c, err);
      },
    );
  };
}
