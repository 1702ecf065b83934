// The `.fga.yaml` store-file format (the subset `fga model test` reads that our
// model tests use), parsed with `yaml` and validated with zod. Unknown keys are
// refused rather than ignored: an assertion this runner would silently skip
// (say `list_users`) must not look like a passing test.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const nonEmpty = z.string().min(1);
const context = z.record(z.string(), z.unknown());

const tupleSchema = z
  .object({
    user: nonEmpty,
    relation: nonEmpty,
    object: nonEmpty,
    condition: z.object({ name: nonEmpty, context: context.optional() }).strict().optional(),
  })
  .strict();

const checkSchema = z
  .object({
    user: nonEmpty.optional(),
    users: z.array(nonEmpty).min(1).optional(),
    object: nonEmpty,
    context: context.optional(),
    contextual_tuples: z.array(tupleSchema).optional(),
    assertions: z.record(nonEmpty, z.boolean()).refine((a) => Object.keys(a).length > 0, 'needs at least one relation'),
  })
  .strict()
  .refine((c) => (c.user === undefined) !== (c.users === undefined), { message: 'give exactly one of user or users', path: ['user'] });

const listObjectsSchema = z
  .object({
    user: nonEmpty,
    type: nonEmpty,
    context: context.optional(),
    contextual_tuples: z.array(tupleSchema).optional(),
    assertions: z
      .record(nonEmpty, z.array(nonEmpty))
      .refine((a) => Object.keys(a).length > 0, 'needs at least one relation'),
  })
  .strict();

const testSchema = z
  .object({
    name: nonEmpty,
    description: z.string().optional(),
    tuples: z.array(tupleSchema).default([]),
    check: z.array(checkSchema).default([]),
    list_objects: z.array(listObjectsSchema).default([]),
  })
  .strict()
  .refine((t) => t.check.length + t.list_objects.length > 0, { message: 'a test needs at least one check or list_objects', path: ['check'] });

const fileSchema = z
  .object({
    name: nonEmpty,
    description: z.string().optional(),
    model_file: nonEmpty.optional(),
    model: nonEmpty.optional(),
    tuples: z.array(tupleSchema).default([]),
    tests: z.array(testSchema).min(1),
  })
  .strict()
  .refine((f) => (f.model === undefined) !== (f.model_file === undefined), {
    message: 'give exactly one of model_file or model',
    path: ['model_file'],
  })
  .superRefine((f, ctx) => {
    // Test names become vitest test names and failure labels: they must be unique.
    const seen = new Set<string>();
    f.tests.forEach((t, i) => {
      if (seen.has(t.name)) ctx.addIssue({ code: 'custom', message: `duplicate test name "${t.name}"`, path: ['tests', i, 'name'] });
      seen.add(t.name);
    });
  });

export type ModelTestTuple = z.infer<typeof tupleSchema>;
export type ModelTestCheck = z.infer<typeof checkSchema>;
export type ModelTestListObjects = z.infer<typeof listObjectsSchema>;
export type ModelTestCase = z.infer<typeof testSchema>;

/** Where the model of a test file comes from. */
export type ModelSource = { kind: 'file'; path: string } | { kind: 'inline'; dsl: string };

export interface ModelTestFile {
  /** Absolute path of the .fga.yaml file, for error messages and relative paths. */
  path: string;
  name: string;
  model: ModelSource;
  tuples: ModelTestTuple[];
  tests: ModelTestCase[];
}

export class ModelTestFileError extends Error {
  override name = 'ModelTestFileError';
}

/** `tests[2].check[0].assertions.can_view` from a zod issue path. */
function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${String(seg)}` : String(seg)), '') || '(file)';
}

/** Parses and validates the text of a .fga.yaml file; `path` names it in errors and anchors `model_file`. */
export function parseModelTestFile(text: string, path: string): ModelTestFile {
  const absolute = resolve(path);
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ModelTestFileError(`${absolute}: not valid YAML: ${(err as Error).message}`);
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  - ${fieldPath(i.path)}: ${i.message}`);
    throw new ModelTestFileError(`${absolute}: invalid model test file:\n${problems.join('\n')}`);
  }
  const f = parsed.data;
  const model: ModelSource =
    f.model_file !== undefined ? { kind: 'file', path: resolve(dirname(absolute), f.model_file) } : { kind: 'inline', dsl: f.model as string };
  return { path: absolute, name: f.name, model, tuples: f.tuples, tests: f.tests };
}

export function loadModelTestFile(path: string): ModelTestFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ModelTestFileError(`${resolve(path)}: cannot read: ${(err as Error).message}`);
  }
  return parseModelTestFile(text, path);
}
