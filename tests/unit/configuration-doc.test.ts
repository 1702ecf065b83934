// The configuration table (docs/configuration.md) is documentation users act on: it
// must list exactly the settings the zod schema reads, with the same defaults.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configSchema, loadConfig } from '../../src/config.js';

const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
const section = doc.slice(doc.indexOf('## Settings'), doc.indexOf('## The one runtime flag'));
const rows = [...section.matchAll(/^\| `([A-Z0-9_]+)` \| ([^|]*) \|/gm)].map((m) => ({ name: m[1]!, def: m[2]!.trim() }));

describe('the configuration table of docs/configuration.md', () => {
  it('lists every setting of the schema, and nothing else', () => {
    expect(rows.map((r) => r.name).sort()).toEqual(Object.keys(configSchema.shape).sort());
  });

  it('states each default as the schema applies it', () => {
    const defaults = loadConfig({}) as Record<string, unknown>;
    for (const { name, def } of rows) {
      const actual = defaults[name];
      const shown = Array.isArray(actual) ? (actual.length === 0 ? '—' : actual.join(',')) : actual === undefined ? '—' : `\`${String(actual)}\``;
      expect(`${name} ${def}`).toBe(`${name} ${shown}`);
    }
  });
});
