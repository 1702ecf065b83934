import { describe, expect, it } from 'vitest';
import { KEY_NOT_WELL_FORMED, NOT_WELL_FORMED, parseJsonBody } from '../../src/shared/json-body.js';

const bytes = (text: string) => new TextEncoder().encode(text);

describe('parseJsonBody', () => {
  it('parses valid UTF-8 JSON, surrogate pairs (escaped or raw) included', () => {
    expect(parseJsonBody(bytes('{"a":["x","\\ud83d\\ude00","\u{1F600}"],"b":{"c":1}}'))).toMatchObject({
      ok: true,
      value: { a: ['x', '\u{1F600}', '\u{1F600}'], b: { c: 1 } },
    });
  });

  it('drops a leading byte order mark, as JSON parsers may', () => {
    expect(parseJsonBody(new Uint8Array([0xef, 0xbb, 0xbf, ...bytes('{"a":1}')]))).toMatchObject({ ok: true, value: { a: 1 } });
  });

  it.each([
    ['a lone surrogate in a nested value', '{"a":[{"b":"ok"},{"b":"x\\uDBFF"}]}', ['a', 1, 'b'], NOT_WELL_FORMED],
    ['a lone surrogate as the whole body', '"\\ud800"', [], NOT_WELL_FORMED],
    ['a lone surrogate in a nested field name', '{"a":{"\\udc00":1}}', ['a'], KEY_NOT_WELL_FORMED],
    ['a high surrogate at the end of a string', '{"a":"x\\ud83d"}', ['a'], NOT_WELL_FORMED],
  ])('%s: says where', (_name, text, path, reason) => {
    expect(parseJsonBody(bytes(text))).toEqual({ ok: false, detail: 'the body holds a string that is not well-formed Unicode', at: { path, reason } });
  });

  it('an escaped backslash before "ud800" is not an escape: accepted', () => {
    expect(parseJsonBody(bytes('{"a":"\\\\ud800"}'))).toMatchObject({ ok: true, value: { a: '\\ud800' } });
  });

  it('invalid UTF-8 is refused, never replaced by U+FFFD', () => {
    for (const raw of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80]]) {
      const body = new Uint8Array([...bytes('{"a":"'), ...raw, ...bytes('"}')]);
      expect(parseJsonBody(body)).toEqual({ ok: false, detail: 'the body is not valid UTF-8' });
    }
  });

  it('invalid JSON names the position, not the content', () => {
    const r = parseJsonBody(bytes('{"secret":"s3cr3t",}'));
    expect(r).toEqual({ ok: false, detail: expect.stringMatching(/^the body is not valid JSON/) });
    expect(JSON.stringify(r)).not.toContain('s3cr3t');
  });

  it('walks a deeply nested body without overflowing the stack, in time linear in its size', () => {
    const depth = 100_000;
    const started = performance.now();
    const r = parseJsonBody(bytes(`${'['.repeat(depth)}"\\ud800"${']'.repeat(depth)}`));
    expect(r).toMatchObject({ ok: false, at: { reason: NOT_WELL_FORMED } });
    expect(!r.ok && r.at!.path).toEqual(new Array(depth).fill(0));
    // Copying the path at every level would make this quadratic in the depth: minutes, not milliseconds.
    expect(performance.now() - started).toBeLessThan(5000);
  });
});
