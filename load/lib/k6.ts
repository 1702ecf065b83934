// Runs one k6 script (built from tools/k6 into .tools/bin by ensureTool) and reads
// the JSON summary its handleSummary wrote.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../src/shared/repo-root.js';

export interface K6Result {
  requests: number;
  /** Requests per second over the run (k6's own clock). */
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** http_req_failed: statuses the script did not expect, and transport errors. */
  failed: number;
  /** Arrivals k6 could not start for want of a free VU (open model only). */
  dropped: number;
  /** Custom counters the script added (e.g. revoked_served). */
  counters: Record<string, number>;
  durationS: number;
  /** The first lines the script logged with console.warn (load/k6/common.js `explain`): what failed requests were. */
  warnings: string[];
}

interface Metric {
  type: string;
  values: Record<string, number>;
}

const LOGFMT_FIELD = /(\w+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))/g;

/**
 * A warning k6 logged, as `msg (error)`, or undefined for any other line. k6 writes one
 * per failed request ("Request Failed", with Go's error) and one per console.warn of the
 * scripts, in logfmt: `time="…" level=warning msg="…" error="…" source=console`.
 */
export function k6Warning(line: string): string | undefined {
  const fields = new Map<string, string>();
  for (const m of line.matchAll(LOGFMT_FIELD)) fields.set(m[1]!, (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1'));
  if (fields.get('level') !== 'warning' || !fields.has('msg')) return undefined;
  const error = fields.get('error');
  return error === undefined ? fields.get('msg') : `${fields.get('msg')} (${error})`;
}

export async function runK6(
  k6: string,
  script: string,
  env: Record<string, string>,
  data: unknown,
  workDir: string,
  tag: string,
  timeoutS: number,
): Promise<K6Result> {
  const dataFile = join(workDir, `${tag}.data.json`);
  const summaryFile = join(workDir, `${tag}.summary.json`);
  writeFileSync(dataFile, JSON.stringify(data));
  const args = ['run', '--no-usage-report', '--quiet', '--no-color'];
  for (const [k, v] of Object.entries({ ...env, BENCH_DATA: dataFile, SUMMARY_OUT: summaryFile })) args.push('-e', `${k}=${v}`);
  args.push(join(REPO_ROOT, 'load', 'k6', script));
  const warnings: string[] = [];
  const { code, tail } = await new Promise<{ code: number | null; tail: string }>((resolve) => {
    const child = spawn(k6, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, K6_NO_USAGE_REPORT: 'true' } });
    let out = '';
    // Each stream cut into lines of its own: a chunk may end mid-line.
    const keep = () => {
      let partial = '';
      return (b: Buffer) => {
        const text = b.toString();
        out = (out + text).slice(-4000);
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const warning = k6Warning(line);
          if (warning !== undefined && warnings.length < 10) warnings.push(warning);
        }
      };
    };
    child.stdout.on('data', keep());
    child.stderr.on('data', keep());
    // Bounded: a run that overstays its duration by far is stopped.
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve({ code: c, tail: out });
    });
  });
  if (code !== 0) throw new Error(`k6 ${script} (${tag}) exited with ${code}:\n${tail}`);
  const summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as { metrics: Record<string, Metric>; state: { testRunDurationMs: number } };
  const m = summary.metrics;
  const d = m.http_req_duration?.values ?? {};
  const count = m.http_reqs?.values.count ?? 0;
  const counters: Record<string, number> = {};
  for (const [name, metric] of Object.entries(m)) {
    if (metric.type === 'counter' && !name.startsWith('http_') && !['iterations', 'data_sent', 'data_received', 'dropped_iterations'].includes(name)) {
      counters[name] = metric.values.count ?? 0;
    }
  }
  return {
    requests: count,
    rps: m.http_reqs?.values.rate ?? 0,
    p50: d.med ?? Number.NaN,
    p95: d['p(95)'] ?? Number.NaN,
    p99: d['p(99)'] ?? Number.NaN,
    max: d.max ?? Number.NaN,
    failed: m.http_req_failed?.values.passes ?? 0,
    dropped: m.dropped_iterations?.values.count ?? 0,
    counters,
    durationS: summary.state.testRunDurationMs / 1000,
    warnings,
  };
}
