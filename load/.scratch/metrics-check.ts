import { BenchStack } from '../lib/stack.js';
import { seed, TENANT } from '../lib/seed.js';
const say = (l: string) => process.stderr.write(l + '\n');
const stack = new BenchStack(say);
await stack.start();
const gw = await stack.startGateway({ name: 'm', l1: true, workers: 2 });
const fx = await seed(gw.url, stack.dataDir, { readers: 2, mixed: 0, revoked: 0, agents: 2 }, say);
for (let i = 0; i < 50; i++) { const r = await fetch(`${gw.url}/api/v1/tenants/${TENANT}/agents/a${i % 2}`, { headers: { authorization: `Bearer ${fx.readers[i % 2]!.token}` } }); await r.arrayBuffer(); }
const text = await (await fetch(gw.metricsUrl!)).text();
const names = new Set(text.split('\n').filter((l) => l.startsWith('# TYPE')).map((l) => l.split(' ').slice(2).join(' ')));
say([...names].join('\n'));
say(text.split('\n').filter((l) => /tiergate_decision_duration_seconds_count|tiergate_upstream_duration_seconds_count|tiergate_request_duration_seconds_count|cache_lookups_total\{layer="l1"|eventloop_lag_p99/.test(l)).join('\n'));
await stack.stop();
