// The rate-limit stage: the request's scope node may cap how many API requests it takes
// per minute (`api.rate_limit_per_minute`, every principal together) and how many each
// principal may make (`api.rate_limit_per_principal_per_minute`), docs/edge-policies.md.
// It runs after authorize: only requests the node lets in spend its budget, so no caller
// can use up another tenant's (a refused flood is answered from the decision cache).
//
//   scope settings ──► no limit: next(), nothing counted, no Redis round trip
//                  └─► limit: count 1 in each bucket (Redis, shared by the replicas)
//                        ├─ within: next(), RateLimit-Policy + RateLimit on the answer
//                        └─ beyond: 429 rate-limited, Retry-After + RateLimit-Policy + RateLimit
//
// Counting is rate-limiter-flexible's: a fixed one-minute window per bucket, counted
// atomically in Redis (one Lua call per bucket) on the gateway's request-path connection,
// which fails fast; when Redis cannot answer, its in-memory insurance limiter counts in
// this process instead (per-replica limits: degraded, never an error and never no limit).
// A bucket's count does not depend on the limit, which is compared here: a limit changed
// through the admin API applies to the current minute's count on the next request.
import { createHash } from 'node:crypto';
import type { Context, MiddlewareHandler, Next } from 'hono';
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { Problem } from '../shared/problem.js';
import { whenAtHand } from '../shared/at-hand.js';
import type { Principal } from '../authz/types.js';
import type { SettingsClaim } from '../shared/assertion.js';
import { scopeSettings, type SettingsForScope } from './scope-settings.js';
import type { GatewayEnv } from './types.js';

/** The settings keys the stage reads. */
export const NODE_LIMIT_KEY = 'api.rate_limit_per_minute';
export const PRINCIPAL_LIMIT_KEY = 'api.rate_limit_per_principal_per_minute';
/** Every limit counts requests per this many seconds. */
export const WINDOW_S = 60;

/** One bucket a request counts in: the node's, or one principal's within the node. */
export interface Bucket {
  /** The policy name in the RateLimit fields. */
  policy: 'node' | 'principal';
  /** The counter's key (the limiter adds its prefix). */
  key: string;
  /** Requests per window. */
  limit: number;
}

/** A bucket's state after this request was counted. */
export interface BucketState extends Bucket {
  /** Requests counted in the current window, this one included. */
  consumed: number;
  /** Milliseconds until the window ends. */
  msBeforeNext: number;
}

/** A limit value from the settings claim: a positive integer, else 0 (no limit). */
export function limitOf(value: unknown): number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : 0;
}

/**
 * The buckets of a request to `node` by `principal` under `values` (the node's effective
 * settings): `tenant:acme-sales` for the node; `tenant:acme-sales/p:<digest>` for the
 * principal within it, a digest of issuer and subject (two issuers may use the same
 * `sub`; a subject may hold any character). None when no limit is set.
 */
export function bucketsFor(node: string, principal: Pick<Principal, 'issuer' | 'sub'>, values: Readonly<Record<string, unknown>>): Bucket[] {
  const out: Bucket[] = [];
  const nodeLimit = limitOf(values[NODE_LIMIT_KEY]);
  if (nodeLimit > 0) out.push({ policy: 'node', key: node, limit: nodeLimit });
  const principalLimit = limitOf(values[PRINCIPAL_LIMIT_KEY]);
  if (principalLimit > 0) out.push({ policy: 'principal', key: `${node}/p:${principalDigest(principal)}`, limit: principalLimit });
  return out;
}

export function principalDigest(principal: Pick<Principal, 'issuer' | 'sub'>): string {
  return createHash('sha256').update(principal.issuer).update('\0').update(principal.sub).digest('base64url').slice(0, 22);
}

/** Whole seconds until `ms` has passed (at least 1 while any remains: a client must not retry at once). */
export function secondsUntil(ms: number): number {
  return ms <= 0 ? 0 : Math.max(1, Math.ceil(ms / 1000));
}

/**
 * The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers-11, Structured Field
 * lists): `RateLimit-Policy: "node";q=100;w=60` (quota per window), `RateLimit:
 * "node";r=42;t=17` (remaining quota, seconds until the window ends), one item per bucket.
 */
export function rateLimitFields(states: readonly BucketState[]): { 'ratelimit-policy': string; ratelimit: string } {
  return {
    'ratelimit-policy': states.map((s) => `"${s.policy}";q=${s.limit};w=${WINDOW_S}`).join(', '),
    ratelimit: states.map((s) => `"${s.policy}";r=${Math.max(0, s.limit - s.consumed)};t=${secondsUntil(s.msBeforeNext)}`).join(', '),
  };
}

/** Counts requests per bucket key for one window. */
export interface RequestCounter {
  /** Counts one request in `key`'s window; resolves with the window's count and time left, and whether this process counted it alone (Redis unavailable). */
  take(key: string): Promise<{ consumed: number; msBeforeNext: number; degraded: boolean }>;
}

export interface RequestCounterOptions {
  /** The gateway's request-path Redis connection (fail fast, no offline queue); none: this process counts alone. */
  redis?: Redis;
  /** Redis key prefix, e.g. `tg:<store>:rl`. */
  keyPrefix: string;
}

/** Never refused by the library: the stage compares the count with the node's current limit. */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

/** A memory limiter that marks its answers, which it gives when Redis did not answer. */
class InsuranceLimiter extends RateLimiterMemory {
  readonly answered = new WeakSet<RateLimiterRes>();
  override async consume(key: string | number, points?: number, options?: Record<string, unknown>): Promise<RateLimiterRes> {
    const res = await super.consume(key, points, options);
    this.answered.add(res);
    return res;
  }
}

export function createRequestCounter(opts: RequestCounterOptions): RequestCounter {
  const memory = new InsuranceLimiter({ points: UNBOUNDED, duration: WINDOW_S, keyPrefix: opts.keyPrefix });
  const limiter: RateLimiterAbstract = opts.redis
    ? new RateLimiterRedis({
        storeClient: opts.redis,
        // ioredis: the Lua script is defined as a command on the client (defineCommand), not the node-redis API.
        useRedisPackage: false,
        // A connection that is not ready fails at once, as every request-path command does here.
        rejectIfRedisNotReady: true,
        points: UNBOUNDED,
        duration: WINDOW_S,
        keyPrefix: opts.keyPrefix,
        insuranceLimiter: memory,
      })
    : memory;
  const alone = opts.redis === undefined;
  return {
    async take(key) {
      let res: RateLimiterRes;
      try {
        res = await limiter.consume(key, 1);
      } catch (rejected) {
        // Only a refusal of the library's own bound (never reached) or an error of both stores.
        if (rejected instanceof RateLimiterRes) res = rejected;
        else throw rejected;
      }
      return { consumed: res.consumedPoints, msBeforeNext: res.msBeforeNext, degraded: !alone && memory.answered.has(res) };
    },
  };
}

export interface RateLimitOptions {
  settingsFor: SettingsForScope;
  counter: RequestCounter;
  /** Counts each outcome: `passed`, `refused`, and `degraded` when this process counted alone. */
  onOutcome?: (outcome: 'passed' | 'refused' | 'degraded') => void;
  /** Buckets known to be over their limit, kept so a flood is refused without a Redis round trip (default 10,000). */
  maxRefusedKeys?: number;
}

/** The stage: after authorize (the scope node is known and the caller let in). */
export function rateLimit(opts: RateLimitOptions): MiddlewareHandler<GatewayEnv> {
  // A bucket over its limit until the window ends, for that limit: refused here without
  // counting. A changed limit is not found here, so it applies on the next request.
  const over = new LRUCache<string, { limit: number; until: number }>({ max: opts.maxRefusedKeys ?? 10_000 });
  const count = async (b: Bucket): Promise<BucketState & { degraded: boolean }> => {
    const known = over.get(b.key);
    if (known !== undefined && known.limit === b.limit) {
      const left = known.until - Date.now();
      if (left > 0) return { ...b, consumed: b.limit + 1, msBeforeNext: left, degraded: false };
      over.delete(b.key);
    }
    const taken = await opts.counter.take(b.key);
    if (taken.consumed > b.limit) over.set(b.key, { limit: b.limit, until: Date.now() + taken.msBeforeNext });
    return { ...b, ...taken };
  };

  const unavailable = (c: Context<GatewayEnv>, err: unknown): Problem => {
    // The limits are unknown (the settings store cannot answer): refused, as an outage.
    c.get('log')?.warn({ err: err instanceof Error ? err.message : String(err), scope: c.get('policy').scope }, 'settings of the scope could not be resolved');
    return new Problem(503, 'authorization-unavailable', 'Authorization service unavailable', {
      detail: 'The settings of this node could not be resolved, so the request was not allowed. Retry later.',
      headers: { 'retry-after': '1' },
    });
  };

  // Not async: a node without limits, its settings at hand (a warm claim), hands on at once.
  return function rateLimitStage(c, next) {
    return whenAtHand(
      () => scopeSettings(c, opts.settingsFor),
      (settings) => limit(c, next, settings.claim),
      (err) => {
        throw unavailable(c, err);
      },
    );
  };

  function limit(c: Context<GatewayEnv>, next: Next, { values, node }: SettingsClaim): Promise<void> {
    const buckets = bucketsFor(node, c.get('principal'), values);
    if (buckets.length === 0) return next();
    return limited(c, next, node, buckets);
  }

  async function limited(c: Context<GatewayEnv>, next: Next, node: string, buckets: Bucket[]): Promise<void> {
    const states = await Promise.all(buckets.map(count));
    if (states.some((s) => s.degraded)) opts.onOutcome?.('degraded');
    const fields = rateLimitFields(states);
    const exceeded = states.filter((s) => s.consumed > s.limit);
    if (exceeded.length > 0) {
      opts.onOutcome?.('refused');
      const retryAfter = Math.max(...exceeded.map((s) => secondsUntil(s.msBeforeNext)));
      const first = exceeded[0]!;
      throw new Problem(429, 'rate-limited', 'Too Many Requests', {
        detail: `${first.policy === 'node' ? `${node} takes` : `Each principal may make`} at most ${first.limit} requests per minute${first.policy === 'node' ? '' : ` to ${node}`}; retry in ${retryAfter} s.`,
        extensions: { policy: first.policy, limit: first.limit, window: WINDOW_S },
        headers: { 'retry-after': String(retryAfter), ...fields },
      });
    }
    opts.onOutcome?.('passed');
    // On the answer, whoever writes it: the proxied upstream's response (written to the
    // raw response, whose own headers Node merges in), a later refusal, a forward-auth 200.
    const outgoing = c.env?.outgoing;
    if (outgoing !== undefined && typeof outgoing.setHeader === 'function' && !outgoing.headersSent) {
      outgoing.setHeader('ratelimit-policy', fields['ratelimit-policy']);
      outgoing.setHeader('ratelimit', fields.ratelimit);
      await next();
      return;
    }
    await next();
    c.header('ratelimit-policy', fields['ratelimit-policy']);
    c.header('ratelimit', fields.ratelimit);
  }
}
