// The upstream services of a running gateway: the route policy's upstreams with their
// deploy-time URLs, and a /readyz check for each.
//
// A URL comes from, first to last: UPSTREAM_URLS (the operator), the process wiring
// (TENANT_SERVICE_URL or the tenant service `npm start` runs, for the built-in
// tenant-service; `npm start`'s reports listener), the policy file's default.
// An upstream that declares regions is one target per region, `<name>@<region>`
// (its UPSTREAM_URLS key, metrics label and /readyz check); the process wiring
// never stands for a regional target, and `name=` alone does not override one.
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import type { ReadinessCheck } from '../gateway/app.js';
import type { UpstreamTarget } from '../gateway/forward.js';
import type { CompiledPolicy } from '../gateway/policy.js';
import { regionalTargetName, TENANT_SERVICE_UPSTREAM, upstreamUrlProblem } from '../shared/upstream-url.js';

export interface ResolvedUpstream extends UpstreamTarget {
  healthPath: string;
}

/** Every target name UPSTREAM_URLS may set: plain upstreams by name, regional ones as `<name>@<region>`. */
function targetNames(policy: CompiledPolicy): string[] {
  return [...policy.upstreams.values()].flatMap((u) => (u.regions === undefined ? [u.name] : [...u.regions.keys()].map((r) => regionalTargetName(u.name, r))));
}

/** How long a /readyz probe of one upstream may take. */
const PROBE_TIMEOUT_MS = 1000;

/**
 * Every upstream some rule uses, with its URL and timeout. Throws ConfigError when
 * UPSTREAM_URLS names an upstream the policy does not use, or an upstream has no URL.
 */
export function resolveUpstreams(
  policy: CompiledPolicy,
  config: Pick<Config, 'UPSTREAM_URLS' | 'UPSTREAM_TIMEOUT_MS'>,
  wired: Readonly<Record<string, string | undefined>>,
): ResolvedUpstream[] {
  const problems: string[] = [];
  const overrides = config.UPSTREAM_URLS ?? {};
  const targets = targetNames(policy);
  const unknown = Object.keys(overrides).filter((name) => !targets.includes(name));
  if (unknown.length > 0) {
    problems.push(`UPSTREAM_URLS: ${unknown.map((n) => `"${n}"`).join(', ')} not an upstream of ${policy.source} (its upstreams: ${targets.join(', ')})`);
  }
  const out: ResolvedUpstream[] = [];
  for (const u of policy.upstreams.values()) {
    if (u.regions !== undefined) {
      for (const [region, fileUrl] of u.regions) {
        const name = regionalTargetName(u.name, region);
        const url = overrides[name] ?? fileUrl;
        const problem = upstreamUrlProblem(url);
        if (problem !== undefined) problems.push(`upstream ${name}: ${problem}`);
        else out.push({ name, url, timeoutMs: u.timeoutMs ?? config.UPSTREAM_TIMEOUT_MS, stripPrefix: u.stripPrefix, healthPath: u.healthPath });
      }
      continue;
    }
    const url = overrides[u.name] ?? wired[u.name] ?? u.url;
    const problem = url === undefined ? 'has no URL' : upstreamUrlProblem(url);
    if (problem !== undefined || url === undefined) {
      problems.push(u.name === TENANT_SERVICE_UPSTREAM ? `TENANT_SERVICE_URL: ${problem}` : `upstream ${u.name}: ${problem}`);
      continue;
    }
    out.push({ name: u.name, url, timeoutMs: u.timeoutMs ?? config.UPSTREAM_TIMEOUT_MS, stripPrefix: u.stripPrefix, healthPath: u.healthPath });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}

/**
 * One optional check per upstream, `upstream:<name>`: GET its health path, ready on 2xx.
 * Optional: an upstream that is down shows in /readyz's detail (and its rules answer 502),
 * but the gateway stays ready, so the load balancer keeps sending the other upstreams'
 * requests. The detail names the status or the error code, never the URL.
 */
export function upstreamReadiness(upstreams: readonly ResolvedUpstream[]): ReadinessCheck[] {
  return upstreams.map((u) => ({
    name: `upstream:${u.name}`,
    optional: true,
    check: async () => {
      let res: Response;
      try {
        res = await fetch(new URL(u.healthPath, u.url), { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      } catch (err) {
        const cause = (err as { cause?: { code?: unknown } }).cause?.code;
        const name = err instanceof Error ? err.name : '';
        throw new Error(name === 'TimeoutError' ? `${u.healthPath}: no answer within ${PROBE_TIMEOUT_MS} ms` : `${u.healthPath}: unreachable${typeof cause === 'string' ? ` (${cause})` : ''}`, {
          cause: err,
        });
      }
      await res.body?.cancel();
      if (!res.ok) throw new Error(`${u.healthPath} answered ${res.status}`);
      return `${u.healthPath} answered ${res.status}`;
    },
  }));
}
