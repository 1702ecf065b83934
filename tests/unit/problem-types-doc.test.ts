// The problem-type table of docs/security.md is what clients code against: it must list
// exactly the slugs tiergate answers with, in the order of PROBLEM_SLUGS.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROBLEM_SLUGS } from '../../src/shared/problem.js';

const doc = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
const section = doc.slice(doc.indexOf('### Problem types'), doc.indexOf('## Lifecycle guarantees'));
const rows = [...section.matchAll(/^\| `([a-z-]+)` \| (\d{3}) \|/gm)].map((m) => m[1]!);

describe('the problem-type table of docs/security.md', () => {
  it('lists every slug of PROBLEM_SLUGS, in order, and nothing else', () => {
    expect(rows).toEqual([...PROBLEM_SLUGS]);
  });
});
