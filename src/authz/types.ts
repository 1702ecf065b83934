// What every part of tiergate shares about authorization: who is asking (Principal),
// the question (CheckRequest, TupleKey, Scope), the answer (Decision), the engine
// that answers (Authorizer) and how writes reach the decision cache (TupleChange,
// DecisionInvalidator). Nothing here imports anything of ours.
import type { HttpBindings } from '@hono/node-server';
import type { Logger } from 'pino';

/** Who is calling, from a verified token (set by the gateway's authenticate stage). */
export interface Principal {
  /** `user:<sub>`, as OpenFGA knows the subject. */
  subject: string;
  sub: string;
  issuer: string;
  /** Token expiry, seconds since the epoch. */
  expiresAt: number;
  /**
   * Set when the token was issued to a client for itself (OAuth client credentials:
   * its `client_id` claim equals `sub`, RFC 9068 §2.2), not to an end user.
   */
  clientId?: string;
  /** The token's `amr` (RFC 8176 authentication methods), when a list of strings. */
  amr?: readonly string[];
  /** The token's `acr` (authentication context class), when a string. */
  acr?: string;
  /** When the user signed in: the token's `auth_time`, else its `iat` (seconds since the epoch); unset when it has neither. */
  authTime?: number;
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
  /**
   * The answer, at once when it is at hand (a warm cache), else a promise; fails by
   * throwing or rejecting, and an answer is never made up from an error.
   */
  check(req: CheckRequest): Decision | Promise<Decision>;
}

/**
 * What every app behind the gateway's front door can read: the request id and logger
 * (request context) and the caller (authenticate). The gateway's own stages add more
 * (src/gateway/types.ts); the admin API needs only these.
 */
export interface RequestVariables {
  requestId: string;
  log: Logger;
  principal: Principal;
  /** Start of the request, from performance.now(). */
  startedAt: number;
}

export interface RequestEnv {
  /** The raw Node request/response: the forward stage hands them to the proxy. */
  Bindings: HttpBindings;
  Variables: RequestVariables;
}

export interface TupleChange {
  writes: TupleKey[];
  deletes: TupleKey[];
}

/** What announce() returned, handed back to tuplesChanged for the same change. */
export interface WriteAnnouncement {
  readonly id: string;
}

/**
 * Told about every relationship write tiergate makes, after OpenFGA accepted it and
 * before the API call that made it answers, so no replica serves a stale decision
 * once the caller has its answer.
 */
export interface DecisionInvalidator {
  /**
   * Optional step before writing `change` to OpenFGA: marks it as this writer's, so that once
   * tuplesChanged(change, announced) has bumped it, the ReadChanges poller does not bump it a
   * second time when it reads the write from the changelog (src/decisions/own-writes.ts).
   * Never rejects; undefined when the marks could not be set (the poller then bumps as
   * usual). A writer that does not announce gets the poller's bump too.
   */
  announce(change: TupleChange): Promise<WriteAnnouncement | undefined>;
  tuplesChanged(change: TupleChange, announced?: WriteAnnouncement): Promise<void>;
  modelChanged(): Promise<void>;
  /** The settings documents of these nodes (`division:emea`) changed: cached effective settings below them are stale. */
  settingsChanged(nodes: readonly string[]): Promise<void>;
}
