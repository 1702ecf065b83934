// The Node request behind a Hono context, when the app runs on @hono/node-server.
// Two things only it knows: the raw request target (before the WHATWG URL parser
// resolves `.`/`..` and turns `\` into `/`) and the raw header list (Node joins or
// drops duplicate headers in `headers`; `rawHeaders` keeps every line).
import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';

export function incomingOf(c: Context): IncomingMessage | undefined {
  const env = c.env as { incoming?: IncomingMessage } | undefined;
  return env?.incoming;
}

/** A header of Node's parsed `headers` as one value (repeated lines joined as Node joins them). */
export function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/** How many header lines named `lowerName` the client sent (raw, before Node merged them). */
export function rawHeaderCount(rawHeaders: readonly string[], lowerName: string): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) count++;
  }
  return count;
}
