// The scale run's report: load/results/scale-latest.md with its tables and targets, and
// the charts it draws (scale-latency.svg, scale-listing.svg).
import type { ScaleResult } from './scale.js';
import { lineChart } from './svg.js';

const ms = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(2));
const n = (v: number) => v.toLocaleString('en-US');
const pct = (v: number | undefined) => (v === undefined ? '–' : `${(v * 100).toFixed(1)}%`);

export function scaleReport(r: ScaleResult, head: string): { md: string; charts: Record<string, string> } {
  const base = r.sizes[0];
  const big = r.sizes.at(-1);
  const lines: string[] = [head, ''];
  if (r.failures.length > 0) lines.push(`**Parts that failed:** ${r.failures.join('; ')}.`, '');

  lines.push('## Provisioning through the bulk paths', '');
  lines.push(
    '| step | tenants | tuples (structural + roles) | seconds in all | tenants: seconds, tenants/s | role tuples: seconds, tuples/s | calls |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  r.provision.forEach((p, i) => {
    const roles = p.tuples - p.tenants;
    const rs = p.seconds - p.tenantSeconds;
    lines.push(
      `| ${i + 1} | ${n(p.tenants)} | ${n(p.tuples)} | ${p.seconds.toFixed(1)} | ${p.tenantSeconds.toFixed(1)}, ${(p.tenants / p.tenantSeconds).toFixed(0)} | ${rs.toFixed(1)}, ${(roles / rs).toFixed(0)} | ${p.tenantCalls} tenant batches, ${p.tupleCalls} tuple batches |`,
    );
  });
  if (r.retries > 0) lines.push('', `${r.retries} admin calls answered 503 (OpenFGA did not answer within the admin API's timeout on the loaded machine; nothing changed) and were sent again.`);
  if (r.singleCreatePerS) lines.push('', `For comparison, tenants created one call each (\`POST /admin/v1/divisions/{id}/tenants\`, 4 at a time): ${r.singleCreatePerS.toFixed(0)} tenants/s.`);
  lines.push('');

  lines.push('## Decisions as the hierarchy grows', '');
  lines.push(
    '| tenants | users | tuples | warm p50 ms | warm p99 ms | warm gateway CPU µs/req | warm hit ratio | warm decision p50 µs | steal | cold p50 ms | cold p99 ms | cold decision p50 / p99 ms | cold gateway CPU µs/req | cold OpenFGA checks / requests |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const s of r.sizes) {
    const c = s.cold;
    lines.push(
      `| ${n(s.tenants)} | ${n(s.users)} | ${n(s.tuples)} | ${ms(s.warm.k6.p50)} | ${ms(s.warm.k6.p99)} | ${s.warm.cpuUsPerRequest.toFixed(0)} | ${pct(s.warm.hitRatio)} | ${s.warm.decisionP50Us.toFixed(1)} | ${pct(s.warm.steal)} | ${ms(c?.k6.p50)} | ${ms(c?.k6.p99)} | ${c ? `${ms(c.decisionP50Ms)} / ${ms(c.decisionP99Ms)}` : '–'} | ${c ? c.cpuUsPerRequest.toFixed(0) : '–'} | ${c ? `${c.openfgaChecks} / ${c.k6.requests}` : '–'} |`,
    );
  }
  lines.push('');

  lines.push('## `/admin/v1/me/tenants` as an organization admin', '');
  lines.push(
    '| tenants | first page (100) p50 ms | max ms | of it, from Server-Timing (p50 ms): roots, candidates, confirm, count | every page (1,000 each) p50 ms | pages | how | complete, sorted, no duplicate |',
    '| ---: | ---: | ---: | --- | ---: | ---: | --- | --- |',
  );
  for (const s of r.sizes.filter((x) => x.listing)) {
    const l = s.listing!;
    const p = l.firstPageParts;
    const parts = p ? ['roots', 'candidates', 'confirm', 'count'].map((k) => ms(p[k])).join(', ') : '–';
    lines.push(`| ${n(s.tenants)} | ${ms(l.firstPage.p50)} | ${ms(l.firstPage.max)} | ${parts} | ${ms(l.complete.p50)} | ${l.pages} | ${l.source} | ${l.correct ? `yes (${n(l.total)})` : '**no**'} |`);
  }
  lines.push('');

  lines.push('## Moving a division that holds 20% of the tenants', '');
  lines.push(
    '| tenants | tenants moved | admin API answer ms | both replicas answer the new way (from the move call) ms | sampled (replica, tenant) pairs then read: old answers | storm: questions | requests | OpenFGA checks | outside the subtree: hit ratio, OpenFGA checks |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  );
  for (const s of r.sizes.filter((x) => x.move)) {
    const m = s.move!;
    lines.push(`| ${n(s.tenants)} | ${n(m.subtreeTenants)} | ${ms(m.adminAnswerMs)} | ${ms(m.everyReplicaMs)} | ${m.readsToCorrect}: ${m.wrongAfter} | ${m.stormQuestions} | ${m.stormRequests} | ${m.stormOpenfgaChecks} | ${pct(m.outsideHitRatio)}, ${m.outsideOpenfgaChecks} |`);
  }
  lines.push('');

  if (r.memory) {
    const mem = r.memory;
    lines.push(
      '## Memory per cached decision',
      '',
      `${n(mem.decisions)} decisions (distinct members on distinct tenants) in a DecisionCache built as the gateway builds it, in the bench process: **${mem.heapBytesPerDecision.toFixed(0)} bytes of heap per decision** (heap after a full GC, before and after filling; every tenant's path was known before). In Redis: **${mem.redisBytesPerDecision.toFixed(0)} bytes per decision** (\`MEMORY USAGE\` of ${mem.redisSampled} entries, key and value and Redis' own overhead).`,
      '',
    );
  }

  // Targets against the 3-tenant step of the same run.
  if (base && big && big !== base) {
    const within = (v: number, b: number) => `${v >= b ? '+' : ''}${(((v - b) / b) * 100).toFixed(0)}%`;
    const l = big.listing;
    const m = big.move;
    lines.push('## Targets', '', `At ${n(big.tenants)} tenants against the ${n(base.tenants)}-tenant step of the same run:`, '', '| target | measured | holds |', '| --- | --- | --- |');
    lines.push(`| warm CPU/request within 10% | ${big.warm.cpuUsPerRequest.toFixed(0)} against ${base.warm.cpuUsPerRequest.toFixed(0)} µs (${within(big.warm.cpuUsPerRequest, base.warm.cpuUsPerRequest)}) | ${big.warm.cpuUsPerRequest <= base.warm.cpuUsPerRequest * 1.1 ? 'yes' : 'no'} |`);
    lines.push(`| warm p50 within 10% | ${ms(big.warm.k6.p50)} against ${ms(base.warm.k6.p50)} ms (${within(big.warm.k6.p50, base.warm.k6.p50)}) | ${big.warm.k6.p50 <= base.warm.k6.p50 * 1.1 ? 'yes' : 'no'} |`);
    if (l) lines.push(`| /me/tenants first page ≤ 100 ms, complete | ${ms(l.firstPage.p50)} ms p50 (max ${ms(l.firstPage.max)}); complete: ${l.correct ? 'yes' : 'no'} | ${l.firstPage.p50 <= 100 && l.correct ? 'yes' : 'no'} |`);
    if (m) {
      lines.push(`| after the move every replica answers accordingly within 1 s | ${ms(m.everyReplicaMs)} ms | ${m.everyReplicaMs <= 1000 ? 'yes' : 'no'} |`);
      lines.push(`| OpenFGA calls ≤ distinct (user, tenant) questions | ${m.stormOpenfgaChecks} calls for ${m.stormQuestions} questions (asked ${m.stormRequests / m.stormQuestions}× each, on 2 replicas) | ${m.stormOpenfgaChecks <= m.stormQuestions ? 'yes' : 'no'} |`);
    }
    if (r.memory) lines.push(`| in-process cache ≤ 400 bytes per decision | ${r.memory.heapBytesPerDecision.toFixed(0)} bytes | ${r.memory.heapBytesPerDecision <= 400 ? 'yes' : 'no'} |`);
    lines.push('');
  }

  const xs = (f: (s: ScaleResult['sizes'][number]) => number | undefined) =>
    r.sizes.map((s) => [s.tenants, f(s) ?? Number.NaN] as [number, number]).filter((p) => Number.isFinite(p[1]));
  const charts: Record<string, string> = {
    'scale-latency.svg': lineChart({
      title: 'Request latency as the hierarchy grows',
      xLabel: 'tenants (log scale)',
      yLabel: 'ms',
      logX: true,
      series: [
        { name: 'warm p50', points: xs((s) => s.warm.k6.p50) },
        { name: 'warm p99', points: xs((s) => s.warm.k6.p99) },
        { name: 'cold p50', points: xs((s) => s.cold?.k6.p50) },
        { name: 'cold p99', points: xs((s) => s.cold?.k6.p99) },
      ],
    }),
    'scale-cpu.svg': lineChart({
      title: 'Gateway CPU per request as the hierarchy grows',
      xLabel: 'tenants (log scale)',
      yLabel: 'µs of CPU per request',
      logX: true,
      series: [
        { name: 'warm', points: xs((s) => s.warm.cpuUsPerRequest) },
        { name: 'cold', points: xs((s) => s.cold?.cpuUsPerRequest) },
      ],
    }),
    'scale-listing.svg': lineChart({
      title: '/me/tenants for an organization admin',
      xLabel: 'tenants (log scale)',
      yLabel: 'ms',
      logX: true,
      series: [
        { name: 'first page', points: xs((s) => s.listing?.firstPage.p50) },
        { name: 'every page', points: xs((s) => s.listing?.complete.p50) },
      ],
    }),
  };
  lines.push('Charts: [latency](scale-latency.svg), [CPU per request](scale-cpu.svg), [listing](scale-listing.svg).', '');
  return { md: `${lines.join('\n')}\n`, charts };
}
