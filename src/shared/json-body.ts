// The one way a JSON request body is read, by the tenant service and the admin API:
// strict UTF-8, strict JSON, and every string (values and field names) well-formed
// Unicode. JSON.parse accepts an escaped lone surrogate (`"\ud800"`), which PostgreSQL
// refuses to store in jsonb or text (the write failed as a 500), and a lenient UTF-8
// decoder turns invalid bytes into U+FFFD, silently storing something the client did
// not send. Both are the client's fault, so both are a 400 before anything is written.

declare global {
  interface String {
    /** ES2024, in Node since 20; the project's `lib` (ES2022) does not declare it. */
    isWellFormed(): boolean;
  }
}

/** Where in the body, as segments: `['name']`, `['writes', 3, 'relation']`; `[]` is the body itself. */
export type JsonPath = (string | number)[];

export type JsonBodyResult =
  | { ok: true; value: unknown; text: string }
  | {
      ok: false;
      /** What is wrong, for the problem's `detail`. */
      detail: string;
      /** The string that is not well-formed, when that is the fault. */
      at?: { path: JsonPath; reason: string };
    };

// fatal: invalid UTF-8 (including encoded surrogates, ED A0 80) throws instead of
// becoming U+FFFD. A leading byte order mark is dropped, as JSON parsers may (RFC 8259 §8.1).
const UTF8 = new TextDecoder('utf-8', { fatal: true });

// After a fatal decode a lone surrogate can only come from a \uD800-\uDFFF escape, so a
// body without one (nearly all) is not walked.
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

export const NOT_WELL_FORMED = 'is not a well-formed Unicode string: it holds a lone UTF-16 surrogate';
export const KEY_NOT_WELL_FORMED = 'has a field name that is not a well-formed Unicode string: it holds a lone UTF-16 surrogate';

export function parseJsonBody(bytes: Uint8Array): JsonBodyResult {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return { ok: false, detail: 'the body is not valid UTF-8' };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // V8 names the position; the rest of its message may quote the body, so it is not echoed.
    const at = /at position (\d+)/.exec(err instanceof Error ? err.message : '');
    return { ok: false, detail: at ? `the body is not valid JSON (at character ${at[1]})` : 'the body is not valid JSON' };
  }
  if (SURROGATE_ESCAPE.test(text)) {
    const bad = firstIllFormed(value);
    if (bad !== undefined) return { ok: false, detail: 'the body holds a string that is not well-formed Unicode', at: bad };
  }
  return { ok: true, value, text };
}

/** A value met while walking, linked to its parent: the path is built only for a fault. */
interface Visit {
  value: unknown;
  key: string | number;
  parent: Visit | undefined;
}

function pathOf(v: Visit | undefined): JsonPath {
  const path: JsonPath = [];
  for (let at = v; at?.parent !== undefined; at = at.parent) path.push(at.key);
  return path.reverse();
}

/**
 * The first string (or field name) that is not well-formed, depth first. Iterative, so
 * no nesting depth overflows the stack, and linear in the body's size.
 */
function firstIllFormed(root: unknown): { path: JsonPath; reason: string } | undefined {
  const stack: Visit[] = [{ value: root, key: '', parent: undefined }];
  while (stack.length > 0) {
    const visit = stack.pop()!;
    const { value } = visit;
    if (typeof value === 'string') {
      if (!value.isWellFormed()) return { path: pathOf(visit), reason: NOT_WELL_FORMED };
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], key: i, parent: visit });
    } else if (value !== null && typeof value === 'object') {
      const keys = Object.keys(value);
      for (const key of keys) if (!key.isWellFormed()) return { path: pathOf(visit), reason: KEY_NOT_WELL_FORMED };
      for (let i = keys.length - 1; i >= 0; i--) stack.push({ value: (value as Record<string, unknown>)[keys[i]!], key: keys[i]!, parent: visit });
    }
  }
  return undefined;
}

/** `body.skills.0` (the tenant service's spelling of a location). */
export function dottedPath(where: string, path: JsonPath): string {
  return [where, ...path.map(String)].join('.');
}
