// The gateway started the way deploy/kubernetes/gateway.yaml starts it, on this machine:
// the manifest's environment (config.yaml and the container's env), the init container's
// own command copying the assertion key out of a Secret-like folder, and the policy read
// through a ConfigMap volume's layout (routes.yaml -> ..data/routes.yaml, ..data -> a
// timestamped folder). Paths under /etc/tiergate and /var/lib/tiergate are mapped to a
// temporary folder, ports to free ones, and OpenFGA, Redis, the issuer and the upstream
// to the test's own; everything else is the manifest's.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { ASSERTION_KEY_FILE } from '../../src/gateway/assertion-signer.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { tempDir, useCleanup } from '../support/cleanup.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { call } from '../support/json-call.js';
import { seedTenantT1, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

interface Container {
  name: string;
  command: string[];
  env: { name: string; value?: string; valueFrom?: unknown }[];
}
interface Manifest {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: { template: { spec: { initContainers: Container[]; containers: Container[] } } };
}

const DIR = join(REPO_ROOT, 'deploy', 'kubernetes');
const manifests = (parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] }).resources.flatMap((f) =>
  parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((d) => d.toJS() as Manifest),
);
const find = (kind: string, name: string) => manifests.find((m) => m.kind === kind && m.metadata.name === name)!;
const pod = find('Deployment', 'tiergate-gateway').spec!.template.spec;
const initContainer = pod.initContainers.find((c) => c.name === 'assertion-key')!;
const gatewayContainer = pod.containers.find((c) => c.name === 'gateway')!;

let s: TestStack;
let gateway: GatewayProcess;
let root = '';
let tom = '';
/** A path of the pod mapped into this test's folder. */
const inPod = (path: string) => (path.startsWith('/etc/tiergate/') || path.startsWith('/var/lib/tiergate') ? join(root, path) : path);

beforeAll(async () => {
  const redisUrl = inject('redisUrl');
  s = await startTestStack({ platformAdmins: ['pat'], redisUrl });
  tom = await seedTenantT1(s);
  root = tempDir('tiergate-pod-');

  // The Secret volume: the stack's key (the one its tenant service trusts), group-readable as fsGroup leaves it.
  const secretDir = join(root, 'etc/tiergate/assertion-key');
  mkdirSync(secretDir, { recursive: true });
  copyFileSync(join(s.dataDir, ASSERTION_KEY_FILE), join(secretDir, ASSERTION_KEY_FILE));
  chmodSync(join(secretDir, ASSERTION_KEY_FILE), 0o440);
  // The emptyDir, as the kubelet makes it.
  mkdirSync(join(root, 'var/lib/tiergate'), { recursive: true, mode: 0o777 });
  chmodSync(join(root, 'var/lib/tiergate'), 0o777);

  // The ConfigMap volume, laid out as the kubelet's atomic writer lays it out.
  const policyDir = join(root, 'etc/tiergate/policy');
  const version = '..2026_12_07_00_00_00.000000001';
  mkdirSync(join(policyDir, version), { recursive: true });
  writeFileSync(join(policyDir, version, 'routes.yaml'), find('ConfigMap', 'tiergate-policy').data!['routes.yaml']!);
  symlinkSync(version, join(policyDir, '..data'));
  symlinkSync('..data/routes.yaml', join(policyDir, 'routes.yaml'));

  const [command, ...args] = initContainer.command;
  const init = spawnSync(command!, args.map(inPod), { encoding: 'utf8' });
  expect(init.status, init.stderr).toBe(0);

  const env: Record<string, string> = { ...find('ConfigMap', 'tiergate-config').data };
  for (const v of gatewayContainer.env) if (v.value !== undefined) env[v.name] = inPod(v.value);
  gateway = await startGatewayProcess(
    {
      ...env,
      // The test's services in place of the cluster's.
      AUTH_ISSUERS: s.env.AUTH_ISSUERS!,
      OPENFGA_API_URL: s.env.OPENFGA_API_URL!,
      OPENFGA_API_TOKEN: s.env.OPENFGA_API_TOKEN!,
      OPENFGA_STORE_ID: s.env.OPENFGA_STORE_ID!,
      REDIS_URL: redisUrl,
      TENANT_SERVICE_URL: s.upstreamUrl,
      UPSTREAM_URLS: `reports=${s.upstreamUrl}`,
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: '0',
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      // Its own PGlite (no PostgreSQL here) has none of the stack's nodes to compare.
      TIERGATE_START_CHECK: 'off',
    },
    { nodeArgs: ['--import', 'tsx', gatewayContainer.command.at(-1)!.replace(/^dist\/(.*)\.js$/, 'src/$1.ts')] },
  );
}, 240_000);

afterAll(async () => {
  await gateway?.stop();
});

describe('the gateway as deploy/kubernetes runs it', () => {
  it('starts with the manifest settings (production mode) and is ready', async () => {
    expect(find('ConfigMap', 'tiergate-config').data!.NODE_ENV).toBe('production');
    const ready = await call(gateway.url, 'GET', '/readyz');
    expect(ready.status, ready.text).toBe(200);
    expect(gateway.output()).not.toMatch(/"level":(?:50|60)/);
  });

  it('signs with the key the init container copied from the Secret, kept readable by its user alone', async () => {
    const keyFile = join(root, 'var/lib/tiergate', ASSERTION_KEY_FILE);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const secretKey = JSON.parse(readFileSync(join(root, 'etc/tiergate/assertion-key', ASSERTION_KEY_FILE), 'utf8')) as { kid: string };
    const jwks = await call(gateway.url, 'GET', '/.well-known/tiergate/jwks.json');
    expect((jwks.body.keys as { kid: string }[]).map((k) => k.kid)).toEqual([secretKey.kid]);
    expect(readFileSync(keyFile, 'utf8')).toBe(readFileSync(join(root, 'etc/tiergate/assertion-key', ASSERTION_KEY_FILE), 'utf8'));
  });

  it('authorizes by the policy read through the ConfigMap layout, and the upstream accepts its assertion', async () => {
    const created = await call(gateway.url, 'POST', '/api/v1/tenants/t1/agents', { auth: tom, body: { agentNo: '9', name: 'Via the pod' } });
    expect(created.status, created.text).toBe(201);
    const read = await call(s.gatewayUrl, 'GET', '/api/v1/tenants/t1/agents/9', { auth: tom });
    expect([read.status, read.body.name]).toEqual([200, 'Via the pod']);
    expect((await call(gateway.url, 'GET', '/api/v1/tenants/t1/agents')).status).toBe(401);
    expect((await call(gateway.url, 'GET', '/api/v1/no-such-route', { auth: tom })).status).toBe(404);
  });
});
