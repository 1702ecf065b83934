// The repository's root, the folder holding tiergate's package.json: model.fga, policy/, demo/ and tools/
// sit beside it. Found by walking up from this module, so the answer is the same
// whether the code runs from src/ (tsx) or compiled from dist/ (node).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'tiergate';

/** The nearest folder at or above `from` whose package.json names tiergate. */
export function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json of ${PACKAGE_NAME} at or above ${from}`);
  }
}

export const REPO_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));
