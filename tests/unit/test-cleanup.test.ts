// The test harness's cleanup: nothing is started in a file that did not register the
// end-of-file hook, and what was started is gone once the file ends.
import { existsSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { tempDir, useCleanup } from '../support/cleanup.js';

const made: string[] = [];
// Registered before useCleanup(), so it runs after the cleanup hook (after-hooks run last registered first).
afterAll(() => {
  expect(made.length).toBe(1);
  expect(made.filter((dir) => existsSync(dir))).toEqual([]);
});

let refusal: unknown;
try {
  made.push(tempDir());
} catch (err) {
  refusal = err;
}
useCleanup();

it('refuses to start anything before useCleanup() registered the end-of-file hook', () => {
  expect(refusal).toBeInstanceOf(Error);
  expect((refusal as Error).message).toContain('useCleanup()');
});

it('keeps what it started until the end of the file', () => {
  made.push(tempDir());
  expect(existsSync(made[0]!)).toBe(true);
});
