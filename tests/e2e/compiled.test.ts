// Production runs the compiled JavaScript: `npm run build` (tsc, tsconfig.build.json)
// writes dist/, and the image's runtime stage holds only what its COPY lines name. This
// file builds into a temporary folder laid out as that stage (the Dockerfile's COPY lines
// of its last stage, applied), then runs the Dockerfile's and docker-compose.yml's
// commands there: the compiled tenant service and gateway serve a request end to end.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { useCleanup, tempDir } from '../support/cleanup.js';
import { startGatewayProcess, startTenantServiceProcess, type ServiceProcess } from '../support/gateway-process.js';
import { call } from '../support/json-call.js';
import { adminOk, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

const execFileAsync = promisify(execFile);
const read = (file: string) => readFileSync(join(REPO_ROOT, file), 'utf8');

const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; dependencies: Record<string, string> };
const compose = parseYaml(read('docker-compose.yml')) as { services: Record<string, { command?: string[] }> };

interface Copy {
  fromBuild: boolean;
  sources: string[];
  dest: string;
}

/** The runtime (last) stage of the Dockerfile: its COPY lines and its CMD. */
function runtimeStage(dockerfile: string): { copies: Copy[]; cmd: string[] } {
  const lines = dockerfile.split('\n').map((l) => l.trim());
  const last = lines.map((l, i) => (/^FROM\s/i.test(l) ? i : -1)).filter((i) => i >= 0).at(-1)!;
  const copies: Copy[] = [];
  let cmd: string[] | undefined;
  for (const line of lines.slice(last + 1)) {
    if (/^COPY\s/i.test(line)) {
      const words = line.split(/\s+/).slice(1);
      const fromBuild = words[0]!.startsWith('--from=');
      const paths = words.filter((w) => !w.startsWith('--'));
      copies.push({ fromBuild, sources: paths.slice(0, -1), dest: paths.at(-1)! });
    }
    if (/^CMD\s/i.test(line)) cmd = JSON.parse(line.slice(3).trim()) as string[];
  }
  if (!cmd) throw new Error('the Dockerfile has no CMD in its last stage');
  return { copies, cmd };
}

const stage = runtimeStage(read('Dockerfile'));

/** `node <flags> <script>` as its words. */
const words = (command: string) => command.split(/\s+/);

let buildDir: string;
let app: string;

beforeAll(async () => {
  // `npm run build`, into a folder of its own rather than the checkout's dist/.
  buildDir = join(tempDir('tiergate-build-'), 'dist');
  await execFileAsync('npm', ['run', '-s', 'build', '--', '--outDir', buildDir], { cwd: REPO_ROOT, timeout: 240_000 });

  // The runtime stage's file system (WORKDIR /app), from its COPY lines; node_modules
  // comes from this checkout (the import test below holds it to the production dependencies).
  app = tempDir('tiergate-app-');
  for (const copy of stage.copies) {
    for (const source of copy.sources) {
      const from = copy.fromBuild ? buildDir : join(REPO_ROOT, source);
      const to = copy.dest.endsWith('/') && !copy.fromBuild ? join(app, copy.dest, source) : join(app, copy.dest);
      cpSync(from, to, { recursive: true });
    }
  }
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(app, 'node_modules'));
}, 300_000);

describe('the image and docker-compose.yml run the compiled entry points', () => {
  it("the image's command is package.json's start:gateway, and compose runs start:gateway and start:tenant-service", () => {
    expect(stage.cmd).toEqual(words(pkg.scripts['start:gateway']!));
    expect(compose.services.gateway?.command ?? stage.cmd).toEqual(words(pkg.scripts['start:gateway']!));
    expect(compose.services['tenant-service']?.command).toEqual(words(pkg.scripts['start:tenant-service']!));
  });

  it('each command names a file the build produced, present in the runtime stage with its source map', () => {
    for (const script of ['start:gateway', 'start:tenant-service']) {
      const entry = words(pkg.scripts[script]!).at(-1)!;
      expect(entry, script).toMatch(/^dist\/.+\.js$/);
      expect(existsSync(join(app, entry)), `${entry} in the runtime stage`).toBe(true);
      expect(existsSync(join(app, `${entry}.map`)), `${entry}.map`).toBe(true);
    }
    // Only src/ is compiled: no tests, benchmarks or configuration files in dist/.
    expect(readdirSync(buildDir).sort()).toEqual(readdirSync(join(REPO_ROOT, 'src')).map((f) => f.replace(/\.ts$/, '.js')).flatMap((f) => (f.endsWith('.js') ? [f, `${f}.map`] : [f])).sort());
  });

  it('the compiled code imports only Node built-ins and production dependencies (npm ci --omit=dev)', () => {
    const builtins = new Set(builtinModules);
    const imported = new Set<string>();
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.js')) {
          // Static imports and re-exports (`… from 'x'`, `import 'x'`) and dynamic `import('x')`.
          const code = readFileSync(path, 'utf8');
          for (const m of code.matchAll(/^\s*(?:import|export)\b(?:[^;'"]*?\bfrom)?\s*['"]([^'"\n]+)['"]/gm)) imported.add(m[1]!);
          for (const m of code.matchAll(/\bimport\(\s*['"]([^'"\n]+)['"]\s*\)/g)) imported.add(m[1]!);
        }
      }
    };
    walk(buildDir);
    const packages = [...imported]
      .filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtins.has(s))
      .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!));
    expect(packages.length).toBeGreaterThan(5);
    expect([...new Set(packages)].filter((p) => !(p in pkg.dependencies))).toEqual([]);
  });
});

describe('the compiled services, started as the image starts them', () => {
  let s: TestStack;
  let tenantService: ServiceProcess;
  let gateway: ServiceProcess;

  beforeAll(async () => {
    s = await startTestStack({ platformAdmins: ['pat'] });
    const ok = (sub: string, method: string, path: string, body?: unknown) => adminOk(s, sub, method, path, body);
    await ok('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
    await ok('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
    await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
    await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't2', name: 'T2' });
    await ok('olivia', 'PUT', '/tenants/t1/roles/admin/tom');

    // The compiled gateway signs with the in-process gateway's key (replicaEnv copies it),
    // so the compiled tenant service trusts the JWKS the in-process gateway serves.
    tenantService = await startTenantServiceProcess(
      { GATEWAY_JWKS_URL: `${s.gatewayUrl}/.well-known/tiergate/jwks.json` },
      { cwd: app, nodeArgs: compose.services['tenant-service']!.command!.slice(1) },
    );
    gateway = await startGatewayProcess(s.replicaEnv({ TENANT_SERVICE_URL: tenantService.url }), { cwd: app, nodeArgs: stage.cmd.slice(1) });
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    await tenantService?.stop();
  });

  it('both answer /healthz, and the gateway is ready (/readyz: OpenFGA, model, upstream)', async () => {
    expect((await call(tenantService.url, 'GET', '/healthz')).status).toBe(200);
    expect((await call(gateway.url, 'GET', '/healthz')).status).toBe(200);
    const ready = await call(gateway.url, 'GET', '/readyz');
    expect(ready.status, ready.text).toBe(200);
  });

  it('run as plain node, with the heap flag and without tsx', () => {
    for (const proc of [gateway, tenantService]) {
      const cmdline = readFileSync(`/proc/${proc.pid}/cmdline`, 'utf8').split('\0');
      expect(cmdline).toContain('--initial-old-space-size=128');
      expect(cmdline.join(' ')).not.toMatch(/tsx/);
      expect(cmdline.at(-2)).toMatch(/^dist\/.+\.js$/);
    }
  });

  it('the compiled gateway authorizes with the policy and model of the runtime stage and forwards to the compiled tenant service', async () => {
    const tom = await s.authHeader('tom');
    const created = await call(gateway.url, 'POST', '/api/v1/tenants/t1/agents', { auth: tom, body: { agentNo: '7', name: 'Compiled' } });
    expect(created.status, created.text).toBe(201);
    const read = await call(gateway.url, 'GET', '/api/v1/tenants/t1/agents/7', { auth: tom });
    expect([read.status, read.body.name]).toEqual([200, 'Compiled']);
    const denied = await call(gateway.url, 'GET', '/api/v1/tenants/t2/agents', { auth: tom });
    expect([denied.status, denied.body.permission]).toEqual([403, 'can_read_operational']);
    // The tenant service refuses a request that did not come through a gateway.
    expect((await call(tenantService.url, 'GET', '/tenants/t1/agents')).status).toBe(401);
  });
});
