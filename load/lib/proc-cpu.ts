// CPU time each part of the stack spent during a row, from /proc/<pid>/stat, so a
// latency can be read against where the two cores actually went (k6, the upstream,
// PostgreSQL, OpenFGA, Redis, the proxy under test). A process tree's time is its
// members' own time plus what they reaped from children that exited (cutime/cstime),
// so a forked worker that ends mid-row is still counted, once.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export interface ProcStat {
  ppid: number;
  /** utime + stime, in clock ticks. */
  own: number;
  /** cutime + cstime: reaped children, in clock ticks. */
  reaped: number;
}

/** One /proc/<pid>/stat line; undefined when it does not parse. */
export function parseProcStat(line: string): ProcStat | undefined {
  // The command name (field 2) is in parentheses and may hold spaces or ')'.
  const close = line.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = line.slice(close + 2).trim().split(/\s+/);
  // After the name: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
  const num = (field: number) => Number(f[field - 3]);
  const [ppid, utime, stime, cutime, cstime] = [num(4), num(14), num(15), num(16), num(17)];
  if (![ppid, utime, stime, cutime, cstime].every(Number.isFinite)) return undefined;
  return { ppid, own: utime + stime, reaped: cutime + cstime };
}

/** Every process now: pid → stat. Empty where /proc does not exist. */
export function readProcs(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const s = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      if (s) out.set(Number(pid), s);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Children of every pid, built once per reading of /proc. */
export function childrenOf(procs: Map<number, ProcStat>): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const [pid, s] of procs) {
    const list = children.get(s.ppid);
    if (list) list.push(pid);
    else children.set(s.ppid, [pid]);
  }
  return children;
}

/** `root` and every descendant of it that is running; none when root is gone. */
export function processTree(procs: Map<number, ProcStat>, root: number, children = childrenOf(procs)): number[] {
  const tree = procs.has(root) ? [root] : [];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

/** Ticks of `root` and every descendant (own + reaped); 0 when root is gone. */
export function treeTicks(procs: Map<number, ProcStat>, root: number, children = childrenOf(procs)): number {
  let sum = 0;
  for (const pid of processTree(procs, root, children)) {
    const s = procs.get(pid)!;
    sum += s.own + s.reaped;
  }
  return sum;
}

let clkTck: number | undefined;
/** Clock ticks per second (getconf CLK_TCK; 100 on Linux when getconf is missing). */
export function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/**
 * The parts to account for: a name and the pid of its process tree's root (undefined
 * while it is not running). `reapedOnly` counts only the root's reaped children: the
 * bench process itself, whose short-lived k6 runs are reaped by it.
 */
export interface CpuPart {
  name: string;
  pid: () => number | undefined;
  reapedOnly?: boolean;
}

export type CpuSnapshot = Map<string, number>;

export function snapshot(parts: CpuPart[]): CpuSnapshot {
  const procs = readProcs();
  const children = childrenOf(procs);
  const out: CpuSnapshot = new Map();
  for (const p of parts) {
    const pid = p.pid();
    if (pid === undefined) continue;
    out.set(p.name, p.reapedOnly ? (procs.get(pid)?.reaped ?? 0) : treeTicks(procs, pid, children));
  }
  return out;
}

/** CPU milliseconds per part between two snapshots (parts present in both). */
export function cpuMsBetween(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const perTick = 1000 / ticksPerSecond();
  const out: Record<string, number> = {};
  for (const [name, t] of after) {
    const b = before.get(name);
    if (b !== undefined) out[name] = Math.max(0, t - b) * perTick;
  }
  return out;
}
