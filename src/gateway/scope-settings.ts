// The effective settings of the request's scope node (./settings-claim.ts), resolved at
// most once per request: the edge policies, the upstream choice and the assertion's
// `settings` claim all read the same snapshot, so one request never sees two versions.
// A warm claim is answered synchronously: the stages that read it then hand on without
// an await of their own (each await is a promise and a microtask per request).
import type { Context } from 'hono';
import type { Scope } from '../authz/types.js';
import type { SignedSettings } from './assertion-signer.js';
import type { GatewayEnv } from './types.js';

/** The scope node's claim: the value itself when it is at hand, a promise when it must be read. */
export type SettingsForScope = (scope: Scope) => SignedSettings | Promise<SignedSettings>;

/**
 * The scope node's settings: the ones this request already resolved, else resolved now
 * and kept. Synchronous when they are at hand; a failure to resolve them is thrown
 * (or rejected) as settingsFor failed.
 */
export function scopeSettings(c: Context<GatewayEnv>, settingsFor: SettingsForScope): SignedSettings | Promise<SignedSettings> {
  const known = c.get('scopeSettings');
  if (known !== undefined) return known;
  const resolved = settingsFor(c.get('policy').scope);
  if (resolved instanceof Promise) return resolved.then((settings) => keep(c, settings));
  return keep(c, resolved);
}

function keep(c: Context<GatewayEnv>, settings: SignedSettings): SignedSettings {
  c.set('scopeSettings', settings);
  return settings;
}
