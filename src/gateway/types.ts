// The typed request context the pipeline stages hand to each other. Each stage
// reads what earlier stages set and adds its own part; nothing reaches back.
import type { HttpBindings } from '@hono/node-server';
import type { Decision, RequestVariables, Scope, TupleKey } from '../authz/types.js';
import type { SignedSettings } from './assertion-signer.js';
import type { UpstreamTarget } from './forward.js';

/** Stage 1 (normalise): the one canonical form of the request that is matched, authorized and forwarded. */
export interface CanonicalRequest {
  method: string;
  /** Decoded, validated, dot-segment-free path, e.g. `/api/v1/tenants/t1/agents/2000`. */
  path: string;
  /** Path segments of `path` (no empty segments). */
  segments: string[];
  /** Raw query string without `?` ('' when none); forwarded as is after validation. */
  query: string;
}

/** Stage 3 (match policy): the one rule that matched, resolved against the path. */
export interface PolicyDecisionRequest {
  ruleId: string;
  /** Route template as written in the policy file, for logs and metrics labels. */
  route: string;
  permission: string;
  object: string;
  contextualTuples: TupleKey[];
  params: Record<string, string>;
  scope: Scope;
  /** Ask OpenFGA with higher consistency and skip cached decisions. */
  consistency: 'cached' | 'strong';
  /** The name of the upstream the request is forwarded to (the rule's, else the policy's default). */
  upstream: string;
  /** The regions of that upstream, when it declares regions: the residency stage picks the one of the scope node. */
  regions?: readonly string[] | undefined;
  /** The setting keys that upstream's assertions carry (its `settings`); `[]`: no claim; unset: every key. */
  assertionSettings?: readonly string[] | undefined;
}

/** Hono context variables set by the stages. */
export interface GatewayVariables extends RequestVariables {
  canonical: CanonicalRequest;
  policy: PolicyDecisionRequest;
  /** The version (content hash) of the route policy the request was matched under, when it is reloadable. */
  policyVersion?: string;
  /** That policy's upstreams by name (the forward stage's targets); unset: the forward stage's own. */
  upstreams?: ReadonlyMap<string, UpstreamTarget>;
  decision: Decision;
  /** The scope node's effective settings, resolved once per request (./scope-settings.ts). */
  scopeSettings?: SignedSettings;
  /** The region whose target of a regional upstream serves the request (./residency.ts); unset for an upstream without regions. */
  region?: string;
}

export interface GatewayEnv {
  /** The raw Node request/response: the forward stage hands them to the proxy. */
  Bindings: HttpBindings;
  Variables: GatewayVariables;
}
