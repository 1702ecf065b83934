import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findPackageRoot, REPO_ROOT } from '../../src/shared/repo-root.js';

const scratch = mkdtempSync(join(tmpdir(), 'tiergate-root-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the package root (where model.fga, policy/ and demo/ are read from)', () => {
  it('is this checkout, from src/ as the tests run it', () => {
    expect(REPO_ROOT).toBe(join(import.meta.dirname, '../..'));
  });

  it("is the nearest folder above whose package.json is tiergate's, however deep the code sits", () => {
    const app = join(scratch, 'app');
    mkdirSync(join(app, 'build', 'out', 'stack'), { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'tiergate' }));
    // A package.json of another package on the way up (a nested workspace) is passed over.
    writeFileSync(join(app, 'build', 'package.json'), JSON.stringify({ name: 'other', type: 'module' }));
    expect(findPackageRoot(join(app, 'build', 'out', 'stack'))).toBe(app);
  });

  it('fails with the folder it started from when there is none', () => {
    const lost = join(scratch, 'lost', 'dist');
    mkdirSync(lost, { recursive: true });
    expect(() => findPackageRoot(lost)).toThrow(`no package.json of tiergate at or above ${lost}`);
  });
});
