// One way for a pipeline stage to stop a request: an RFC 9457 problem carrying
// the request id (when the request-id stage set one), so a user can quote it.
import { problem, problemResponse, type Problem } from '../shared/problem.js';

export function refuse(
  c: { get(key: 'requestId'): string | undefined },
  status: number,
  slug: string,
  title: string,
  extra: Partial<Problem> = {},
  headers: Record<string, string> = {},
): Response {
  const requestId = c.get('requestId');
  const body = problem(status, slug, title, requestId === undefined ? extra : { ...extra, requestId });
  return problemResponse(body, headers);
}

/** A short, printable rendering of client input for a problem detail: never huge, never raw control bytes. */
export function excerpt(input: string, max = 48): string {
  const cut = input.length > max ? `${input.slice(0, max)}…` : input;
  return cut.replace(/[^\x20-\x7e…]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
