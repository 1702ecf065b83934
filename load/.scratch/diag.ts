import { BenchStack } from '../lib/stack.js';
import { seed, TENANT } from '../lib/seed.js';
import { runK6 } from '../lib/k6.js';
import { scrape, deltaBy } from '../lib/prom.js';
import { ensureTool, K6 } from '../../src/stack/go-tools.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
const say = (l: string) => process.stderr.write(l + '\n');
const stack = new BenchStack(say);
await stack.start();
const k6 = await ensureTool(K6);
const gw = await stack.startGateway({ name: 'diag', l1: true, workers: Number(process.env.W ?? 2) });
const fx = await seed(gw.url, stack.dataDir, { readers: 32, mixed: 0, revoked: 0, agents: 32 }, say);
const items = fx.readers.flatMap((u) => fx.agents.map((a) => ({ url: `${gw.url}/api/v1/tenants/${TENANT}/agents/${a}`, headers: { authorization: `Bearer ${u.token}` } })));
const dir = join(stack.dataDir, 'k6'); mkdirSync(dir, { recursive: true });
for (let i = 0; i < 4; i++) {
  const before = await scrape(gw.metricsUrl);
  const k = await runK6(k6, 'read.js', { MODE: 'rate', RATE: process.env.RATE ?? '500', DURATION: '5s', PREALLOC: '64', MAXVUS: '64', RUN_ID: `d${i}` }, { expect: [200], items }, dir, `d${i}`, 60);
  const after = await scrape(gw.metricsUrl);
  const show = (name: string, by: string, where: Record<string, string> = {}) => JSON.stringify(Object.fromEntries(deltaBy(before, after, name, by, where)));
  say(`run ${i}: ${k.rps.toFixed(0)} req/s p99 ${k.p99.toFixed(1)}; layers ${show('tiergate_decision_duration_seconds_count', 'layer')}`);
  say(`  l1 ${show('tiergate_decision_cache_lookups_total', 'result', { layer: 'l1' })} redis ${show('tiergate_decision_cache_lookups_total', 'result', { layer: 'redis' })}`);
  say(`  invalidations ${show('tiergate_decision_invalidations_total', 'kind')} by source ${show('tiergate_decision_invalidations_total', 'source')} resyncs ${show('tiergate_decision_resyncs_total', '')} redis errors ${show('tiergate_decision_redis_errors_total', 'op')} uncached ${show('tiergate_decision_uncached_total', '')}`);
}
say('--- gateway output tail ---\n' + gw.child.output().slice(-1500));
await stack.stop();
