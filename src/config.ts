// Every setting tiergate reads, in one zod schema, parsed once at start.
// A bad value stops the start with a message naming the variable and what is allowed.
import { z } from 'zod';
import { parseTrustedProxies } from './shared/trusted-proxies.js';
import { REGION_NAME, REGION_NAME_RULE, TENANT_SERVICE_UPSTREAM, UPSTREAM_NAME, UPSTREAM_NAME_RULE, upstreamUrlProblem } from './shared/upstream-url.js';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().min(0);
const optionalUrl = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .pipe(z.url().optional())
  .optional();
const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();
const boolFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const csv = z
  .string()
  .transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  );

/** An HTTP header name (RFC 9110 token); compared without case. */
const headerName = z
  .string()
  .trim()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name')
  .refine((v) => !['authorization', 'host', 'connection', 'content-length', 'transfer-encoding'].includes(v.toLowerCase()), 'must not be a header HTTP itself or authentication uses');

/** A subject as OpenFGA sees it: `user:<id>`; a bare id is taken as a user id. */
export const SUBJECT_ID = /^[A-Za-z0-9][A-Za-z0-9_@.|-]{0,127}$/;

const issuerSchema = z
  .object({
    issuer: z.string().min(1),
    audiences: z.array(z.string().min(1)).min(1),
    algorithms: z
      .array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']))
      .min(1),
    jwksUrl: z.url().optional(),
    jwksFile: z.string().min(1).optional(),
  })
  .strict()
  .refine((i) => (i.jwksUrl === undefined) !== (i.jwksFile === undefined), {
    message: 'give exactly one of jwksUrl or jwksFile',
  });
export type IssuerConfig = z.infer<typeof issuerSchema>;

const issuersJson = z
  .string()
  .trim()
  .transform((v, ctx) => {
    if (v === '') return [];
    try {
      return JSON.parse(v) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be a JSON array of issuers' });
      return z.NEVER;
    }
  })
  .pipe(z.array(issuerSchema));

/** `name=url,name=url`: deploy-time URLs of the route policy's upstreams. */
const upstreamUrls = z.string().transform((v, ctx) => {
  const out: Record<string, string> = {};
  for (const item of v.split(',').map((s) => s.trim()).filter((s) => s.length > 0)) {
    const eq = item.indexOf('=');
    const key = item.slice(0, Math.max(eq, 0)).trim();
    // `name@region`: one regional target of an upstream that declares regions.
    const at = key.indexOf('@');
    const name = at < 0 ? key : key.slice(0, at);
    const region = at < 0 ? undefined : key.slice(at + 1);
    const url = item.slice(eq + 1).trim();
    const problem = eq < 0 ? undefined : upstreamUrlProblem(url);
    if (eq <= 0) ctx.addIssue({ code: 'custom', message: `"${item}" must be <upstream>=<url> or <upstream>@<region>=<url>` });
    else if (!UPSTREAM_NAME.test(name)) ctx.addIssue({ code: 'custom', message: `upstream name "${name}" ${UPSTREAM_NAME_RULE}` });
    else if (region !== undefined && !REGION_NAME.test(region)) ctx.addIssue({ code: 'custom', message: `${key}: region "${region}" ${REGION_NAME_RULE}` });
    else if (name === TENANT_SERVICE_UPSTREAM) ctx.addIssue({ code: 'custom', message: `${name}: its URL is TENANT_SERVICE_URL` });
    else if (Object.hasOwn(out, key)) ctx.addIssue({ code: 'custom', message: `${key} is named twice` });
    else if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `${key}: "${url}" ${problem}` });
    else out[key] = url;
  }
  return out;
});

export const configSchema = z.object({
  // --- process ---
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Where `npm start` keeps its state (dev signing keys, PGlite data, the embedded OpenFGA's SQLite file). */
  TIERGATE_DATA_DIR: z.string().default('.data'),

  // --- gateway ---
  GATEWAY_HOST: z.string().default('127.0.0.1'),
  GATEWAY_PORT: port.default(8080),
  /** Public base URL of the gateway, used as the assertion issuer and in the dev issuer. */
  GATEWAY_PUBLIC_URL: optionalUrl,
  /** Gateway worker processes (node:cluster); 1 runs in-process. 0 means one per core. */
  GATEWAY_WORKERS: nonNegativeInt.default(1),
  POLICY_FILE: z.string().default('policy/routes.yaml'),
  /** The settings registry: every key a node's settings document may hold (docs/settings.md). */
  SETTINGS_FILE: z.string().default('policy/settings.yaml'),
  /** Reload the route policy when its file (or its directory's ConfigMap `..data` link) changes. */
  POLICY_WATCH: boolFlag.default(true),
  /** Quiet time after the last change in the policy file's directory before it is reloaded. */
  POLICY_RELOAD_DEBOUNCE_MS: z.coerce.number().int().min(0).max(60_000).default(250),
  /** A candidate route policy evaluated beside POLICY_FILE and never enforced (docs/operations.md, "Shadow policy"). */
  SHADOW_POLICY_FILE: optionalString,
  /** The share of requests (0..1) evaluated against SHADOW_POLICY_FILE. */
  SHADOW_SAMPLE_RATE: z.coerce.number().min(0).max(1).default(1),
  /** Peers (IPs or CIDR ranges) whose X-Forwarded-* and X-Request-Id headers and forward-auth questions are believed. */
  TRUSTED_PROXIES: csv
    .superRefine((list, ctx) => {
      for (const message of parseTrustedProxies(list).problems) ctx.addIssue({ code: 'custom', message });
    })
    .default([]),
  MAX_PATH_LENGTH: positiveInt.default(2048),
  MAX_HEADER_BYTES: positiveInt.default(16384),
  /**
   * How long an idle client connection is kept open. Longer than the idle timeouts of the
   * clients and load balancers in front (60 s is common): the side that closes first must be
   * the client, or a request it sends just as the gateway closes is lost.
   */
  GATEWAY_KEEPALIVE_TIMEOUT_S: positiveInt.max(3600).default(75),
  /** Header carrying a short deny reason (the missing permission); empty disables it. */
  DENY_REASON_HEADER: z.string().default('X-Tiergate-Deny-Reason'),

  // --- forward-auth (decision mode for nginx auth_request, Traefik forwardAuth, Envoy ext_authz) ---
  /** Path prefix of the decision endpoints (`<prefix>/nginx`, `<prefix>/traefik`, `<prefix>/envoy/…`); empty disables them. */
  FORWARD_AUTH_PREFIX: z
    .string()
    .trim()
    .regex(/^(?:(?:\/[a-z0-9][a-z0-9._-]*)+)?$/, 'must be empty or a path of lower-case segments, e.g. /forward-auth')
    .refine((v) => !/^\/(?:api|admin)(?:\/|$)/.test(v), 'must not be under /api or /admin')
    .default('/forward-auth'),
  /** Header in which nginx passes the original method (`proxy_set_header X-Original-Method $request_method`). */
  FORWARD_AUTH_METHOD_HEADER: headerName.default('X-Original-Method'),
  /** Header in which nginx passes the original request target (`proxy_set_header X-Original-URI $request_uri`). */
  FORWARD_AUTH_URI_HEADER: headerName.default('X-Original-URI'),

  // --- authentication ---
  /** JSON array of trusted issuers: [{issuer, audiences, algorithms, jwksUrl | jwksFile}]. */
  AUTH_ISSUERS: issuersJson.default([]),
  AUTH_CLOCK_TOLERANCE_S: nonNegativeInt.max(300).default(30),
  /** Minimum seconds between two JWKS refetches triggered by an unknown `kid`. */
  AUTH_JWKS_COOLDOWN_S: nonNegativeInt.default(30),
  AUTH_JWKS_CACHE_MAX_AGE_S: positiveInt.default(600),
  AUTH_TOKEN_CACHE_MAX: positiveInt.default(10000),
  /**
   * `acr` values that count as a multi-factor sign-in for security.require_mfa (besides an
   * `amr` that shows one), and the `acr_values` of the step-up challenge (RFC 9470).
   */
  AUTH_MFA_ACR_VALUES: csv
    .refine((l) => l.every((v) => /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(v)), 'each value is printable ASCII without spaces, quotes or backslashes')
    .default(['http://schemas.openid.net/pape/policies/2007/06/multi-factor']),
  /** Trust a locally generated development issuer when AUTH_ISSUERS is empty (never in production). */
  DEV_ISSUER: boolFlag.default(true),
  DEV_ISSUER_AUDIENCE: z.string().default('tiergate'),

  // --- web console (/console, docs/console.md) ---
  /** The identity provider the console signs in with (OIDC discovery, authorization code + PKCE); unset: the dev issuer, when trusted. */
  CONSOLE_OIDC_ISSUER: optionalUrl,
  /** The console's client id at CONSOLE_OIDC_ISSUER (a public client: no secret). */
  CONSOLE_OIDC_CLIENT_ID: z.string().trim().min(1).default('tiergate-console'),
  /** Scopes the console asks CONSOLE_OIDC_ISSUER for (space-separated). */
  CONSOLE_OIDC_SCOPE: z.string().trim().min(1).default('openid'),

  // --- upstream (tenant-resource service) ---
  TENANT_SERVICE_URL: optionalUrl,
  TENANT_SERVICE_HOST: z.string().default('127.0.0.1'),
  TENANT_SERVICE_PORT: port.default(8090),
  /** Default answer budget of an upstream (the route policy's `timeoutMs` overrides it per upstream). */
  UPSTREAM_TIMEOUT_MS: positiveInt.default(10000),
  /** Deploy-time URLs of the route policy's upstreams, `name=url,…` (the file's URLs are defaults). */
  UPSTREAM_URLS: upstreamUrls.optional(),
  /** `npm start`'s reports-only listener (the policy's `reports` upstream) when UPSTREAM_URLS does not name reports. */
  REPORTS_SERVICE_PORT: port.default(8091),
  ASSERTION_AUDIENCE: z.string().default('tenant-service'),
  ASSERTION_TTL_S: positiveInt.max(600).default(60),
  /** JWKS URL the tenant service trusts for gateway assertions (defaults to the gateway's own). */
  GATEWAY_JWKS_URL: optionalUrl,

  // --- OpenFGA ---
  /** A running OpenFGA server; when unset, `npm start` builds and runs one. */
  OPENFGA_API_URL: optionalUrl,
  /**
   * Datastore for the embedded OpenFGA: a postgres:// URI, or `memory` (nothing kept);
   * unset = SQLite at <TIERGATE_DATA_DIR>/openfga/openfga.db.
   */
  OPENFGA_DATASTORE_URI: optionalString.pipe(
    z
      .string()
      .refine((v) => v === 'memory' || /^postgres(ql)?:\/\//.test(v), { message: 'must be a postgres:// URI or memory' })
      .optional(),
  ),
  /** Preshared key of an external OpenFGA (OPENFGA_API_URL) run with `--authn-method preshared`. */
  OPENFGA_API_TOKEN: optionalString,
  OPENFGA_HTTP_PORT: port.default(8180),
  OPENFGA_GRPC_PORT: port.default(8181),
  OPENFGA_STORE_NAME: z.string().min(1).default('tiergate'),
  OPENFGA_STORE_ID: optionalString,
  OPENFGA_TIMEOUT_MS: positiveInt.default(1000),
  /**
   * At start, compare the database's hierarchy with OpenFGA's structural links and grants:
   * `refuse` to start when they disagree, `warn` and start, or `off`.
   */
  TIERGATE_START_CHECK: z.enum(['refuse', 'warn', 'off']).default('refuse'),
  /** Comma-separated subjects made platform admins at bootstrap (`user:alice` or `alice`). */
  PLATFORM_ADMINS: csv.default([]),
  /** Comma-separated client ids granted `can_evaluate` (the AuthZEN API) at bootstrap. */
  AUTHZEN_CLIENTS: csv.pipe(z.array(z.string().regex(SUBJECT_ID, 'each client id must match SUBJECT_ID'))).default([]),

  // --- decision cache ---
  REDIS_URL: optionalString,
  /** Budget for one Redis round trip on the hot path before going straight to OpenFGA. */
  REDIS_TIMEOUT_MS: positiveInt.default(50),
  CACHE_ENABLED: boolFlag.default(true),
  CACHE_L1_MAX_ENTRIES: positiveInt.default(100000),
  CACHE_L1_ENABLED: boolFlag.default(true),
  CACHE_ALLOW_TTL_S: positiveInt.default(300),
  CACHE_DENY_TTL_S: positiveInt.default(30),
  /** Fraction of the TTL added at random so entries do not expire together. */
  CACHE_TTL_JITTER: z.coerce.number().min(0).max(1).default(0.1),
  /**
   * With Redis and the in-process layer: while Redis has stopped holding this replica's
   * answers, ask OpenFGA alongside the Redis lookup instead of after its "no".
   */
  CACHE_RACE_LOOKUPS: boolFlag.default(true),
  /**
   * With Redis: how long a miss waits for another replica already asking OpenFGA the same
   * question (holding the key's fill lease) before asking itself; 0 = never wait. Unset:
   * OPENFGA_TIMEOUT_MS, by when the other replica has its answer or has given up.
   */
  CACHE_FILL_WAIT_MS: optionalString.pipe(z.coerce.number<string | undefined>().int().min(0).max(60_000).optional()),
  READCHANGES_POLL_MS: positiveInt.default(1000),

  // --- persistence ---
  /** PostgreSQL for admin metadata, audit and tenant data; PGlite under TIERGATE_DATA_DIR when unset. */
  DATABASE_URL: optionalString,

  // --- metrics ---
  METRICS_HOST: z.string().default('127.0.0.1'),
  /** 0 disables the metrics listener. */
  METRICS_PORT: port.default(9464),
  /**
   * How often the event-loop delay histogram (nodejs_eventloop_lag_*) samples, in ms. Each
   * sample wakes the process: prom-client's 10 ms wakes an idle gateway 100 times a second.
   */
  METRICS_EVENT_LOOP_PRECISION_MS: positiveInt.max(60_000).default(100),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parse the environment once. Throws ConfigError naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const known = Object.fromEntries(
    Object.keys(configSchema.shape)
      .filter((k) => env[k] !== undefined)
      .map((k) => [k, env[k]]),
  );
  const parsed = configSchema.safeParse(known);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = String(i.path[0] ?? '(environment)');
        const rest = i.path.slice(1).join('.');
        return `${name}${rest ? ` (${rest})` : ''}: ${i.message} (got ${JSON.stringify(env[name] ?? '')})`;
      }),
    );
  }
  const config = parsed.data;
  const problems: string[] = [];
  if (config.NODE_ENV === 'production' && config.AUTH_ISSUERS.length === 0) {
    problems.push('AUTH_ISSUERS: production requires at least one configured issuer');
  }
  // Replicas learn of each other's writes through Redis pub/sub; without it a
  // revocation made through one worker would reach the others only by polling.
  if (config.GATEWAY_WORKERS !== 1 && !config.REDIS_URL) {
    problems.push('REDIS_URL: GATEWAY_WORKERS other than 1 needs Redis, so every worker sees revocations before the admin API answers');
  }
  if (config.FORWARD_AUTH_METHOD_HEADER.toLowerCase() === config.FORWARD_AUTH_URI_HEADER.toLowerCase()) {
    problems.push('FORWARD_AUTH_URI_HEADER: must differ from FORWARD_AUTH_METHOD_HEADER');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** Subjects are stored in OpenFGA as `user:<id>`. */
export function toUserSubject(s: string): string {
  return s.startsWith('user:') ? s : `user:${s}`;
}
