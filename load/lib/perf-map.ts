// Node's --perf-basic-prof writes one line per code object V8 creates
// (`/tmp/perf-<pid>.map`: `START SIZE name`, hex) and never says when one is collected.
// Code space freed by the GC is reused, so an old entry (often a large optimized function
// of startup, such as the CommonJS lexer's parseSource) still covers addresses that now
// hold newer code, and `perf script` may name a sample after the dead function. A newer
// entry that overlaps an older one proves the older code is gone: keepLiveEntries drops
// every entry overlapped by any later one, so no address keeps a dead function's name.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

interface Entry {
  start: number;
  end: number;
  line: string;
}

/** The map's lines with every entry overlapped by a later entry removed (order kept). */
export function keepLiveEntries(map: string): string {
  const entries: Entry[] = [];
  for (const line of map.split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) /i.exec(line);
    if (!m) continue;
    const start = Number.parseInt(m[1]!, 16);
    const size = Number.parseInt(m[2]!, 16);
    if (size > 0) entries.push({ start, end: start + size, line });
  }
  // Newest first, with the union of every newer entry's range (dead ones too: a dead
  // newer entry still proves the older code under it was collected before it was made).
  // The union is kept as sorted, disjoint ranges; their ends are sorted as well.
  const union: Array<{ start: number; end: number }> = [];
  const live = new Set<Entry>();
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    let lo = 0;
    let hi = union.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (union[mid]!.end <= e.start) lo = mid + 1;
      else hi = mid;
    }
    if (!(lo < union.length && union[lo]!.start < e.end)) live.add(e);
    let start = e.start;
    let end = e.end;
    let k = lo;
    for (; k < union.length && union[k]!.start <= end; k++) {
      start = Math.min(start, union[k]!.start);
      end = Math.max(end, union[k]!.end);
    }
    union.splice(lo, k - lo, { start, end });
  }
  return entries
    .filter((e) => live.has(e))
    .map((e) => `${e.line}\n`)
    .join('');
}

/** Rewrites each process's /tmp/perf-<pid>.map with only its live entries (before `perf script`). */
export function cleanPerfMaps(pids: readonly number[]): void {
  for (const pid of pids) {
    const path = `/tmp/perf-${pid}.map`;
    let map: string;
    try {
      map = readFileSync(path, 'utf8');
    } catch {
      continue; // not a Node process (none is written), or nothing JIT-compiled
    }
    // A new file renamed over the old: V8 may still append to the one it has open.
    writeFileSync(`${path}.live`, keepLiveEntries(map));
    renameSync(`${path}.live`, path);
  }
}
