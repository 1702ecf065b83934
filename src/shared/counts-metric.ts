// Hot-path counts kept as plain numbers and copied into a labelled prom-client counter
// at scrape time: an inc() on a labelled counter hashes its labels on every call, which
// showed in the CPU profile at maximum throughput.
import { Counter, type Registry } from 'prom-client';

/**
 * Registers `name` on `registry`, one series per key of `live` under `label`. The hot path
 * increments `live`'s fields directly; each scrape adds what they gained since the last
 * (everything they hold, the first time).
 */
export function countsMetric<K extends string>(registry: Registry, name: string, help: string, label: string, live: Record<K, number>): Counter<string> {
  const seen = Object.fromEntries(Object.keys(live).map((k) => [k, 0])) as Record<K, number>;
  return new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      for (const k of Object.keys(live) as K[]) {
        this.inc({ [label]: k }, live[k] - seen[k]);
        seen[k] = live[k];
      }
    },
  });
}

/** The same for one plain count without labels, read through `read` at each scrape. */
export function countMetric(registry: Registry, name: string, help: string, read: () => number): Counter {
  let seen = 0;
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      this.inc(now - seen);
      seen = now;
    },
  });
}
