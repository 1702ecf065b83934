// `npm run bench -- --perf`: a Node perf map keeps entries for code the GC has collected;
// keepLiveEntries drops every entry a later one overlaps, so samples get living names.
import { describe, expect, it } from 'vitest';
import { keepLiveEntries } from '../../load/lib/perf-map.js';

const entry = (start: number, size: number, name: string) => `${start.toString(16)} ${size.toString(16)} ${name}`;

describe('keepLiveEntries', () => {
  it('drops an entry whose range later code reused, and keeps the rest in their order', () => {
    const map = [
      entry(0x1000, 0x400, 'JS:*parseSource node:internal/deps/cjs-module-lexer/lexer:85'),
      entry(0x2000, 0x100, 'JS:^start file:///app/main.js:1:1'),
      entry(0x1100, 0x80, 'JS:*forward file:///app/src/gateway/forward.ts:10:3'),
      entry(0x3000, 0x10, 'Builtin:ArrayPush'),
    ].join('\n');
    expect(keepLiveEntries(`${map}\n`).split('\n').filter(Boolean)).toEqual([
      entry(0x2000, 0x100, 'JS:^start file:///app/main.js:1:1'),
      entry(0x1100, 0x80, 'JS:*forward file:///app/src/gateway/forward.ts:10:3'),
      entry(0x3000, 0x10, 'Builtin:ArrayPush'),
    ]);
  });

  it('drops an entry overlapped only by a later entry that is itself dead', () => {
    const map = [entry(0x0, 0x100, 'A'), entry(0x80, 0x100, 'B'), entry(0x150, 0x100, 'C')].join('\n');
    // B reused A's space and C reused B's: only C is known to live.
    expect(keepLiveEntries(map).trim()).toBe(entry(0x150, 0x100, 'C'));
  });

  it('keeps code at the same address only under its latest name, and ranges that merely touch', () => {
    const map = [entry(0x500, 0x20, 'old'), entry(0x520, 0x20, 'next door'), entry(0x500, 0x20, 'new')].join('\n');
    expect(keepLiveEntries(map).split('\n').filter(Boolean)).toEqual([entry(0x520, 0x20, 'next door'), entry(0x500, 0x20, 'new')]);
  });

  it('ignores lines that are not entries, and empty code', () => {
    expect(keepLiveEntries(`garbage\n${entry(0x10, 0, 'empty')}\n${entry(0x20, 0x8, 'x')}\n`)).toBe(`${entry(0x20, 0x8, 'x')}\n`);
  });
});
