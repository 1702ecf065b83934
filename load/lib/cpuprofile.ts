// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by
// package, so the hot path's cost can be read without a profiler UI.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Frame {
  name: string;
  selfMs: number;
  share: number;
}

function where(url: string): string {
  if (url === '') return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  // The compiled gateway: dist/ mirrors src/.
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `src/${url.slice(dist + '/dist/'.length)}`;
  return url.replace(/^file:\/\//, '').replace(/^node:/, 'node:');
}

/** The npm package a module path belongs to (scoped names whole), or undefined outside node_modules. */
export function npmPackage(path: string): string | undefined {
  const nm = path.lastIndexOf('node_modules/');
  if (nm < 0) return undefined;
  const parts = path.slice(nm + 'node_modules/'.length).split('/');
  return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

function packageOf(url: string): string {
  if (url === '') return '(native / V8)';
  const pkg = npmPackage(url);
  if (pkg !== undefined) return pkg;
  if (url.startsWith('node:')) return 'node: core';
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1).split('/').slice(0, 2).join('/');
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `src/${url.slice(dist + '/dist/'.length).split('/')[0]}`;
  return url;
}

/**
 * `window`: only samples taken between `fromEndMs` and `toEndMs` before the profile
 * ended (the process stops right after the measured phase), so start-up and warm-up
 * don't blur the steady state.
 */
export function summarizeProfile(
  file: string,
  top = 25,
  window?: { fromEndMs: number; toEndMs: number },
): { totalMs: number; idleShare: number; frames: Frame[]; packages: Frame[] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let t = p.startTime;
  const from = window ? p.endTime - window.fromEndMs * 1000 : Number.NEGATIVE_INFINITY;
  const to = window ? p.endTime - window.toEndMs * 1000 : Number.POSITIVE_INFINITY;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const total = [...self.values()].reduce((s, v) => s + v, 0);
  const frames = new Map<string, number>();
  const packages = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') idle += us;
    const name = `${cf.functionName || '(anonymous)'} ${where(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`.trim();
    frames.set(name, (frames.get(name) ?? 0) + us);
    const pkg = cf.functionName.startsWith('(') ? cf.functionName : packageOf(cf.url);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
  }
  const rank = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: us / total }));
  return { totalMs: total / 1000, idleShare: idle / total, frames: rank(frames), packages: rank(packages) };
}
