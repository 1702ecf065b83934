// CPU time the hypervisor gave to other guests ("steal", from /proc/stat) while a row
// ran, as a share of all CPU time. On a shared VM it is the first thing to read before
// believing a latency: a row with steal in the tens of percent measured the neighbours.
import { readFileSync } from 'node:fs';

export interface CpuTimes {
  steal: number;
  /** Time some process (or the kernel) ran: everything but idle, iowait and steal. */
  busy: number;
  total: number;
}

/** Aggregate CPU times from a /proc/stat text; undefined when there is no `cpu ` line. */
export function parseCpuTimes(procStat: string): CpuTimes | undefined {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 8 || f.some((n) => !Number.isFinite(n))) return undefined;
  const total = f.reduce((s, n) => s + n, 0);
  return { steal: f[7]!, busy: total - f[3]! - f[4]! - f[7]!, total };
}

/** Now, from /proc/stat; undefined where it does not exist (not Linux). */
export function cpuTimes(): CpuTimes | undefined {
  try {
    return parseCpuTimes(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}

/** Busy CPU milliseconds (all cores) between two readings, at `ticksPerSecond`. */
export function busyMs(before: CpuTimes | undefined, after: CpuTimes | undefined, ticksPerSecond: number): number | undefined {
  if (!before || !after) return undefined;
  return ((after.busy - before.busy) * 1000) / ticksPerSecond;
}

/** Steal between two readings as a fraction of all CPU time (undefined if either is missing). */
export function stealShare(before: CpuTimes | undefined, after: CpuTimes | undefined): number | undefined {
  if (!before || !after) return undefined;
  const total = after.total - before.total;
  return total > 0 ? (after.steal - before.steal) / total : undefined;
}
