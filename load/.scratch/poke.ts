import { BenchStack } from '../lib/stack.js';
import { seed, TENANT } from '../lib/seed.js';
import { scrape, decisionsByLayer } from '../lib/prom.js';
const say = (l: string) => process.stderr.write(l + '\n');
const stack = new BenchStack(say);
await stack.start();
const workers = Number(process.env.W ?? 1);
const gw = await stack.startGateway({ name: 'poke', l1: true, workers });
const fx = await seed(gw.url, stack.dataDir, { readers: 4, mixed: 0, revoked: 0, agents: 4 }, say);
const before = await scrape(gw.metricsUrl);
for (let round = 0; round < 5; round++) {
  const times: number[] = [];
  const b0 = await scrape(gw.metricsUrl);
  const agents = round >= 3 ? ['n1', 'n2', 'n3', 'n4'] : fx.agents;
  for (const u of fx.readers) for (const a of agents) {
    const t = performance.now();
    const r = await fetch(`${gw.url}/api/v1/tenants/${TENANT}/agents/${a}`, { headers: { authorization: `Bearer ${u.token}` } });
    await r.arrayBuffer();
    times.push(performance.now() - t);
    if (r.status !== 200 && round < 3) say(`status ${r.status}`);
  }
  say(`round ${round}: ${JSON.stringify(decisionsByLayer(b0, await scrape(gw.metricsUrl)))} ${times.map((t) => t.toFixed(1)).join(' ')}`);
}
for (const base of [stack.tenantUrl, stack.bareUrl]) {
  const times: number[] = [];
  for (let i = 0; i < 16; i++) {
    const path = `/api/v1/tenants/${TENANT}/agents/a${i % 4}`;
    const assertion = await stack.signer.sign('bench-r0', { type: 'tenant', id: TENANT }, [TENANT], 'GET', path);
    const t = performance.now();
    const r = await fetch(`${base}${path}`, { headers: { 'x-tiergate-assertion': assertion } });
    await r.arrayBuffer();
    times.push(performance.now() - t);
  }
  say(`${base}: ${times.map((t) => t.toFixed(1)).join(' ')}`);
}
say(JSON.stringify(decisionsByLayer(before, await scrape(gw.metricsUrl))));
say('--- gateway output tail ---\n' + gw.child.output().slice(-3000));
await stack.stop();
