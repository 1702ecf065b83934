// Tests of the .fga.yaml runner itself: a wrong expectation is reported exactly
// (and fails the model suite's rule), refused checks are errors rather than
// `false`, list_objects differences are spelled out, and malformed files name
// the file and the field.
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { loadModelTestFile, ModelTestFileError, parseModelTestFile } from '../../src/fga/model-test-file.js';
import { openModelTestStore, runModelTestFile } from '../../src/fga/model-test-runner.js';
import { assertCasePassed, discoverModelTestFiles, MODEL_TESTS_DIR } from './model-suite.js';

const WRONG_FIXTURE = join(MODEL_TESTS_DIR, 'fixtures', 'wrong-expectation.fga.yaml');
const WRONG_TEST = 'tenant user on an agent, one expectation wrong';

const TINY_MODEL = `
  model
    schema 1.1
  type user
  type doc
    relations
      define viewer: [user]
`;

function inlineFile(body: string) {
  const text = `name: inline\nmodel: |${TINY_MODEL.replace(/\n/g, '\n  ')}\n${body}`;
  return parseModelTestFile(text, join(MODEL_TESTS_DIR, 'fixtures', 'inline.fga.yaml'));
}

describe('a deliberately wrong expectation', () => {
  it('is reported exactly: test, user, relation, object, expected and got', async () => {
    const result = await runModelTestFile(loadModelTestFile(WRONG_FIXTURE), inject('openfgaUrl'), { apiToken: inject('openfgaToken') });

    expect(result.failures).toEqual([
      { kind: 'check', test: WRONG_TEST, user: 'user:uma', relation: 'can_write', object: 'agent:t-a/2000', expected: true, got: false },
    ]);
    expect(result.tests.map(({ test, checks, listObjects, failures }) => ({ test, checks, listObjects, failed: failures.length }))).toEqual([
      { test: WRONG_TEST, checks: 3, listObjects: 1, failed: 1 },
      { test: 'same store, every expectation right', checks: 1, listObjects: 0, failed: 0 },
    ]);

    // The model suite judges each case with assertCasePassed: this case would fail it.
    const [wrong, right] = result.tests;
    expect(() => assertCasePassed(wrong!)).toThrow(
      `1 wrong expectation(s) in "${WRONG_TEST}":\n[${WRONG_TEST}] check user:uma can_write agent:t-a/2000: expected true, got false`,
    );
    expect(() => assertCasePassed(right!)).not.toThrow();
  });

  it('sits outside the model suite glob, which finds the real files', () => {
    const found = discoverModelTestFiles();
    expect(found).not.toContain(WRONG_FIXTURE);
    expect(found).toContain(join(MODEL_TESTS_DIR, 'tenant-user.fga.yaml'));
  });
});

describe('runner semantics', () => {
  it('reports a check OpenFGA refuses as an error, never as false', async () => {
    const file = inlineFile(`
tests:
  - name: typo in a relation
    check:
      - user: user:anne
        object: doc:1
        assertions: { viewr: false, viewer: false }
`);
    const result = await runModelTestFile(file, inject('openfgaUrl'), { apiToken: inject('openfgaToken') });
    expect(result.failures).toHaveLength(1);
    expect(result.failures[0]).toMatchObject({ kind: 'check', relation: 'viewr', expected: false, got: 'error' });
    expect(result.failures[0]?.error).toMatch(/viewr/);
  });

  it('spells out missing and unexpected objects of a list_objects assertion', async () => {
    const file = inlineFile(`
tuples:
  - { user: user:anne, relation: viewer, object: doc:1 }
  - { user: user:anne, relation: viewer, object: doc:2 }
tests:
  - name: lists
    list_objects:
      - user: user:anne
        type: doc
        assertions: { viewer: [doc:3, doc:1] }
`);
    const result = await runModelTestFile(file, inject('openfgaUrl'), { apiToken: inject('openfgaToken') });
    expect(result.failures).toEqual([
      {
        kind: 'list_objects',
        test: 'lists',
        user: 'user:anne',
        relation: 'viewer',
        type: 'doc',
        expected: ['doc:1', 'doc:3'],
        got: ['doc:1', 'doc:2'],
        missing: ['doc:3'],
        unexpected: ['doc:2'],
      },
    ]);
  });

  it('gives each test only the file tuples plus its own, and removes its own afterwards', async () => {
    const file = inlineFile(`
tuples:
  - { user: user:anne, relation: viewer, object: doc:1 }
tests:
  - name: with a grant
    tuples:
      - { user: user:bob, relation: viewer, object: doc:1 }
      - { user: user:anne, relation: viewer, object: doc:1 }
    check:
      - { users: [user:anne, user:bob], object: doc:1, assertions: { viewer: true } }
  - name: without it
    check:
      - { user: user:anne, object: doc:1, assertions: { viewer: true } }
      - { user: user:bob, object: doc:1, assertions: { viewer: false } }
`);
    const store = await openModelTestStore(file, inject('openfgaUrl'), { apiToken: inject('openfgaToken') });
    try {
      const first = await store.runTest(file.tests[0]!);
      const second = await store.runTest(file.tests[1]!);
      expect([first.failures, second.failures]).toEqual([[], []]);
      expect([first.checks, second.checks]).toEqual([2, 2]);
    } finally {
      await store.close();
    }
  });
});

describe('malformed files', () => {
  const path = join(MODEL_TESTS_DIR, 'fixtures', 'broken.fga.yaml');
  const parse = (text: string) => () => parseModelTestFile(text, path);

  it('names the file and the field of a wrongly typed assertion', () => {
    const text = `name: x\nmodel_file: ../../../model.fga\ntests:\n  - name: t\n    check:\n      - { user: user:a, object: tenant:t, assertions: { can_view: "yes" } }\n`;
    expect(parse(text)).toThrow(ModelTestFileError);
    expect(parse(text)).toThrow(`${path}: invalid model test file:\n  - tests[0].check[0].assertions.can_view:`);
  });

  it('refuses keys it would otherwise ignore, such as list_users', () => {
    const text = `name: x\nmodel_file: ../../../model.fga\ntests:\n  - name: t\n    list_users:\n      - object: tenant:t\n`;
    expect(parse(text)).toThrow(/tests\[0\]: .*list_users/);
  });

  it('requires exactly one of model_file and model', () => {
    const text = `name: x\ntests:\n  - name: t\n    check:\n      - { user: user:a, object: tenant:t, assertions: { can_view: true } }\n`;
    expect(parse(text)).toThrow('model_file: give exactly one of model_file or model');
  });

  it('refuses a test that asserts nothing, and duplicate test names', () => {
    const text = `name: x\nmodel_file: ../../../model.fga\ntests:\n  - name: t\n  - name: t\n    check:\n      - { user: user:a, object: tenant:t, assertions: { can_view: true } }\n`;
    expect(parse(text)).toThrow('tests[0].check: a test needs at least one check or list_objects');
    expect(parse(text)).toThrow('tests[1].name: duplicate test name "t"');
  });

  it('reports YAML syntax errors with the file name', () => {
    expect(parse('name: [unclosed\n')).toThrow(`${path}: not valid YAML`);
  });

  it('names a model_file that cannot be read, before contacting OpenFGA', async () => {
    const file = parseModelTestFile(
      `name: x\nmodel_file: ./missing.fga\ntests:\n  - name: t\n    check:\n      - { user: user:a, object: tenant:t, assertions: { can_view: true } }\n`,
      path,
    );
    await expect(openModelTestStore(file, 'http://127.0.0.1:9')).rejects.toThrow(
      `${path}: model_file (${join(MODEL_TESTS_DIR, 'fixtures', 'missing.fga')}): ENOENT`,
    );
  });
});
