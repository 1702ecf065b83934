// The model suite: every test case of every tests/model/*.fga.yaml file runs as
// one vitest test against the run's real OpenFGA server (one store per file).
import { basename } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { MODEL_FILE, loadModel } from '../../src/fga/model.js';
import { loadModelTestFile, type ModelTestFile } from '../../src/fga/model-test-file.js';
import { openModelTestStore, type ModelTestStore } from '../../src/fga/model-test-runner.js';
import { assertCasePassed, discoverModelTestFiles } from './model-suite.js';

// Loaded while collecting: a malformed file fails the run before any test starts.
const files: ModelTestFile[] = discoverModelTestFiles().map(loadModelTestFile);

describe.each(files.map((f) => [basename(f.path), f] as const))('%s', (_name, file) => {
  let store: ModelTestStore | undefined;
  beforeAll(async () => {
    store = await openModelTestStore(file, inject('openfgaUrl'), { apiToken: inject('openfgaToken') });
  });
  afterAll(async () => {
    await store?.close();
  });

  it.each(file.tests.map((t) => [t.name, t] as const))('%s', async (_test, test) => {
    if (!store) throw new Error('the store for this file was not set up');
    assertCasePassed(await store.runTest(test));
  });
});

describe('model suite coverage', () => {
  it('runs the expected files, all against model.fga', () => {
    expect(files.map((f) => basename(f.path))).toEqual(
      expect.arrayContaining([
        'platform-admin.fga.yaml',
        'organization-admin.fga.yaml',
        'division-admin.fga.yaml',
        'tenant-admin.fga.yaml',
        'tenant-user.fga.yaml',
        'cross-organization.fga.yaml',
        'revocation.fga.yaml',
        'delegation.fga.yaml',
        'authzen-client.fga.yaml',
      ]),
    );
    for (const f of files) expect(f.model, f.path).toEqual({ kind: 'file', path: MODEL_FILE });
  });

  it('asserts every can_* permission of the model both granted and denied', () => {
    const permissions = loadModel().request.type_definitions.flatMap((td) =>
      Object.keys(td.relations ?? {})
        .filter((r) => r.startsWith('can_'))
        .map((r) => `${td.type}#${r}`),
    );
    const asserted = new Set<string>();
    for (const file of files) {
      for (const test of file.tests) {
        for (const check of test.check) {
          const type = check.object.slice(0, check.object.indexOf(':'));
          for (const [relation, expected] of Object.entries(check.assertions)) asserted.add(`${type}#${relation} ${expected}`);
        }
      }
    }
    const unasserted = permissions.flatMap((p) => [`${p} true`, `${p} false`].filter((a) => !asserted.has(a)));
    expect(unasserted).toEqual([]);
  });
});
