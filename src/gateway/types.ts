// The typed request context the pipeline stages hand to each other. Each stage
// reads what earlier stages set and adds its own part; nothing reaches back.
import type { HttpBindings } from '@hono/node-server';
import type { Logger } from 'pino';

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

/** Stage 2 (authenticate): who is calling, from a verified token. */
export interface Principal {
  /** `user:<sub>`, as OpenFGA knows the subject. */
  subject: string;
  sub: string;
  issuer: string;
  /** Token expiry, seconds since the epoch. */
  expiresAt: number;
}

export interface TupleKey {
  user: string;
  relation: string;
  object: string;
}

/** Where in the hierarchy a request is scoped: drives the assertion and cache versions. */
export interface Scope {
  type: 'tenant' | 'division' | 'organization';
  id: string;
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
}

export type CacheLayer = 'l1' | 'redis' | 'openfga' | 'coalesced';

/** Stage 4 (authorize): the answer and where it came from. */
export interface Decision {
  allowed: boolean;
  layer: CacheLayer;
  durationMs: number;
}

export interface CheckRequest {
  user: string;
  relation: string;
  object: string;
  contextualTuples: TupleKey[];
  /** Condition context passed to OpenFGA; part of the decision cache key. */
  context?: Record<string, unknown>;
  /** Hierarchy node the object lives under; lets the cache scope invalidation. */
  scope?: Scope;
  consistency?: 'cached' | 'strong';
}

/** The narrow interface to "is this allowed?": OpenFGA, or a cache in front of it. */
export interface Authorizer {
  /** Resolves with an answer or rejects; an answer is never made up from an error. */
  check(req: CheckRequest): Promise<Decision>;
}

/** Hono context variables set by the stages. */
export interface GatewayVariables {
  requestId: string;
  log: Logger;
  canonical: CanonicalRequest;
  principal: Principal;
  policy: PolicyDecisionRequest;
  decision: Decision;
  /** Start of the request, from performance.now(). */
  startedAt: number;
}

export interface GatewayEnv {
  /** The raw Node request/response: the forward stage hands them to the proxy. */
  Bindings: HttpBindings;
  Variables: GatewayVariables;
}

export interface TupleChange {
  writes: TupleKey[];
  deletes: TupleKey[];
}

/**
 * Told about every relationship write tiergate makes, after OpenFGA accepted it and
 * before the API call that made it answers, so no replica serves a stale decision
 * once the caller has its answer.
 */
export interface DecisionInvalidator {
  tuplesChanged(change: TupleChange): Promise<void>;
  modelChanged(): Promise<void>;
}
