// PolicyHolder (src/server/policy-holder.ts) on real files, and the gateway's snapshot
// built on it (src/server/active-policy.ts): swaps, refusals, Kubernetes ConfigMap
// `..data` swaps, reloads that overlap, and upstream targets kept across reloads.
import { mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { UpstreamRoutes } from '../../src/gateway/forward.js';
import { openPolicy } from '../../src/server/active-policy.js';
import { PolicyHolder, policyVersion, type ReloadOutcome } from '../../src/server/policy-holder.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { tempDir, useCleanup } from '../support/cleanup.js';
import { waitFor } from '../support/wait.js';

useCleanup();

/** A "policy" that is its text, refused when it says so. */
const build = (text: string, file: string) => {
  if (text.includes('bad')) throw new Error(`${file}:1:1: bad policy`);
  return text;
};
const open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const h of open.splice(0)) h.close();
});
async function holderOn(file: string, watch: boolean): Promise<PolicyHolder<string>> {
  const h = await PolicyHolder.open({ file, build, watch, debounceMs: 20 });
  open.push(h);
  return h;
}

describe('PolicyHolder', () => {
  it('swaps on reload, keeps the old snapshot when the new file is refused, and reports unchanged content', async () => {
    const file = join(tempDir('tiergate-holder-'), 'p.yaml');
    writeFileSync(file, 'one');
    const h = await holderOn(file, false);
    const first = h.current();
    expect(first).toMatchObject({ version: policyVersion('one'), value: 'one' });

    expect((await h.reload('signal')).result).toBe('unchanged');
    writeFileSync(file, 'bad two');
    const refused = await h.reload('admin');
    expect(refused).toMatchObject({ result: 'refused', error: `${file}:1:1: bad policy`, trigger: 'admin' });
    expect(h.current()).toBe(first);
    expect(h.status().lastError).toMatchObject({ message: `${file}:1:1: bad policy`, trigger: 'admin' });

    writeFileSync(file, 'three');
    const seen: Array<ReloadOutcome<string>> = [];
    h.onChange((o) => seen.push(o));
    const applied = await h.reload('signal');
    expect(applied).toMatchObject({ result: 'applied', previous: first, snapshot: { version: policyVersion('three'), value: 'three' } });
    expect(h.status().lastError).toBeUndefined();
    expect(seen.map((o) => o.result)).toEqual(['applied']);
    // The snapshot a reader took before is untouched by the swap.
    expect(first.value).toBe('one');
  });

  it('a missing file is refused like a bad one', async () => {
    const file = join(tempDir('tiergate-holder-'), 'p.yaml');
    writeFileSync(file, 'one');
    const h = await holderOn(file, false);
    renameSync(file, `${file}.gone`);
    const o = await h.reload('signal');
    expect(o.result).toBe('refused');
    expect(o.result === 'refused' && o.error).toContain('ENOENT');
    expect(h.current().value).toBe('one');
  });

  it('a reload asked for while one runs runs once more after it, and reads the file as it is then', async () => {
    const file = join(tempDir('tiergate-holder-'), 'p.yaml');
    writeFileSync(file, 'one');
    const h = await holderOn(file, false);
    writeFileSync(file, 'two');
    const a = h.reload('signal');
    const b = h.reload('admin');
    const c = h.reload('admin');
    writeFileSync(file, 'three');
    expect(c).toBe(b);
    await a;
    expect((await b).snapshot.value).toBe('three');
    expect(h.current().value).toBe('three');
  });

  it('sees an editor\'s write-and-rename in the watched directory', async () => {
    const dir = tempDir('tiergate-holder-');
    const file = join(dir, 'p.yaml');
    writeFileSync(file, 'one');
    const h = await holderOn(file, true);
    writeFileSync(join(dir, '.p.yaml.swp'), 'two');
    renameSync(join(dir, '.p.yaml.swp'), file);
    expect(await waitFor(() => h.current().value === 'two', 10_000)).toBe(true);
  });

  it('sees a Kubernetes ConfigMap update: the `..data` symlink swapped to a new directory', async () => {
    // The layout the kubelet writes: p.yaml -> ..data/p.yaml, ..data -> ..<timestamp>/
    const dir = tempDir('tiergate-holder-');
    mkdirSync(join(dir, '..2026_01'));
    writeFileSync(join(dir, '..2026_01', 'p.yaml'), 'one');
    symlinkSync('..2026_01', join(dir, '..data'));
    symlinkSync(join('..data', 'p.yaml'), join(dir, 'p.yaml'));
    const h = await holderOn(join(dir, 'p.yaml'), true);
    expect(h.current().value).toBe('one');

    mkdirSync(join(dir, '..2026_02'));
    writeFileSync(join(dir, '..2026_02', 'p.yaml'), 'two');
    symlinkSync('..2026_02', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    expect(await waitFor(() => h.current().value === 'two', 10_000)).toBe(true);
  });
});

describe('the gateway policy snapshot (openPolicy)', () => {
  it('keeps the target object of an upstream that did not change and builds a new one for one that did', async () => {
    const file = join(tempDir('tiergate-holder-'), 'routes.yaml');
    const original = readFileSync(join(REPO_ROOT, 'policy/routes.yaml'), 'utf8');
    writeFileSync(file, original);
    const config = loadConfig({ POLICY_FILE: file, POLICY_WATCH: 'false' });
    const h = await openPolicy({ config, wired: { 'tenant-service': 'http://127.0.0.1:8090' }, routes: new UpstreamRoutes(), log: pino({ level: 'silent' }) });
    open.push(h);
    const before = h.current().value.upstreams;
    expect(before.get('reports')?.url).toBe('http://127.0.0.1:8091');

    writeFileSync(file, original.replace('url: http://127.0.0.1:8091', 'url: http://127.0.0.1:8092'));
    expect((await h.reload('signal')).result).toBe('applied');
    const after = h.current().value.upstreams;
    expect(after.get('reports')?.url).toBe('http://127.0.0.1:8092');
    expect(after.get('reports')).not.toBe(before.get('reports'));
    expect(after.get('tenant-service')).toBe(before.get('tenant-service'));
  });

  it('refuses a file start would refuse because of the configuration: UPSTREAM_URLS naming an upstream it no longer has', async () => {
    const file = join(tempDir('tiergate-holder-'), 'routes.yaml');
    const original = readFileSync(join(REPO_ROOT, 'policy/routes.yaml'), 'utf8');
    writeFileSync(file, original);
    const config = loadConfig({ POLICY_FILE: file, POLICY_WATCH: 'false', UPSTREAM_URLS: 'reports=http://127.0.0.1:9000' });
    const h = await openPolicy({ config, wired: { 'tenant-service': 'http://127.0.0.1:8090' }, routes: new UpstreamRoutes(), log: pino({ level: 'silent' }) });
    open.push(h);
    // Every reports rule goes to the tenant service, and the reports upstream is gone.
    const withoutReports = original.replace(/\n {2}# Reports:.*\n {2}reports:\n(?: {4}.*\n)+/, '\n').replace(/\n {4}upstream: reports/g, '');
    expect(withoutReports).not.toContain('reports:\n');
    writeFileSync(file, withoutReports);
    const o = await h.reload('signal');
    expect(o.result).toBe('refused');
    expect(o.result === 'refused' && o.error).toContain('UPSTREAM_URLS: "reports" not an upstream of');
    expect(h.current().value.upstreams.get('reports')?.url).toBe('http://127.0.0.1:9000');
  });
});
