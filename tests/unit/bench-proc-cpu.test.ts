// The benchmark's CPU accounting by process tree (load/lib/proc-cpu.ts).
import { describe, expect, it } from 'vitest';
import { cpuMsBetween, parseProcStat, processTree, snapshot, ticksPerSecond, treeTicks, type ProcStat } from '../../load/lib/proc-cpu.js';

// Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime …
const line = (name: string, ppid: number, utime: number, stime: number, cutime: number, cstime: number) =>
  `4242 (${name}) S ${ppid} 1 1 0 -1 4194560 10 0 0 0 ${utime} ${stime} ${cutime} ${cstime} 20 0 1 0 100 0 0`;

describe('/proc/<pid>/stat', () => {
  it('reads ppid, own and reaped ticks, whatever the command name holds', () => {
    expect(parseProcStat(line('node', 7, 11, 4, 30, 2))).toEqual({ ppid: 7, own: 15, reaped: 32 });
    expect(parseProcStat(line('a) b (c', 9, 1, 2, 3, 4))).toEqual({ ppid: 9, own: 3, reaped: 7 });
  });

  it('refuses a line without a name or with missing fields', () => {
    expect(parseProcStat('4242 node S 1 2 3')).toBeUndefined();
    expect(parseProcStat('4242 (node) S 1 2 3')).toBeUndefined();
  });
});

describe('CPU of a process tree', () => {
  const procs = new Map<number, ProcStat>([
    [1, { ppid: 0, own: 1000, reaped: 0 }],
    [10, { ppid: 1, own: 5, reaped: 100 }], // root of the tree measured; reaped a worker that exited
    [11, { ppid: 10, own: 20, reaped: 0 }],
    [12, { ppid: 10, own: 30, reaped: 0 }],
    [13, { ppid: 12, own: 7, reaped: 0 }],
    [20, { ppid: 1, own: 400, reaped: 0 }], // a sibling: not in the tree
  ]);

  it('sums the root, its descendants and what they reaped, and nothing outside', () => {
    expect(treeTicks(procs, 10)).toBe(5 + 100 + 20 + 30 + 7);
    expect(treeTicks(procs, 12)).toBe(37);
  });

  it('counts a tree that is gone as nothing', () => {
    expect(treeTicks(procs, 99)).toBe(0);
    expect(processTree(procs, 99)).toEqual([]);
  });

  it('lists the processes of a tree (what --perf records), and no sibling', () => {
    expect(processTree(procs, 10).sort((a, b) => a - b)).toEqual([10, 11, 12, 13]);
    expect(processTree(procs, 12).sort((a, b) => a - b)).toEqual([12, 13]);
  });

  it('turns tick differences into milliseconds per part, for parts seen twice', () => {
    const perTick = 1000 / ticksPerSecond();
    const ms = cpuMsBetween(
      new Map([
        ['gateway', 100],
        ['k6', 50],
      ]),
      new Map([
        ['gateway', 130],
        ['k6', 60],
        ['late', 5],
      ]),
    );
    expect(ms).toEqual({ gateway: 30 * perTick, k6: 10 * perTick });
  });

  it('reads this process tree from the real /proc: busy work shows up', () => {
    const parts = [{ name: 'self', pid: () => process.pid }];
    const before = snapshot(parts);
    // Spin until the kernel has charged this process 100 ms of CPU (by its own count,
    // so a busy or stolen machine only makes it take longer).
    const start = process.cpuUsage();
    let charged = 0;
    while (charged < 100_000) {
      const d = process.cpuUsage(start);
      charged = d.user + d.system;
    }
    const after = snapshot(parts);
    // Ticks are coarse (10 ms at 100 Hz): allow two of them either side.
    expect(cpuMsBetween(before, after).self).toBeGreaterThanOrEqual(100 - 2 * (1000 / ticksPerSecond()));
  });
});
