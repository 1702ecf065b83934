// The folder layout's one rule, read from the import statements of src/: a lower folder
// never imports a higher one. From the bottom: shared/, authz/ and config.ts (what every
// part shares) → db/ → fga/ (OpenFGA clients) and settings/ (registry, documents, effective
// values) → decisions/ (the cache in front of OpenFGA)
// → gateway/ (the stages) and admin/ (the admin API) → server/ and cli/ (process wiring:
// anything). The tenant service and stack/ stand beside, on shared/, db/ and config.ts.
// Also: no `as never` in src/ (it hides a type that does not fit).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = 'src';
const BASE = ['shared', 'authz', 'config.ts'];

/** Which parts of src/ each part may import (its own folder always). `*` = anything. */
const ALLOWED: Record<string, readonly string[] | '*'> = {
  shared: ['shared'],
  authz: ['shared'],
  'config.ts': ['shared'],
  db: [...BASE],
  fga: [...BASE, 'db'],
  settings: [...BASE, 'db'],
  decisions: [...BASE, 'db', 'fga'],
  gateway: [...BASE, 'db', 'fga', 'decisions', 'settings'],
  admin: [...BASE, 'db', 'fga', 'decisions', 'settings'],
  'tenant-service': [...BASE, 'db'],
  stack: [...BASE],
  server: '*',
  cli: '*',
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** `src/gateway/app.ts` → `gateway`; `src/config.ts` → `config.ts`. */
function partOf(file: string): string {
  return relative(SRC, file).split(/[\\/]/)[0]!.replace(/\.js$/, '.ts');
}

/** Relative specifiers of every import/export … from, and import(), in a source text. */
function relativeImports(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s*)['"](\.{1,2}\/[^'"]+)['"]/gm)) out.push(m[1]!);
  return out;
}

function upwardImports(files: ReadonlyArray<{ file: string; text: string }>): string[] {
  const found: string[] = [];
  for (const { file, text } of files) {
    const from = partOf(file);
    const allowed = ALLOWED[from];
    if (allowed === undefined) {
      found.push(`${file}: src/${from} has no place in the layout (add it to ALLOWED)`);
      continue;
    }
    if (allowed === '*') continue;
    for (const spec of relativeImports(text)) {
      const target = posix.normalize(posix.join(dirname(file).split(/[\\/]/).join('/'), spec));
      if (!target.startsWith(`${SRC}/`)) continue;
      const to = partOf(target);
      if (to !== from && !allowed.includes(to)) found.push(`${file} imports ${spec} (src/${from} may not import src/${to})`);
    }
  }
  return found;
}

const files = sourceFiles(SRC).map((file) => ({ file, text: readFileSync(file, 'utf8') }));

describe('src/ layout', () => {
  it('has no import from a lower folder into a higher one', () => {
    expect(upwardImports(files)).toEqual([]);
  });

  it('has no `as never`', () => {
    expect(files.filter((f) => /\bas never\b/.test(f.text)).map((f) => f.file)).toEqual([]);
  });

  it('finds an upward import and a folder that has no place', () => {
    expect(
      upwardImports([
        { file: 'src/fga/authorizer.ts', text: "import type { GatewayEnv } from '../gateway/types.js';" },
        { file: 'src/decisions/x.ts', text: "export { a } from '../shared/a.js';\nconst m = await import('../server/gateway-server.js');" },
        { file: 'src/gateway/app.ts', text: "import {\n  x,\n} from '../admin/app.js';\nimport { y } from './types.js';" },
        { file: 'src/newpart/a.ts', text: '' },
      ]),
    ).toEqual([
      'src/fga/authorizer.ts imports ../gateway/types.js (src/fga may not import src/gateway)',
      'src/decisions/x.ts imports ../server/gateway-server.js (src/decisions may not import src/server)',
      'src/gateway/app.ts imports ../admin/app.js (src/gateway may not import src/admin)',
      'src/newpart/a.ts: src/newpart has no place in the layout (add it to ALLOWED)',
    ]);
  });
});
