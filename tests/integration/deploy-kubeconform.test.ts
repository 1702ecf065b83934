// Validates deploy/kubernetes with kubeconform (built from tools/kubeconform/go.mod)
// against JSON schemas generated offline from the pinned k8s.io/api Go types
// (tools/kubeconform/schemas): every object closed, every field typed. Also shows the
// schemas are strict enough to catch the mistakes they exist for.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { ensureTool, KUBECONFORM } from '../../src/stack/go-tools.js';
import { tempDir, useCleanup } from '../support/cleanup.js';

useCleanup();

const run = promisify(execFile);
const DIR = join(REPO_ROOT, 'deploy', 'kubernetes');
const kustomization = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
const manifests = [...kustomization.resources.map((f) => join(DIR, f)), join(DIR, 'examples', 'secrets.example.yaml')];

interface Result {
  filename: string;
  kind: string;
  name: string;
  version: string;
  status: 'statusValid' | 'statusInvalid' | 'statusError' | 'statusSkipped' | 'statusEmpty';
  msg: string;
}
interface Report {
  resources: Result[];
  summary: { valid: number; invalid: number; errors: number; skipped: number };
}

let kubeconform = '';
let schemaDir = '';

beforeAll(async () => {
  kubeconform = await ensureTool(KUBECONFORM);
  schemaDir = tempDir('tiergate-k8s-schemas-');
  await run('go', ['run', './schemas', schemaDir], { cwd: join(REPO_ROOT, 'tools', 'kubeconform'), timeout: 540_000 });
}, 600_000);

/** kubeconform's verdict on `files`: only the generated schemas, never a download. */
async function validate(files: string[]): Promise<{ code: number; report: Report }> {
  const args = ['-strict', '-summary', '-verbose', '-output', 'json', '-schema-location', join(schemaDir, '{{ .ResourceKind }}{{ .KindSuffix }}.json'), ...files];
  try {
    const { stdout } = await run(kubeconform, args);
    return { code: 0, report: JSON.parse(stdout) as Report };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    if (typeof e.code !== 'number' || e.stdout === undefined) throw err;
    return { code: e.code, report: JSON.parse(e.stdout) as Report };
  }
}

/** One manifest of the folder with one edit, written to a scratch file. */
function edited(file: string, from: string, to: string): string {
  const text = readFileSync(join(DIR, file), 'utf8');
  expect(text).toContain(from);
  const out = join(tempDir('tiergate-k8s-edit-'), file);
  writeFileSync(out, text.replace(from, to));
  return out;
}

describe('kubeconform on deploy/kubernetes', () => {
  it('finds every resource of the kustomization and the example Secrets valid', async () => {
    const { code, report } = await validate(manifests);
    expect(report.resources.filter((r) => r.status !== 'statusValid')).toEqual([]);
    expect(code).toBe(0);
    const kinds = report.resources.map((r) => `${r.kind}/${r.name}`).sort();
    expect(kinds).toEqual([
      'ConfigMap/tiergate-config',
      'ConfigMap/tiergate-policy',
      'Deployment/tiergate-gateway',
      'Deployment/tiergate-tenant-service',
      'PodDisruptionBudget/tiergate-gateway',
      'PodDisruptionBudget/tiergate-tenant-service',
      'Secret/tiergate-assertion-key',
      'Secret/tiergate-secrets',
      'Service/tiergate-gateway',
      'Service/tiergate-tenant-service',
    ]);
    expect(report.summary).toEqual({ valid: 10, invalid: 0, errors: 0, skipped: 0 });
  });

  it('refuses a misspelt field', async () => {
    const { code, report } = await validate([edited('gateway.yaml', '  replicas: 2\n', '  replica: 2\n')]);
    expect(code).toBe(1);
    const bad = report.resources.filter((r) => r.status === 'statusInvalid');
    expect(bad.map((r) => r.name)).toEqual(['tiergate-gateway']);
    expect(bad[0]!.msg).toContain('replica');
  });

  it('refuses a field where the API has none (a probe on the pod rather than the container)', async () => {
    const { code, report } = await validate([edited('gateway.yaml', '      enableServiceLinks: false\n', '      enableServiceLinks: false\n      readinessProbe: {}\n')]);
    expect(code).toBe(1);
    expect(report.resources.find((r) => r.status === 'statusInvalid')?.msg).toContain('readinessProbe');
  });

  it('refuses a number given as a string, and a quantity with a space', async () => {
    const port = await validate([edited('gateway.yaml', 'containerPort: 8080', 'containerPort: "8080"')]);
    expect(port.code).toBe(1);
    expect(port.report.resources.find((r) => r.status === 'statusInvalid')?.msg).toMatch(/containerPort/);
    const memory = await validate([edited('gateway.yaml', 'memory: 512Mi', 'memory: 512 MiB')]);
    expect(memory.code).toBe(1);
    expect(memory.report.resources.find((r) => r.status === 'statusInvalid')?.msg).toMatch(/memory/);
  });

  it('accepts a named port and a quantity as the API server does', async () => {
    // targetPort is int-or-string; cpu "1" and 250m are both quantities.
    const { code } = await validate([edited('gateway.yaml', 'targetPort: http', 'targetPort: 8080')]);
    expect(code).toBe(0);
  });

  it('has no schema for an API version Kubernetes no longer serves', async () => {
    const { code, report } = await validate([edited('gateway.yaml', 'apiVersion: policy/v1\n', 'apiVersion: policy/v1beta1\n')]);
    expect(code).toBe(1);
    const failed = report.resources.find((r) => r.kind === 'PodDisruptionBudget')!;
    expect(failed.status).toBe('statusError');
    expect(failed.msg).toMatch(/could not find schema/);
  });
});
