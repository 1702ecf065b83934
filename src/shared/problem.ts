// RFC 9457 problem details: every error tiergate returns has this shape.
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface InvalidParam {
  /** Where the bad value is: `body.name`, `path.tenantId`, `header.authorization`, … */
  name: string;
  reason: string;
}

export interface Problem {
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

const TYPE_BASE = 'https://tiergate.dev/problems/';

/** Problem types are stable identifiers, documented in the README. */
export function problemType(slug: string): string {
  return `${TYPE_BASE}${slug}`;
}

export function problem(status: number, slug: string, title: string, extra: Partial<Problem> = {}): Problem {
  return { type: problemType(slug), title, status, ...extra };
}

export function problemResponse(p: Problem, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(p), {
    status: p.status,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE, ...headers },
  });
}
