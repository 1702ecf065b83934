// The effective settings of the request's scope node (./settings-claim.ts), resolved at
// most once per request: the edge policies, the upstream choice and the assertion's
// `settings` claim all read the same snapshot, so one request never sees two versions.
import type { Context } from 'hono';
import type { Scope } from '../authz/types.js';
import type { SignedSettings } from './assertion-signer.js';
import type { GatewayEnv } from './types.js';

export type SettingsForScope = (scope: Scope) => Promise<SignedSettings>;

/** The scope node's settings: the ones this request already resolved, else resolved now and kept. */
export async function scopeSettings(c: Context<GatewayEnv>, settingsFor: SettingsForScope): Promise<SignedSettings> {
  const known = c.get('scopeSettings');
  if (known !== undefined) return known;
  const resolved = await settingsFor(c.get('policy').scope);
  c.set('scopeSettings', resolved);
  return resolved;
}
