// Policy reloads in the standalone gateway (src/server/gateway-main.ts): SIGHUP reloads
// instead of ending the process, alone and as a node:cluster (the primary passes it on);
// an admin reload in one worker reaches the other through the primary; and a file edit
// is picked up by every worker, with the time it took printed (docs/operations.md
// quotes it; no bound on it is asserted beyond a generous wait).
import { mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { policyVersion } from '../../src/server/policy-holder.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../../src/stack/postgres-server.js';
import { tempDir, useCleanup } from '../support/cleanup.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { call } from '../support/json-call.js';
import { startTestStack, type TestStack } from '../support/test-stack.js';
import { waitFor } from '../support/wait.js';

useCleanup();

const ORIGINAL = readFileSync(join(REPO_ROOT, 'policy/routes.yaml'), 'utf8');
const LIST_RULE = 'path: /api/v1/tenants/{tenantId}/agents\n    permission: can_read_operational';
const variant = (permission: string) => ORIGINAL.replace(LIST_RULE, `path: /api/v1/tenants/{tenantId}/agents\n    permission: ${permission}`);
const STRICTER = variant('can_read_configuration');
const OTHER = variant('can_manage_resources');

let pgServer: ThrowawayPostgres;
let s: TestStack;

/** `policy reloaded` lines of `gw` for `version`, one per process (worker id, or 0 alone), with their log time. */
function reloads(gw: GatewayProcess, version: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of gw.output().split('\n')) {
    if (!line.includes('"msg":"policy reloaded"') || !line.includes(`"policyVersion":"${version}"`)) continue;
    const l = JSON.parse(line) as { worker?: number; time: number };
    if (!out.has(l.worker ?? 0)) out.set(l.worker ?? 0, l.time);
  }
  return out;
}

/**
 * The policy file through a symlink into another directory: an edit of the target is
 * not an event in the watched directory, so only SIGHUP or the admin endpoint reloads.
 */
function unwatchedPolicy(): { file: string; write: (text: string) => void } {
  const dir = tempDir('tiergate-policy-');
  mkdirSync(join(dir, 'real'));
  mkdirSync(join(dir, 'mounted'));
  const target = join(dir, 'real', 'routes.yaml');
  writeFileSync(target, ORIGINAL);
  symlinkSync(target, join(dir, 'mounted', 'routes.yaml'));
  return { file: join(dir, 'mounted', 'routes.yaml'), write: (text) => writeFileSync(target, text) };
}

beforeAll(async () => {
  pgServer = await startThrowawayPostgres();
  s = await startTestStack({ platformAdmins: ['pat'] });
});

afterAll(() => pgServer?.stop());

describe('SIGHUP in the standalone gateway', () => {
  it('reloads the policy and leaves the process running (GATEWAY_WORKERS=1)', async () => {
    const policy = unwatchedPolicy();
    const gw = await startGatewayProcess(s.replicaEnv({ POLICY_FILE: policy.file }));
    try {
      policy.write(STRICTER);
      process.kill(gw.pid, 'SIGHUP');
      expect(await waitFor(() => reloads(gw, policyVersion(STRICTER)).size === 1, 20_000), gw.output()).toBe(true);
      expect(gw.process.exitCode).toBeNull();
      const ready = await call(gw.url, 'GET', '/readyz');
      expect(ready.text).toContain(`version ${policyVersion(STRICTER)} enforced`);
      expect(gw.output()).toContain('"trigger":"signal"');
    } finally {
      await gw.stop();
    }
  }, 120_000);
});

describe('two cluster workers (GATEWAY_WORKERS=2) converge on one version', () => {
  let gw: GatewayProcess;
  let policy: ReturnType<typeof unwatchedPolicy>;

  beforeAll(async () => {
    policy = unwatchedPolicy();
    gw = await startGatewayProcess(
      s.replicaEnv({ REDIS_URL: inject('redisUrl'), DATABASE_URL: pgServer.url, GATEWAY_WORKERS: '2', POLICY_FILE: policy.file }),
    );
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('SIGHUP to the primary reloads every worker', async () => {
    policy.write(STRICTER);
    process.kill(gw.pid, 'SIGHUP');
    expect(await waitFor(() => reloads(gw, policyVersion(STRICTER)).size === 2, 20_000), gw.output()).toBe(true);
    expect(gw.process.exitCode).toBeNull();
  });

  it('an admin reload in one worker reaches the other through the primary', async () => {
    policy.write(OTHER);
    const res = await call(gw.url, 'POST', '/admin/v1/policy/reload', { auth: await s.authHeader('pat') });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ result: 'applied', version: policyVersion(OTHER) });
    const both = await waitFor(() => reloads(gw, policyVersion(OTHER)).size === 2, 20_000);
    expect(both, gw.output()).toBe(true);
    const triggers = gw
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"policy reloaded"') && l.includes(policyVersion(OTHER)))
      .map((l) => (JSON.parse(l) as { trigger: string }).trigger)
      .sort();
    expect(triggers).toEqual(['admin', 'peer']);
  });
});

describe('a file edit under GATEWAY_WORKERS=2', () => {
  it('every worker watches the file and enforces the new version; prints how long that took', async () => {
    const dir = tempDir('tiergate-policy-');
    const file = join(dir, 'routes.yaml');
    writeFileSync(file, ORIGINAL);
    const gw = await startGatewayProcess(
      s.replicaEnv({ REDIS_URL: inject('redisUrl'), DATABASE_URL: pgServer.url, GATEWAY_WORKERS: '2', POLICY_FILE: file }),
    );
    try {
      const samples: number[] = [];
      for (const text of [STRICTER, OTHER, ORIGINAL]) {
        const tmp = join(dir, '.routes.yaml.tmp');
        writeFileSync(tmp, text);
        const t0 = Date.now();
        renameSync(tmp, file);
        expect(await waitFor(() => reloads(gw, policyVersion(text)).size === 2, 20_000), gw.output()).toBe(true);
        samples.push(Math.max(...reloads(gw, policyVersion(text)).values()) - t0);
      }
      process.stdout.write(`policy reload convergence, 2 workers, POLICY_RELOAD_DEBOUNCE_MS=250: ${samples.join(', ')} ms from rename to the last worker's "policy reloaded" line\n`);
    } finally {
      await gw.stop();
    }
  }, 120_000);
});
