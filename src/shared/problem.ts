// RFC 9457 problem details: every error tiergate returns has this shape. Code that
// refuses a request throws a Problem; each app renders it in one place (its Hono
// onError), adding what only the app knows (the request id, the path).
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Every problem type tiergate answers with: `https://tiergate.dev/problems/<slug>`, each with its status and meaning in docs/security.md ("Problem types"). */
export const PROBLEM_SLUGS = [
  // Any part
  'bad-request',
  'invalid-request',
  'invalid-json',
  'unsupported-media-type',
  'payload-too-large',
  'not-found',
  'method-not-allowed',
  'conflict',
  'forbidden',
  'internal',
  // The gateway's normalise stage: the request target and headers
  'invalid-request-target',
  'empty-segment',
  'encoded-slash',
  'encoded-backslash',
  'backslash',
  'double-encoding',
  'path-parameter',
  'control-character',
  'non-ascii',
  'disallowed-character',
  'malformed-encoding',
  'dot-segment',
  'invalid-query',
  'token-in-query',
  'path-too-long',
  'headers-too-large',
  'override-header',
  'duplicate-header',
  'invalid-method',
  // The gateway's authenticate, policy and authorize stages
  'unauthenticated',
  'invalid-token',
  'issuer-unavailable',
  'no-route',
  'invalid-id',
  'policy-ambiguous',
  'authorization-unavailable',
  // The gateway's forward-auth (decision mode) endpoints
  'untrusted-peer',
  'invalid-original-request',
  // The gateway's forward stage
  'upstream-timeout',
  'upstream-unavailable',
  'no-upstream-in-region',
  // The admin API
  'id-retired',
  'invalidation-failed',
  'rejected-by-openfga',
  'authorization-engine-unavailable',
  'setting-locked',
  'allocation-exceeded',
  'policy-invalid',
  // The tenant service
  'invalid-assertion',
  'assertion-keys-unavailable',
  'scope-mismatch',
  'quota-exceeded',
  'not-ready',
] as const;

export type ProblemSlug = (typeof PROBLEM_SLUGS)[number];

export interface InvalidParam {
  /** Where the bad value is: `body.name`, `path.tenantId`, `header.authorization`, … */
  name: string;
  reason: string;
}

/** The body of a problem+json response. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  /** The request id, so a user can quote it and an operator can find the log line. */
  requestId?: string;
  'invalid-params'?: InvalidParam[];
  [extension: string]: unknown;
}

export interface ProblemInit {
  detail?: string | undefined;
  'invalid-params'?: InvalidParam[] | undefined;
  /** Further members of the body (e.g. the missing `permission` of a 403). */
  extensions?: Record<string, unknown>;
  /** Response headers that belong to this problem (`www-authenticate`, `allow`, `retry-after`, …). */
  headers?: Record<string, string>;
  cause?: unknown;
}

/** Where a problem happened; added by the app that renders it. */
export interface ProblemSite {
  requestId?: string | undefined;
  instance?: string | undefined;
}

const TYPE_BASE = 'https://tiergate.dev/problems/';

export function problemType(slug: ProblemSlug): string {
  return `${TYPE_BASE}${slug}`;
}

/** The one error type for a refused request: thrown anywhere, rendered once per app. */
export class Problem extends Error {
  readonly detail: string | undefined;
  readonly invalidParams: InvalidParam[] | undefined;
  readonly extensions: Record<string, unknown> | undefined;
  readonly headers: Record<string, string>;

  constructor(
    readonly status: number,
    readonly slug: ProblemSlug,
    readonly title: string,
    init: ProblemInit = {},
  ) {
    super(init.detail ?? title, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'Problem';
    this.detail = init.detail;
    this.invalidParams = init['invalid-params'];
    this.extensions = init.extensions;
    this.headers = init.headers ?? {};
  }

  /** The problem+json body, with where it happened. */
  details(site: ProblemSite = {}): ProblemDetails {
    return {
      type: problemType(this.slug),
      title: this.title,
      status: this.status,
      ...(this.detail !== undefined ? { detail: this.detail } : {}),
      ...this.extensions,
      ...(this.invalidParams !== undefined ? { 'invalid-params': this.invalidParams } : {}),
      ...(site.instance !== undefined ? { instance: site.instance } : {}),
      ...(site.requestId !== undefined ? { requestId: site.requestId } : {}),
    };
  }

  /** The response: this problem's own headers, then the app's (`x-request-id`). */
  response(site: ProblemSite = {}, headers: Record<string, string> = {}): Response {
    return new Response(JSON.stringify(this.details(site)), {
      status: this.status,
      headers: { 'content-type': PROBLEM_CONTENT_TYPE, ...this.headers, ...headers },
    });
  }
}
