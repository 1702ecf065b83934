// Stage 1: decode and validate the request target once; everything after this
// stage (policy match, authorization, forwarding) sees only `c.var.canonical`.
// canonicaliseRequest is the one parser: proxy mode gives it the request's own
// method and target, forward-auth (decision mode) the original request's as the
// trusted ingress reported them, so both are refused and matched alike.
//
// Refused with 400 problem+json, never "fixed up" (a guess here is a bypass later):
//   - dot segments `.` / `..`, plain or percent-encoded in any case (`%2e%2E`);
//     checked on the RAW request target, because the WHATWG URL parser behind
//     `c.req.url` has already resolved them (`/t1/../t2` arrives as `/t2`);
//   - encoded `/` or `\` (`%2f`, `%5c`), raw `\`, encoded `%` (`%25xx`, double
//     encoding), `;` path parameters (raw or `%3b`), NUL and control characters
//     (raw or encoded), non-ASCII (raw or encoded), empty segments (`//`, and a
//     trailing `/`), a fragment, malformed `%` escapes, any character outside the
//     safe segment set below, a path longer than MAX_PATH_LENGTH, headers larger
//     than MAX_HEADER_BYTES in total;
//   - a method that is not one Node's HTTP parser accepts (in proxy mode Node refuses
//     it before the app runs; in decision mode it arrives in a header);
//   - a Host or Content-Type header sent more than once (checkHeaders);
//   - method- and URL-override headers (X-HTTP-Method-Override, X-HTTP-Method,
//     X-Method-Override, X-Original-URL, X-Rewrite-URL, in any case and with `_`
//     or `.` for `-`): refused, never obeyed;
//   - `access_token` in the query (RFC 6750: tokens go in Authorization only):
//     400 with `WWW-Authenticate: Bearer error="invalid_request"` (RFC 6750 §3.1
//     gives invalid_request status 400); any spelling of the name, decoded.
//
// Where ids are checked: here every decoded segment must consist of the safe
// segment set (RFC 3986 unreserved + sub-delims + `:` `@`, minus `;`, plus `|`
// which subject ids may hold, see SUBJECT_ID), so the canonical path needs no
// re-encoding to be forwarded. The id shape
// (ID_PATTERN) is checked by the policy stage, the only one that knows which
// segments are ids.
//
// The query string is kept as sent (forwarded verbatim); only the token rule above
// and raw control/non-ASCII bytes are checked in it.
import { METHODS } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { Problem, type ProblemSlug } from '../shared/problem.js';
import { incomingOf } from '../shared/node-incoming.js';
import { excerpt } from './excerpt.js';
import type { CanonicalRequest, GatewayEnv } from './types.js';

export interface NormaliseOptions {
  /** MAX_PATH_LENGTH: longest accepted raw path (before decoding, without the query). */
  maxPathLength: number;
  /** MAX_HEADER_BYTES: total size of the header lines (`name: value\r\n`). */
  maxHeaderBytes: number;
}

/** Why a request was refused: problem slug + title, and a detail naming the part. */
export interface Refusal {
  slug: ProblemSlug;
  title: string;
  detail: string;
  /** `path`, `query` or `header.<name>` */
  part: string;
}

export type TargetResult = { ok: true; value: Omit<CanonicalRequest, 'method'> } | { ok: false; refusal: Refusal };
export type RequestResult = { ok: true; value: CanonicalRequest } | { ok: false; refusal: Refusal };

/** The methods Node's HTTP parser accepts: in proxy mode no other method reaches the app. */
const HTTP_METHODS: ReadonlySet<string> = new Set(METHODS);

export const OVERRIDE_HEADERS: readonly string[] = [
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-url',
  'x-rewrite-url',
];
const OVERRIDE_SET = new Set(OVERRIDE_HEADERS);
const OVERRIDE_LENGTHS = new Set(OVERRIDE_HEADERS.map((h) => h.length));

// Characters a decoded segment may hold: unreserved / sub-delims / ":" / "@" / "|", without ";".
const SAFE = new Uint8Array(128);
for (const ch of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@|") {
  SAFE[ch.charCodeAt(0)] = 1;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

function at(segment: string, index: number, slug: ProblemSlug, title: string, why: string): Refusal {
  return { slug, title, part: 'path', detail: `path segment ${index} ("${excerpt(segment)}") ${why}` };
}

/** Classify one character (raw or decoded from an escape); undefined when it is safe. */
function badCharacter(code: number, encoded: boolean, segment: string, index: number): Refusal | undefined {
  if (code < 0x80 && SAFE[code] === 1) return undefined;
  const how = encoded ? 'an encoded' : 'a';
  if (code === 0x2f) return at(segment, index, 'encoded-slash', 'Encoded slash in path', 'contains an encoded slash (%2F)');
  if (code === 0x5c) {
    return encoded
      ? at(segment, index, 'encoded-backslash', 'Encoded backslash in path', 'contains an encoded backslash (%5C)')
      : at(segment, index, 'backslash', 'Backslash in path', 'contains a backslash');
  }
  if (code === 0x25) {
    return at(segment, index, 'double-encoding', 'Double percent-encoding in path', 'contains an encoded percent sign (%25): double encoding is refused');
  }
  if (code === 0x3b) return at(segment, index, 'path-parameter', 'Path parameter in path', `contains ${how} ";": path parameters are refused`);
  if (code < 0x20 || code === 0x7f) {
    const name = code === 0 ? 'NUL' : `control character 0x${code.toString(16).padStart(2, '0')}`;
    return at(segment, index, 'control-character', 'Control character in path', `contains ${encoded ? 'an encoded ' : ''}${name}`);
  }
  if (code >= 0x80) return at(segment, index, 'non-ascii', 'Non-ASCII character in path', `contains ${encoded ? 'an encoded ' : ''}non-ASCII character`);
  const shown = code === 0x20 ? 'space' : `"${String.fromCharCode(code)}"`;
  return at(segment, index, 'disallowed-character', 'Character not allowed in path', `contains ${how} ${shown}, which is not allowed in a path segment`);
}

/** Decode one raw segment, or say why it is refused. `index` is 1-based, for messages. */
function decodeSegment(raw: string, index: number): string | Refusal {
  if (raw.length === 0) {
    return { slug: 'empty-segment', title: 'Empty path segment', part: 'path', detail: `path segment ${index} is empty ("//" or a trailing "/")` };
  }
  let decoded = '';
  let from = 0; // start of the raw run not yet copied into `decoded`
  let escaped = false;
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code < 0x80 && SAFE[code] === 1) continue;
    if (code !== 0x25) {
      const bad = badCharacter(code, false, raw, index);
      if (bad) return bad;
      continue;
    }
    const hi = hexValue(raw.charCodeAt(i + 1));
    const lo = hexValue(raw.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) {
      return at(raw, index, 'malformed-encoding', 'Malformed percent-encoding in path', 'has a "%" not followed by two hex digits');
    }
    const byte = hi * 16 + lo;
    const bad = badCharacter(byte, true, raw, index);
    if (bad) return bad;
    decoded += raw.slice(from, i) + String.fromCharCode(byte);
    i += 2;
    from = i + 1;
    escaped = true;
  }
  if (escaped) decoded += raw.slice(from);
  else decoded = raw;
  if (decoded === '.' || decoded === '..') {
    return at(raw, index, 'dot-segment', 'Dot segment in path', `is a ${escaped ? 'percent-encoded ' : ''}dot segment: "." and ".." are refused, not resolved`);
  }
  return decoded;
}

/** The path and query of a raw request target (origin-form, or absolute-form as HTTP/1.1 allows). */
function splitTarget(target: string): { path: string; query: string } | Refusal {
  let rest = target;
  if (rest.charCodeAt(0) !== 0x2f) {
    const scheme = /^https?:\/\//i.exec(rest);
    if (scheme === null) {
      return { slug: 'invalid-request-target', title: 'Invalid request target', part: 'path', detail: 'the request target must be a path starting with "/"' };
    }
    const pathStart = rest.slice(scheme[0].length).search(/[/?]/);
    rest = pathStart < 0 ? '/' : rest.slice(scheme[0].length + pathStart);
    if (rest.charCodeAt(0) === 0x3f) rest = `/${rest}`;
  }
  if (rest.includes('#')) {
    return { slug: 'invalid-request-target', title: 'Invalid request target', part: 'path', detail: 'the request target contains a fragment ("#")' };
  }
  const q = rest.indexOf('?');
  return q < 0 ? { path: rest, query: '' } : { path: rest.slice(0, q), query: rest.slice(q + 1) };
}

const TOKEN_PARAM = 'access_token';

function checkQuery(query: string): Refusal | undefined {
  for (let i = 0; i < query.length; i++) {
    const code = query.charCodeAt(i);
    if (code < 0x21 || code >= 0x7f) {
      return { slug: 'invalid-query', title: 'Invalid query string', part: 'query', detail: 'the query string contains a control, space or non-ASCII character' };
    }
  }
  // Fast path: no escapes and no literal `access_token` means no token parameter.
  if (query === '' || (!query.includes('%') && !/access_token/i.test(query))) return undefined;
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    let name = (eq < 0 ? pair : pair.slice(0, eq)).replaceAll('+', ' ');
    if (name.includes('%')) {
      try {
        name = decodeURIComponent(name);
      } catch {
        return { slug: 'invalid-query', title: 'Invalid query string', part: 'query', detail: `query parameter name "${excerpt(name)}" has malformed percent-encoding` };
      }
    }
    if (name.length === TOKEN_PARAM.length && name.toLowerCase() === TOKEN_PARAM) {
      return {
        slug: 'token-in-query',
        title: 'Access token in query string',
        part: 'query.access_token',
        detail: 'access tokens are accepted only in the Authorization header (RFC 6750), never in the query string',
      };
    }
  }
  return undefined;
}

/** Decode and validate a raw request target. Pure, so it can be tested and benchmarked alone. */
export function canonicaliseTarget(target: string, maxPathLength: number): TargetResult {
  const split = splitTarget(target);
  if ('slug' in split) return { ok: false, refusal: split };
  const { path: rawPath, query } = split;
  if (rawPath.length > maxPathLength) {
    return {
      ok: false,
      refusal: { slug: 'path-too-long', title: 'Path too long', part: 'path', detail: `the path is ${rawPath.length} characters; at most ${maxPathLength} are accepted` },
    };
  }
  const segments: string[] = [];
  let decodedAny = false;
  if (rawPath !== '/') {
    const raws = rawPath.slice(1).split('/');
    for (let i = 0; i < raws.length; i++) {
      const decoded = decodeSegment(raws[i]!, i + 1);
      if (typeof decoded !== 'string') return { ok: false, refusal: decoded };
      if (decoded !== raws[i]) decodedAny = true;
      segments.push(decoded);
    }
  }
  const queryRefusal = checkQuery(query);
  if (queryRefusal) return { ok: false, refusal: queryRefusal };
  // Nothing was percent-decoded: the raw path is already the canonical one.
  return { ok: true, value: { path: decodedAny ? `/${segments.join('/')}` : rawPath, segments, query } };
}

/**
 * The canonical form of a request from its method and raw target: the one parser both
 * proxy mode (the request's own) and decision mode (the original request's, reported by
 * the ingress) go through. Pure.
 */
export function canonicaliseRequest(method: string, target: string, maxPathLength: number): RequestResult {
  if (!HTTP_METHODS.has(method)) {
    return {
      ok: false,
      refusal: { slug: 'invalid-method', title: 'Invalid method', part: 'method', detail: `"${excerpt(method)}" is not an HTTP method (methods are upper case)` },
    };
  }
  const result = canonicaliseTarget(target, maxPathLength);
  if (!result.ok) return result;
  const { path, segments, query } = result.value;
  return { ok: true, value: { method, path, segments, query } };
}

/**
 * Whether a header name is `lower` (given in lower case), in any case, without making a
 * lower-case copy: `| 0x20` folds ASCII letters and leaves `-` as it is, and a header
 * name (an HTTP token) holds nothing else that folds onto a letter or `-`.
 */
function isName(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < name.length; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/**
 * Header-level refusals: total size, override headers, and a singleton header sent more
 * than once. Reads Node's raw lines when available: Node keeps only the first Host or
 * Content-Type in `headers`, so the gateway and the upstream agree, but a proxy in front
 * of the gateway may have acted on the last one. (Two Authorization lines are refused by
 * the authenticate stage, with its Bearer challenge; Node itself refuses two Content-Length
 * or Transfer-Encoding lines.)
 */
export function checkHeaders(lines: readonly string[] | Headers, maxHeaderBytes: number): Refusal | undefined {
  // Node's raw [name, value, name, value, …]; a Headers (no Node request behind it) is
  // flattened first, and holds each name once. A plain loop, no per-request closure or
  // copy of a name: this runs on every request.
  const pairs: readonly string[] = Array.isArray(lines) ? (lines as readonly string[]) : [...(lines as Headers)].flat();
  let total = 0;
  let override: string | undefined;
  let hosts = 0;
  let contentTypes = 0;
  for (let i = 0; i < pairs.length; i += 2) {
    const name = pairs[i]!;
    total += name.length + pairs[i + 1]!.length + 4; // "name: value\r\n"
    if (isName(name, 'host')) hosts++;
    else if (isName(name, 'content-type')) contentTypes++;
    // `_` and `.` spellings too: CGI/WSGI-style servers read X_HTTP_Method_Override as
    // X-HTTP-Method-Override (both become HTTP_X_HTTP_METHOD_OVERRIDE).
    else if (override === undefined && OVERRIDE_LENGTHS.has(name.length) && OVERRIDE_SET.has(name.toLowerCase().replace(/[_.]/g, '-'))) override = name;
  }
  if (total > maxHeaderBytes) {
    return { slug: 'headers-too-large', title: 'Request headers too large', part: 'header', detail: `the request headers total ${total} bytes; at most ${maxHeaderBytes} are accepted` };
  }
  if (hosts > 1) return duplicate('host', hosts);
  if (contentTypes > 1) return duplicate('content-type', contentTypes);
  if (override !== undefined) {
    const lower = override.toLowerCase();
    return {
      slug: 'override-header',
      title: 'Method or URL override header refused',
      part: `header.${lower}`,
      detail: `the ${lower} header is not obeyed and not accepted; send the real method and path`,
    };
  }
  return undefined;
}

function duplicate(name: string, count: number): Refusal {
  return {
    slug: 'duplicate-header',
    title: 'Header sent more than once',
    part: `header.${name}`,
    detail: `the ${name} header was sent ${count} times; send it exactly once`,
  };
}

/** The request target as sent: Node's raw `req.url` when available, else from the parsed URL (read only then). */
function rawTarget(c: Context<GatewayEnv>, incomingUrl: string | undefined): string {
  if (incomingUrl !== undefined) return incomingUrl;
  const url = c.req.raw.url;
  const pathStart = url.indexOf('/', url.indexOf('//') + 2);
  return pathStart < 0 ? '/' : url.slice(pathStart);
}

export function normalise(opts: NormaliseOptions): MiddlewareHandler<GatewayEnv> {
  const { maxPathLength, maxHeaderBytes } = opts;
  // Not async: canonicalising awaits nothing, so the stage hands on at once.
  return (c, next) => {
    const incoming = incomingOf(c);
    const headerRefusal = checkHeaders(incoming?.rawHeaders ?? c.req.raw.headers, maxHeaderBytes);
    if (headerRefusal) throw refusalProblem(headerRefusal);
    const result = canonicaliseRequest(c.req.method, rawTarget(c, incoming?.url), maxPathLength);
    if (!result.ok) throw refusalProblem(result.refusal);
    c.set('canonical', result.value);
    return next();
  };
}

/** A refusal as the problem the client gets (400; the token rule adds its Bearer challenge). */
export function refusalProblem(refusal: Refusal): Problem {
  return new Problem(400, refusal.slug, refusal.title, {
    detail: refusal.detail,
    'invalid-params': [{ name: refusal.part, reason: refusal.title }],
    ...(refusal.slug === 'token-in-query'
      ? { headers: { 'www-authenticate': 'Bearer error="invalid_request", error_description="token in query string"' } }
      : {}),
  });
}

/**
 * For `getRequestListener(app.fetch, { errorHandler: requestErrorResponse })`:
 * @hono/node-server refuses some targets itself before the app runs (a raw `\` in
 * the path, a bad Host) and by default answers a bare 400; this gives them the
 * same problem+json shape. Anything else is a 500 without internals.
 */
export function requestErrorResponse(err: unknown): Response {
  if (!(err instanceof Error) || err.name !== 'RequestError') {
    return new Problem(500, 'internal', 'Internal Server Error').response();
  }
  return /backslash/i.test(err.message)
    ? new Problem(400, 'backslash', 'Backslash in path', { detail: 'the path contains a backslash' }).response()
    : new Problem(400, 'invalid-request-target', 'Invalid request target', { detail: excerpt(err.message, 80) }).response();
}
