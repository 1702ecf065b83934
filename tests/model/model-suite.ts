// What the model suite (model.test.ts) runs and how it judges a test case;
// shared with runner.test.ts so the wrong-expectation fixture is judged by
// exactly the same rule.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatFailures, type ModelTestCaseResult } from '../../src/fga/model-test-runner.js';

export const MODEL_TESTS_DIR = dirname(fileURLToPath(import.meta.url));

/** The suite's glob: `tests/model/*.fga.yaml`, not recursive (fixtures/ stays out). */
export function discoverModelTestFiles(): string[] {
  return readdirSync(MODEL_TESTS_DIR, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.fga.yaml'))
    .map((e) => join(MODEL_TESTS_DIR, e.name))
    .sort();
}

/** Throws, listing each wrong expectation, unless the test case passed. */
export function assertCasePassed(result: ModelTestCaseResult): void {
  if (result.failures.length > 0) {
    throw new Error(`${result.failures.length} wrong expectation(s) in "${result.test}":\n${formatFailures(result.failures)}`);
  }
}
