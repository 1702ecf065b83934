// The README's demo, automated: `npm start -- --demo` (src/server/stack-main.ts --demo) as a child
// process on free ports, tokens minted with `npm run -s token -- <sub>`, then the
// README's curl commands replayed with their documented answers, and finally Ctrl-C
// (SIGINT): the stack exits and leaves no OpenFGA behind.
import { execFile, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { useCleanup, tempDir } from '../support/cleanup.js';
import { call, type JsonResponse } from '../support/json-call.js';
import { npmStartEnv, startMain, type NpmStart } from '../support/npm-start.js';
import { sendRaw } from '../support/raw-http.js';
import { waitFor } from '../support/wait.js';

useCleanup();

const run = promisify(execFile);

interface Ports {
  gateway: number;
  tenantService: number;
  metrics: number;
  reports: number;
  /** Picked by OpenFGA's start (OPENFGA_HTTP_PORT=0), read from the ready line. */
  openfgaHttp?: number;
}

let main: NpmStart;
let stack: ChildProcess;
let ports: Ports;
let env: NodeJS.ProcessEnv;
let readyLine = '';
/** The OpenFGA process the stack started (a child of the stack process). */
let openfgaPid: number | undefined;
const tokens: Record<string, string> = {};

/** Pids of the direct children of `pid` whose command name is `comm`, from /proc. */
function childrenNamed(pid: number, comm: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "<pid> (<comm>) <state> <ppid> …"; comm may hold spaces, so split at the last ")".
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    if (ppid === pid && name === comm) found.push(Number(entry));
  }
  return found;
}

/** Running (a zombie, exited but not yet reaped by its new parent, counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  env = await npmStartEnv(tempDir('tiergate-demo-'));
  main = await startMain(env, ['--demo'], 110_000);
  // Read after the start: a start that found a port taken tries again on fresh ones.
  ports = {
    gateway: Number(env.GATEWAY_PORT),
    tenantService: Number(env.TENANT_SERVICE_PORT),
    metrics: Number(env.METRICS_PORT),
    reports: Number(env.REPORTS_SERVICE_PORT),
  };
  stack = main.process;
  expect(main.readyLine !== undefined && main.exitCode() === null, `the demo stack did not start:\n${main.output()}`).toBe(true);
  readyLine = main.readyLine!;
  ports.openfgaHttp = Number(/OpenFGA http:\/\/127\.0\.0\.1:(\d+)/.exec(readyLine)?.[1]);
  openfgaPid = childrenNamed(stack.pid!, 'openfga')[0];

  // Tokens exactly as the README mints them, in parallel.
  await Promise.all(
    ['olivia', 'dana', 'tom', 'uma'].map(async (sub) => {
      const { stdout } = await run('npm', ['run', '-s', 'token', '--', sub], { cwd: REPO_ROOT, env });
      tokens[sub] = stdout;
    }),
  );
}, 180_000);

afterAll(async () => {
  // Only if a test failed before the SIGINT test: never leave the stack running.
  if (stack && stack.exitCode === null && stack.signalCode === null) stack.kill('SIGKILL');
  if (openfgaPid !== undefined && alive(openfgaPid)) process.kill(openfgaPid, 'SIGKILL');
});

const G = () => `http://127.0.0.1:${ports.gateway}/api/v1`;
const as = (sub: string) => `Bearer ${tokens[sub]!.trim()}`;

function forbidden(res: JsonResponse, permission: string): void {
  expect({ status: res.status, contentType: res.contentType, type: res.body.type, permission: res.body.permission, detail: res.body.detail }).toEqual({
    status: 403,
    contentType: PROBLEM_CONTENT_TYPE,
    type: 'https://tiergate.dev/problems/forbidden',
    permission,
    detail: `Missing permission ${permission} for this request.`,
  });
}

describe('the README demo', () => {
  it('prints one ready line with the URLs, on the ports it was given', () => {
    expect(readyLine).toContain(`tiergate ready: gateway http://127.0.0.1:${ports.gateway} (API http://127.0.0.1:${ports.gateway}/api/v1`);
    expect(readyLine).toContain(`tenant service http://127.0.0.1:${ports.tenantService}`);
    expect(readyLine).toMatch(/OpenFGA http:\/\/127\.0\.0\.1:\d+ \(sqlite /);
    expect(readyLine).toContain(` (sqlite ${env.TIERGATE_DATA_DIR}/openfga/openfga.db`);
    expect(readyLine).toContain(`metrics http://127.0.0.1:${ports.metrics}/metrics`);
    expect(openfgaPid, 'the stack runs OpenFGA as its child').toBeDefined();
  });

  it('`npm run -s token -- <sub>` prints a token and nothing else', () => {
    for (const sub of ['olivia', 'dana', 'tom', 'uma']) {
      expect(tokens[sub]).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/);
      const claims = JSON.parse(Buffer.from(tokens[sub]!.split('.')[1]!, 'base64url').toString('utf8')) as { sub: string };
      expect(claims.sub).toBe(sub);
    }
  });

  it('tenant admin tom creates an agent in his tenant → 201', async () => {
    const res = await call(G(), 'POST', '/tenants/acme-sales/agents', { auth: as('tom'), body: { agentNo: '2000', name: 'Ada' } });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ tenantId: 'acme-sales', agentNo: '2000', name: 'Ada', status: 'offline' });
  });

  it("tenant user uma reads agents (200) and changes an agent's status (200)", async () => {
    const list = await call(G(), 'GET', '/tenants/acme-sales/agents', { auth: as('uma') });
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([expect.objectContaining({ tenantId: 'acme-sales', agentNo: '2000' })]);
    const status = await call(G(), 'PUT', '/tenants/acme-sales/agents/2000/status', { auth: as('uma'), body: { status: 'available' } });
    expect(status.status, status.text).toBe(200);
    expect(status.body.status).toBe('available');
  });

  it('…but may not create resources, read configuration or read reports → 403', async () => {
    forbidden(await call(G(), 'POST', '/tenants/acme-sales/agents', { auth: as('uma'), body: { agentNo: '2001', name: 'X' } }), 'can_manage_resources');
    forbidden(await call(G(), 'GET', '/tenants/acme-sales/configurations', { auth: as('uma') }), 'can_read_configuration');
    forbidden(await call(G(), 'GET', '/tenants/acme-sales/reports/summary', { auth: as('uma') }), 'can_read');
  });

  it("tenant admin tom: his tenant's report yes (200), another tenant no (403)", async () => {
    const report = await call(G(), 'GET', '/tenants/acme-sales/reports/summary', { auth: as('tom') });
    expect(report.status).toBe(200);
    expect(report.body.tenantId).toBe('acme-sales');
    forbidden(await call(G(), 'GET', '/tenants/apac-sales/agents', { auth: as('tom') }), 'can_read_operational');
  });

  it('division admin dana: her subtree (200, tenantCount 2), not the organization (403)', async () => {
    expect((await call(G(), 'GET', '/tenants/acme-sales/agents', { auth: as('dana') })).status).toBe(200);
    const report = await call(G(), 'GET', '/divisions/emea/reports/summary', { auth: as('dana') });
    expect(report.status).toBe(200);
    expect(report.body).toMatchObject({ scope: { type: 'division', id: 'emea' }, tenantCount: 2 });
    expect(report.body.tenants.map((t: { tenantId: string }) => t.tenantId)).toEqual(['acme-sales', 'north-support']);
    forbidden(await call(G(), 'GET', '/organizations/acme/reports/summary', { auth: as('dana') }), 'can_read_reports');
  });

  it('organization admin olivia: the organization report (tenantCount 3) and any tenant (201)', async () => {
    const report = await call(G(), 'GET', '/organizations/acme/reports/summary', { auth: as('olivia') });
    expect(report.status).toBe(200);
    expect(report.body).toMatchObject({ scope: { type: 'organization', id: 'acme' }, tenantCount: 3 });
    const queue = await call(G(), 'POST', '/tenants/apac-sales/queues', { auth: as('olivia'), body: { queueNo: '1000', name: 'Sales' } });
    expect(queue.status, queue.text).toBe(201);
  });

  it("the reports came from the policy's reports upstream: a listener of their own, probed by /readyz", async () => {
    expect((await call(`http://127.0.0.1:${ports.reports}`, 'GET', '/healthz')).status).toBe(200);
    const metrics = await call(`http://127.0.0.1:${ports.metrics}`, 'GET', '/metrics');
    const answered = /^tiergate_upstream_requests_total\{upstream="reports",class="2xx"\} (\d+)$/m.exec(metrics.text);
    expect(Number(answered?.[1]), 'the reports of tom, dana and olivia').toBe(3);
    const ready = await call(`http://127.0.0.1:${ports.gateway}`, 'GET', '/readyz');
    expect(ready.body.checks).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'upstream:reports', ok: true }),
        expect.objectContaining({ name: 'upstream:tenant-service', ok: true }),
      ]),
    );
  });

  it('no token → 401 with WWW-Authenticate: Bearer; a ".." path (curl --path-as-is) → 400 dot-segment', async () => {
    const anonymous = await call(G(), 'GET', '/tenants/acme-sales/agents');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    const traversal = await sendRaw(ports.gateway, 'GET /api/v1/tenants/apac-sales/../acme-sales/agents', [`Authorization: ${as('tom')}`]);
    expect(traversal.status).toBe(400);
    expect(traversal.json).toMatchObject({ type: 'https://tiergate.dev/problems/dot-segment', title: 'Dot segment in path' });
  });

  it('Ctrl-C (SIGINT) stops the stack and leaves no process or listener behind', async () => {
    const pid = stack.pid!;
    const exited = new Promise<number | null>((resolve) => {
      if (stack.exitCode !== null) resolve(stack.exitCode);
      else stack.once('exit', (code) => resolve(code));
    });
    stack.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
    expect(code, `exit of the stack:\n${main.output().slice(-2000)}`).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(await waitFor(() => !alive(openfgaPid!), 5000), `OpenFGA (pid ${openfgaPid}) is still running`).toBe(true);
    const stillListening = [];
    for (const [name, port] of Object.entries(ports)) if (port !== undefined && (await listening(port))) stillListening.push(`${name} :${port}`);
    expect(stillListening).toEqual([]);
  }, 30_000);
});
