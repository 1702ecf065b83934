// The gateway's reloadable route policy: what one snapshot of policy/routes.yaml holds
// (the compiled rules, the match stage over them, the resolved upstreams with their
// proxies built), the stage that reads the snapshot once per request, and the policy's
// /readyz check, metrics and log lines.
//
// Upstream changes are applied: a reloaded file may add, drop or change upstreams
// (URL, timeout, stripPrefix, healthPath). The new targets are resolved exactly as at
// start (UPSTREAM_URLS and the process wiring win over the file) and their proxies
// are built before the swap; an upstream whose resolved target did not change keeps
// its proxy and connection pool. A file that start would refuse (an UPSTREAM_URLS
// entry naming an upstream the file no longer has, an upstream without a URL) is
// refused the same way, and the old policy stays.
import type { MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config.js';
import type { ReadinessCheck } from '../gateway/app.js';
import type { UpstreamRoutes, UpstreamTarget } from '../gateway/forward.js';
import { matchPolicy, parsePolicy, type CompiledPolicy } from '../gateway/policy.js';
import type { GatewayEnv } from '../gateway/types.js';
import { loadModel, type LoadedModel } from '../fga/model.js';
import { PolicyHolder, type ReloadOutcome } from './policy-holder.js';
import { resolveUpstreams, type ResolvedUpstream } from './upstreams.js';

export interface ActivePolicy {
  policy: CompiledPolicy;
  /** The policy's upstreams by name, resolved against the configuration. */
  upstreams: ReadonlyMap<string, ResolvedUpstream>;
  /** The match stage over `policy`. */
  match: MiddlewareHandler<GatewayEnv>;
}

export type PolicyRuntime = PolicyHolder<ActivePolicy>;

const sameTarget = (a: ResolvedUpstream, b: ResolvedUpstream) =>
  a.url === b.url && a.timeoutMs === b.timeoutMs && a.stripPrefix === b.stripPrefix && a.healthPath === b.healthPath;

export interface OpenPolicyOptions {
  config: Pick<Config, 'POLICY_FILE' | 'POLICY_WATCH' | 'POLICY_RELOAD_DEBOUNCE_MS' | 'UPSTREAM_URLS' | 'UPSTREAM_TIMEOUT_MS'>;
  /** Default loadModel() (model.fga), as at start. */
  model?: LoadedModel;
  /** The regions an upstream may declare (the values of data.residency_region). */
  regions?: readonly string[];
  /** The keys of the settings registry, which an upstream's `settings` may list. */
  settingKeys?: readonly string[];
  /** URLs the process wired (the built-in tenant-service, `npm start`'s reports listener). */
  wired: Readonly<Record<string, string | undefined>>;
  routes: UpstreamRoutes;
  log: Logger;
}

/** Loads POLICY_FILE (a bad file throws: the start stops) and watches it. */
export async function openPolicy(opts: OpenPolicyOptions): Promise<PolicyRuntime> {
  const { config, wired, routes, log } = opts;
  const model = opts.model ?? loadModel();
  const holder = await PolicyHolder.open<ActivePolicy>({
    file: config.POLICY_FILE,
    watch: config.POLICY_WATCH,
    debounceMs: config.POLICY_RELOAD_DEBOUNCE_MS,
    onWatchError: (err) => log.error({ err: err.message, file: config.POLICY_FILE }, 'policy file no longer watched: reload with SIGHUP or the admin endpoint'),
    build: (text, file, previous) => {
      const policy = parsePolicy(text, {
        model,
        source: file,
        ...(opts.regions ? { regions: opts.regions } : {}),
        ...(opts.settingKeys ? { settingKeys: opts.settingKeys } : {}),
      });
      const upstreams = new Map<string, ResolvedUpstream>();
      for (const u of resolveUpstreams(policy, config, wired)) {
        const before = previous?.upstreams.get(u.name);
        upstreams.set(u.name, before !== undefined && sameTarget(before, u) ? before : u);
      }
      routes.prepare(upstreams.values());
      return { policy, upstreams, match: matchPolicy(policy) };
    },
  });
  const first = holder.current();
  log.info({ policyVersion: first.version, file: config.POLICY_FILE, rules: first.value.policy.rules.length, watch: config.POLICY_WATCH }, 'policy loaded');
  holder.onChange((o) => logOutcome(log, o));
  return holder;
}

function logOutcome(log: Logger, o: ReloadOutcome<ActivePolicy>): void {
  if (o.result === 'applied') {
    log.info(
      { policyVersion: o.snapshot.version, previousVersion: o.previous.version, trigger: o.trigger, rules: o.snapshot.value.policy.rules.length },
      'policy reloaded',
    );
  } else if (o.result === 'refused') {
    log.error({ policyVersion: o.snapshot.version, trigger: o.trigger, error: o.error }, 'policy reload refused: the previous policy stays in force');
  } else {
    log.debug({ policyVersion: o.snapshot.version, trigger: o.trigger }, 'policy reload: file unchanged');
  }
}

/** The match stage: reads the snapshot once, and the request keeps it through authorize and forward. */
export function policyStage(holder: PolicyRuntime): MiddlewareHandler<GatewayEnv> {
  return (c, next) => {
    const snapshot = holder.current();
    c.set('policyVersion', snapshot.version);
    c.set('upstreams', snapshot.value.upstreams as ReadonlyMap<string, UpstreamTarget>);
    return snapshot.value.match(c, next);
  };
}

/**
 * `policy`: which version is enforced and, after a refused reload, why it was refused.
 * Optional and never failing: a bad edit leaves the old policy in force, and the
 * gateway serving it is as ready as before.
 */
export function policyReadiness(holder: PolicyRuntime): ReadinessCheck {
  return {
    name: 'policy',
    optional: true,
    check: async () => {
      const s = holder.status();
      const enforced = `version ${s.version} enforced since ${s.loadedAt.toISOString()}`;
      return s.lastError ? `${enforced}; last reload (${s.lastError.trigger}, ${s.lastError.at.toISOString()}) refused: ${s.lastError.message}` : enforced;
    },
  };
}

/** tiergate_policy_reloads_total{result} and tiergate_policy_info{version}. */
export function policyMetrics(registry: Registry, holder: PolicyRuntime): void {
  const reloads = new Counter({
    name: 'tiergate_policy_reloads_total',
    help: 'Route policy reloads: applied (a new version is enforced), unchanged (same content), refused (invalid: the previous version stays)',
    labelNames: ['result'],
    registers: [registry],
  });
  for (const r of ['applied', 'unchanged', 'refused']) reloads.labels(r).inc(0);
  const info = new Gauge({
    name: 'tiergate_policy_info',
    help: 'The route policy version (a hash of the file) this process enforces: 1 for it; summed over a cluster, the processes enforcing each version',
    labelNames: ['version'],
    registers: [registry],
    aggregator: 'sum',
  });
  info.labels(holder.current().version).set(1);
  holder.onChange((o) => {
    reloads.labels(o.result).inc();
    if (o.result === 'applied') {
      info.remove(o.previous.version);
      info.labels(o.snapshot.version).set(1);
    }
  });
}

/** The upstream /readyz checks of the policy in force (upstreams come and go with reloads). */
export function currentUpstreams(holder: PolicyRuntime): ResolvedUpstream[] {
  return [...holder.current().value.upstreams.values()];
}
