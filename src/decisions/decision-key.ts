// The decision cache key: a SHA-256 over a typed, length-prefixed canonical encoding
// of every input that can change the answer. Never a delimiter-joined string: a
// client controls ids, and `a|b`+`c` must not equal `a`+`b|c`.
//
// Encoding (v1): `k1` then, in fixed order, one field per input, each written as
// `<tag><length>:<value>` where length counts UTF-16 code units of value:
//   s store id, m model id, u user, r relation, o object,
//   n<count>: then each contextual tuple as u/r/o fields, tuples sorted by their own
//     encoding (the order a caller lists them in does not change the answer),
//   c context as canonical JSON (keys sorted, types preserved) or `-` when absent.
// A length prefix makes every field self-delimiting, so the encoding is injective;
// SHA-256 of an injective encoding collides only by breaking SHA-256.
import { hash } from 'node:crypto';
import type { CheckRequest, TupleKey } from '../authz/types.js';

// String.prototype.isWellFormed (ES2024) exists in Node 20; the ES2022 lib lacks its type.
interface WellFormed {
  isWellFormed(): boolean;
}

function field(tag: string, value: string): string {
  return `${tag}${value.length}:${value}`;
}

function tupleField(t: TupleKey): string {
  return field('u', t.user) + field('r', t.relation) + field('o', t.object);
}

/** JSON with object keys sorted at every level; equal values give equal strings. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    // undefined/functions/symbols are not JSON: refuse rather than drop them silently.
    if (s === undefined) throw new TypeError(`context value is not JSON: ${String(value)}`);
    return s;
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** The canonical encoding itself (exported for tests; hashing it gives the key). */
export function canonicalDecisionInput(storeId: string, modelId: string, req: CheckRequest): string {
  let s = `k1${field('s', storeId)}${field('m', modelId)}${field('u', req.user)}${field('r', req.relation)}${field('o', req.object)}`;
  const tuples = req.contextualTuples;
  s += `n${tuples.length}:`;
  if (tuples.length === 1) s += tupleField(tuples[0]!);
  else if (tuples.length > 1) s += tuples.map(tupleField).sort().join('');
  s += req.context === undefined ? 'c-' : field('c', canonicalJson(req.context));
  return s;
}

/**
 * The cache key, or undefined when the input cannot be keyed safely: strings with
 * lone surrogates lose information in UTF-8 (two ids could hash alike), so such
 * checks go to the engine uncached.
 */
export function decisionKey(storeId: string, modelId: string, req: CheckRequest): string | undefined {
  const input = canonicalDecisionInput(storeId, modelId, req);
  if (!(input as unknown as WellFormed).isWellFormed()) return undefined;
  return hash('sha256', input, 'base64url');
}
