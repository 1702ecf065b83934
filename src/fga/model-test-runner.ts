// Runs `.fga.yaml` model tests against a real OpenFGA server through the SDK
// (the `fga` CLI is not available to us): one fresh store per file holding the
// model and the file-level tuples; each test adds its own tuples, runs its
// checks (batchCheck) and list_objects, then removes exactly those tuples, so
// tests see only file tuples + their own, as `fga model test` does.
import { randomUUID } from 'node:crypto';
import {
  ClientWriteRequestOnDuplicateWrites,
  ClientWriteRequestOnMissingDeletes,
  ConsistencyPreference,
  type ClientBatchCheckItem,
  type OpenFgaClient,
  type TupleKey,
} from '@openfga/sdk';
import { createFgaClient } from './client.js';
import { loadModel, parseModel, type LoadedModel } from './model.js';
import { ModelTestFileError, type ModelTestCase, type ModelTestFile, type ModelTestTuple } from './model-test-file.js';

export interface CheckFailure {
  kind: 'check';
  test: string;
  user: string;
  relation: string;
  object: string;
  expected: boolean;
  /** `error` when OpenFGA refused the check (e.g. an unknown relation); never counted as false. */
  got: boolean | 'error';
  error?: string;
}

export interface ListObjectsFailure {
  kind: 'list_objects';
  test: string;
  user: string;
  relation: string;
  type: string;
  expected: string[];
  got: string[] | 'error';
  missing: string[];
  unexpected: string[];
  error?: string;
}

export type ExpectationFailure = CheckFailure | ListObjectsFailure;

export interface ModelTestCaseResult {
  test: string;
  /** Number of check expectations evaluated (users x relations). */
  checks: number;
  listObjects: number;
  failures: ExpectationFailure[];
}

export interface ModelTestFileResult {
  file: string;
  name: string;
  tests: ModelTestCaseResult[];
  failures: ExpectationFailure[];
}

export interface ModelTestStore {
  readonly storeId: string;
  readonly authorizationModelId: string;
  runTest(test: ModelTestCase): Promise<ModelTestCaseResult>;
  /** Deletes the store. */
  close(): Promise<void>;
}

export interface ModelTestRunnerOptions {
  timeoutMs?: number;
  /** OpenFGA's preshared key, when it requires one. */
  apiToken?: string | undefined;
}

// OpenFGA's defaults: 100 tuples per write, 50 checks per batch check.
const MAX_TUPLES_PER_WRITE = 100;
const MAX_CHECKS_PER_BATCH = 50;
// Checks must see the tuples just written and never an answer cached before a delete.
const CONSISTENCY = ConsistencyPreference.HigherConsistency;

function loadFileModel(file: ModelTestFile): LoadedModel {
  try {
    return file.model.kind === 'file' ? loadModel(file.model.path) : parseModel(file.model.dsl);
  } catch (err) {
    const field = file.model.kind === 'file' ? `model_file (${file.model.path})` : 'model';
    throw new ModelTestFileError(`${file.path}: ${field}: ${(err as Error).message}`);
  }
}

const tupleKey = (t: ModelTestTuple) => `${t.object}#${t.relation}@${t.user}`;

function toTupleKey(t: ModelTestTuple): TupleKey {
  return t.condition ? { user: t.user, relation: t.relation, object: t.object, condition: t.condition } : { user: t.user, relation: t.relation, object: t.object };
}

async function writeInChunks(client: OpenFgaClient, modelId: string, tuples: ModelTestTuple[], op: 'write' | 'delete'): Promise<void> {
  for (let i = 0; i < tuples.length; i += MAX_TUPLES_PER_WRITE) {
    const chunk = tuples.slice(i, i + MAX_TUPLES_PER_WRITE);
    if (op === 'write') {
      await client.write(
        { writes: chunk.map(toTupleKey) },
        { authorizationModelId: modelId, conflict: { onDuplicateWrites: ClientWriteRequestOnDuplicateWrites.Error } },
      );
    } else {
      // Ignore missing: cleanup also runs after a write that failed part-way.
      await client.write(
        { deletes: chunk.map(({ user, relation, object }) => ({ user, relation, object })) },
        { authorizationModelId: modelId, conflict: { onMissingDeletes: ClientWriteRequestOnMissingDeletes.Ignore } },
      );
    }
  }
}

/** The test's own tuples: those not already written at file level (same key and condition). */
function ownTuples(file: ModelTestFile, test: ModelTestCase): ModelTestTuple[] {
  const fileLevel = new Map(file.tuples.map((t) => [tupleKey(t), t]));
  return test.tuples.filter((t) => {
    const same = fileLevel.get(tupleKey(t));
    if (!same) return true;
    if (JSON.stringify(same.condition) !== JSON.stringify(t.condition)) {
      throw new ModelTestFileError(`${file.path}: test "${test.name}": tuple ${tupleKey(t)} repeats a file-level tuple with another condition`);
    }
    return false;
  });
}

function errorText(err: unknown): string {
  const e = err as { apiErrorMessage?: string; message?: string };
  return e.apiErrorMessage ?? e.message ?? String(err);
}

async function runChecks(client: OpenFgaClient, modelId: string, test: ModelTestCase): Promise<{ count: number; failures: CheckFailure[] }> {
  const items: (ClientBatchCheckItem & { expected: boolean })[] = [];
  for (const entry of test.check) {
    const contextualTuples = entry.contextual_tuples ? { tuple_keys: entry.contextual_tuples.map(toTupleKey) } : undefined;
    for (const user of entry.users ?? [entry.user as string]) {
      for (const [relation, expected] of Object.entries(entry.assertions)) {
        items.push({
          user,
          relation,
          object: entry.object,
          correlationId: `c${items.length}`,
          expected,
          ...(contextualTuples ? { contextualTuples } : {}),
          ...(entry.context ? { context: entry.context } : {}),
        });
      }
    }
  }
  if (items.length === 0) return { count: 0, failures: [] };
  const response = await client.batchCheck(
    { checks: items.map(({ expected: _expected, ...check }) => check) },
    { authorizationModelId: modelId, consistency: CONSISTENCY, maxBatchSize: MAX_CHECKS_PER_BATCH, maxParallelRequests: 2 },
  );
  const answers = new Map(response.result.map((r) => [r.correlationId, r]));
  const failures: CheckFailure[] = [];
  for (const item of items) {
    const base = { kind: 'check' as const, test: test.name, user: item.user, relation: item.relation, object: item.object, expected: item.expected };
    const answer = answers.get(item.correlationId as string);
    if (!answer) failures.push({ ...base, got: 'error', error: 'OpenFGA returned no answer for this check' });
    else if (answer.error) failures.push({ ...base, got: 'error', error: answer.error.message ?? JSON.stringify(answer.error) });
    else if (answer.allowed !== item.expected) failures.push({ ...base, got: answer.allowed });
  }
  return { count: items.length, failures };
}

async function runListObjects(client: OpenFgaClient, modelId: string, test: ModelTestCase): Promise<{ count: number; failures: ListObjectsFailure[] }> {
  const failures: ListObjectsFailure[] = [];
  let count = 0;
  for (const entry of test.list_objects) {
    const contextualTuples = entry.contextual_tuples?.map(toTupleKey);
    for (const [relation, expectedList] of Object.entries(entry.assertions)) {
      count++;
      const expected = [...new Set(expectedList)].sort();
      const base = { kind: 'list_objects' as const, test: test.name, user: entry.user, relation, type: entry.type, expected };
      let got: string[];
      try {
        const res = await client.listObjects(
          { user: entry.user, relation, type: entry.type, ...(contextualTuples ? { contextualTuples } : {}), ...(entry.context ? { context: entry.context } : {}) },
          { authorizationModelId: modelId, consistency: CONSISTENCY },
        );
        got = [...res.objects].sort();
      } catch (err) {
        failures.push({ ...base, got: 'error', missing: expected, unexpected: [], error: errorText(err) });
        continue;
      }
      const missing = expected.filter((o) => !got.includes(o));
      const unexpected = got.filter((o) => !expected.includes(o));
      if (missing.length > 0 || unexpected.length > 0) failures.push({ ...base, got, missing, unexpected });
    }
  }
  return { count, failures };
}

/** Creates the file's store, writes its model and file-level tuples. */
export async function openModelTestStore(file: ModelTestFile, apiUrl: string, opts: ModelTestRunnerOptions = {}): Promise<ModelTestStore> {
  const model = loadFileModel(file);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const admin = createFgaClient({ apiUrl, timeoutMs, maxRetry: 2, apiToken: opts.apiToken });
  const storeId = (await admin.createStore({ name: `model-test-${randomUUID()}` })).id;
  const client = createFgaClient({ apiUrl, storeId, timeoutMs, maxRetry: 2, apiToken: opts.apiToken });
  let modelId: string;
  try {
    modelId = (await client.writeAuthorizationModel(model.request)).authorization_model_id;
    await writeInChunks(client, modelId, file.tuples, 'write');
  } catch (err) {
    await client.deleteStore();
    throw new Error(`${file.path}: cannot set up the store: ${errorText(err)}`, { cause: err });
  }
  const authorizationModelId = modelId;

  return {
    storeId,
    authorizationModelId,
    async runTest(test) {
      const own = ownTuples(file, test);
      try {
        try {
          await writeInChunks(client, authorizationModelId, own, 'write');
        } catch (err) {
          throw new Error(`${file.path}: test "${test.name}": cannot write its tuples: ${errorText(err)}`, { cause: err });
        }
        try {
          const [checks, lists] = await Promise.all([runChecks(client, authorizationModelId, test), runListObjects(client, authorizationModelId, test)]);
          return { test: test.name, checks: checks.count, listObjects: lists.count, failures: [...checks.failures, ...lists.failures] };
        } catch (err) {
          throw new Error(`${file.path}: test "${test.name}": OpenFGA refused a request: ${errorText(err)}`, { cause: err });
        }
      } finally {
        // The next test must not see this test's tuples.
        await writeInChunks(client, authorizationModelId, own, 'delete');
      }
    },
    async close() {
      await client.deleteStore();
    },
  };
}

/** Runs every test of a parsed .fga.yaml file in a fresh store and lists each wrong expectation. */
export async function runModelTestFile(file: ModelTestFile, apiUrl: string, opts: ModelTestRunnerOptions = {}): Promise<ModelTestFileResult> {
  const store = await openModelTestStore(file, apiUrl, opts);
  try {
    const tests: ModelTestCaseResult[] = [];
    for (const test of file.tests) tests.push(await store.runTest(test));
    return { file: file.path, name: file.name, tests, failures: tests.flatMap((t) => t.failures) };
  } finally {
    await store.close();
  }
}

/** One line per wrong expectation, readable in a test failure. */
export function formatFailure(f: ExpectationFailure): string {
  const error = f.error ? ` (${f.error})` : '';
  if (f.kind === 'check') {
    return `[${f.test}] check ${f.user} ${f.relation} ${f.object}: expected ${f.expected}, got ${f.got}${error}`;
  }
  const got = f.got === 'error' ? 'error' : `[${f.got.join(', ')}]`;
  const diff = f.got === 'error' ? '' : ` (missing: [${f.missing.join(', ')}], unexpected: [${f.unexpected.join(', ')}])`;
  return `[${f.test}] list_objects ${f.user} ${f.relation} ${f.type}: expected [${f.expected.join(', ')}], got ${got}${diff}${error}`;
}

export function formatFailures(failures: readonly ExpectationFailure[]): string {
  return failures.map(formatFailure).join('\n');
}
