import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BenchStack } from '../lib/stack.js';
import { seed, TENANT } from '../lib/seed.js';
const say = (l: string) => process.stderr.write(l + '\n');
const stack = new BenchStack(say);
await stack.start();
const gw = await stack.startGateway({ name: 'sc', l1: true, workers: 1 });
const fx = await seed(gw.url, stack.dataDir, { readers: 2, mixed: 0, revoked: 0, agents: 2 }, say);
const pidOf = (name: string) => {
  // children: find by port in /proc? use ManagedChild process pid
  return 0;
};
async function run(label: string, pid: number, url: string, headers: Record<string, string>) {
  for (let i = 0; i < 200; i++) { const r = await fetch(url, { headers }); await r.arrayBuffer(); }
  const out = `/tmp/strace-${label}.txt`;
  const st = spawn('strace', ['-c', '-f', '-p', String(pid), '-o', out]);
  await new Promise((r) => setTimeout(r, 1000));
  const N = 500;
  for (let i = 0; i < N; i++) { const r = await fetch(url, { headers }); await r.arrayBuffer(); if (r.status !== 200) throw new Error(String(r.status)); }
  st.kill('SIGINT');
  await new Promise((r) => st.on('exit', r));
  say(`==== ${label} (${N} requests)\n` + readFileSync(out, 'utf8').split('\n').slice(0, 22).join('\n'));
}
const path = `/api/v1/tenants/${TENANT}/agents/${fx.agents[0]}`;
const assertion = await stack.signer.sign(fx.readers[0]!.id, { type: 'tenant', id: TENANT }, [TENANT], 'GET', path);
const barePid = Number((await import('node:child_process')).execSync(`ss -ltnp | grep ':${new URL(stack.bareUrl).port} ' | sed -E 's/.*pid=([0-9]+).*/\\1/'`).toString().trim());
await run('bare', barePid, `${stack.bareUrl}${path}`, { 'x-tiergate-assertion': assertion });
await run('gateway', gw.child.process.pid!, `${gw.url}${path}`, { authorization: `Bearer ${fx.readers[0]!.token}` });
await stack.stop();
