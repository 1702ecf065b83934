// Where a process's CPU goes, from `perf record -g` samples (`npm run bench -- --perf`).
// Each sample is charged to the nearest JavaScript frame on its stack, by file: a V8
// builtin, inline-cache miss or runtime call made by our code is our code's cost, which
// a V8 .cpuprofile splits off as "(program)" or native time. Kernel samples and garbage
// collection are counted apart, so the gateway and a bare proxy can be compared in full:
// syscalls, the framework, Node's HTTP machinery and our own stages.
// JS frames are named by Node's --perf-basic-prof maps: `JS:*name file:///path:line:col`.

import { npmPackage } from './cpuprofile.js';

export interface Attribution {
  /** Samples read. */
  total: number;
  /** Samples by category: `kernel`, `GC`, `src/<file>`, a package name, `node:<module>`, or `(native)`. */
  byCategory: Map<string, number>;
}

const JS_FRAME = /\bJS:[*~^+]?\S* (?:file:\/\/)?(\S+?):\d+:\d+/;
const GC_FRAME = /Scavenge|MarkCompact|ConcurrentMarking|IncrementalMarking|Heap::|Sweeper|GCTracer/;

/** The category of a JS file path. */
export function categoryOf(path: string): string {
  const pkg = npmPackage(path);
  if (pkg !== undefined) return pkg;
  const src = path.lastIndexOf('/src/');
  if (src >= 0) return path.slice(src + 1);
  // The compiled gateway: dist/ mirrors src/.
  const dist = path.lastIndexOf('/dist/');
  if (dist >= 0) return `src/${path.slice(dist + '/dist/'.length)}`;
  const load = path.lastIndexOf('/load/');
  if (load >= 0) return path.slice(load + 1);
  return path;
}

function categoryOfSample(frames: readonly string[]): string {
  // A collection is charged to GC whoever allocated: a few frames up is where V8 enters it.
  if (frames.slice(0, 12).some((f) => GC_FRAME.test(f))) return 'GC';
  if (frames[0]!.endsWith('([kernel.kallsyms])')) return 'kernel';
  for (const f of frames) {
    const m = JS_FRAME.exec(f);
    if (m) return categoryOf(m[1]!);
  }
  return '(native)';
}

/** Reads `perf script -F comm,tid,ip,sym,dso` output (with call chains): one sample per blank-line-separated block. */
export function attribute(perfScript: string): Attribution {
  const byCategory = new Map<string, number>();
  let total = 0;
  let frames: string[] = [];
  const flush = () => {
    if (frames.length === 0) return;
    total += 1;
    const c = categoryOfSample(frames);
    byCategory.set(c, (byCategory.get(c) ?? 0) + 1);
    frames = [];
  };
  for (const line of perfScript.split('\n')) {
    // A sample's header (comm and tid) starts at column 0; its frames are indented.
    if (line.trim() === '' || !/^\s/.test(line)) flush();
    else frames.push(line.trim());
  }
  flush();
  return { total, byCategory };
}
