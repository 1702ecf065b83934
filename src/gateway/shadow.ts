// Shadow (candidate) route policy: a second policy file, checked at start exactly
// like the enforced one, that is evaluated beside it and never enforced.
//
// The stage wraps the match-policy stage. With shadow off it is not installed at all
// (the pipeline is the same array of stages as without this module). With shadow on,
// a request the sampler does not pick costs one `Math.random() < rate` test. A picked
// request runs the enforced stages (match, authorize, forward or refuse) untouched;
// once they are done and the answer is on its way, the candidate is evaluated on a
// later turn of the event loop (setImmediate):
//
//   the candidate policy matched on the same canonical request (method + segments)
//   ──► its decision through the same Authorizer (a normal check: it shares the
//       decision cache) ──► compared with what the enforced policy decided.
//
// Outcomes are allow, deny, no-route (404), method-not-allowed (405) and invalid-id
// (400). A divergence is one of:
//   allow_to_deny   enforced allowed, the candidate would deny (403)
//   deny_to_allow   enforced denied (403), the candidate would allow
//   rule_changed    same allow/deny outcome from another rule, permission or object
//   route_changed   any difference where one side did not match a rule (404, 405
//                   or 400 against anything else, or 405s with other Allow lists)
// Each is counted in tiergate_shadow_divergences_total{kind,rule,candidate_rule}: rule
// ids come from the two files (or "-" for no rule), so the label sets are bounded by
// them. Each is logged (warn) with the request id, and kept in the summary with a few
// recent examples (request id, subject, method, path: never a token or a body).
//
// Nothing the candidate does reaches the answer: its work starts after the enforced
// stages returned, its errors (an engine that fails, anything thrown) are counted as
// tiergate_shadow_evaluations_total{result="error"} and logged, never thrown. A request
// the enforced engine could not decide (503) is counted as `skipped`: there is nothing
// to compare with.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Context, MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { loadModel, type LoadedModel } from '../fga/model.js';
import type { Authorizer } from '../authz/types.js';
import { decisionRequest, parsePolicy, type CompiledPolicy, type MatchResult } from './policy.js';
import type { GatewayEnv } from './types.js';

export type ShadowOutcome = 'allow' | 'deny' | 'no-route' | 'method-not-allowed' | 'invalid-id' | 'unavailable';
export type DivergenceKind = 'allow_to_deny' | 'deny_to_allow' | 'rule_changed' | 'route_changed';
export const DIVERGENCE_KINDS: readonly DivergenceKind[] = ['allow_to_deny', 'deny_to_allow', 'rule_changed', 'route_changed'];

/** The label value for "no rule matched". */
export const NO_RULE = '-';
/** Recent examples kept per divergence (kind, rule, candidate rule). */
export const EXAMPLES_PER_DIVERGENCE = 5;

/** One side's answer for one request. */
export interface SideDecision {
  outcome: ShadowOutcome;
  /** The matched rule's id, or "-" when no rule matched. */
  rule: string;
  permission?: string;
  object?: string;
  /** The Allow list of a 405. */
  allow?: string;
}

export interface DivergenceExample {
  requestId: string;
  at: string;
  subject: string;
  method: string;
  path: string;
  enforced: SideDecision;
  candidate: SideDecision;
}

export interface DivergenceSummary {
  kind: DivergenceKind;
  rule: string;
  candidateRule: string;
  count: number;
  firstAt: string;
  lastAt: string;
  /** Newest first, at most EXAMPLES_PER_DIVERGENCE. */
  examples: DivergenceExample[];
}

export interface ShadowSummary {
  enabled: boolean;
  enforced: { file: string; version: string };
  candidate?: { file: string; version: string };
  sampleRate: number;
  since: string;
  /** This process only (each gateway worker and replica keeps its own; the metrics add them up). */
  pid: number;
  requestsEvaluated: number;
  matching: number;
  diverging: number;
  skipped: number;
  errors: number;
  byKind: Record<DivergenceKind, number>;
  divergences: DivergenceSummary[];
}

/** A short content hash of a policy file: its version in logs and the summary. */
export function policyVersion(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/** The version of the policy file at `file` now; `unknown` when it cannot be read. */
export function fileVersion(file: string): string {
  try {
    return policyVersion(readFileSync(file, 'utf8'));
  } catch {
    return 'unknown';
  }
}

/** The enforced or candidate policy with the version of the text it was compiled from. */
export interface VersionedPolicy {
  policy: CompiledPolicy;
  file: string;
  version: string;
}

/** Read, check against the model and compile a policy file; a bad file throws PolicyError (file:line:col). */
export function loadVersionedPolicy(file: string, model: LoadedModel = loadModel()): VersionedPolicy {
  const text = readFileSync(file, 'utf8');
  return { policy: parsePolicy(text, { model, source: file }), file, version: policyVersion(text) };
}

/** What one side decided, from a match result and (when matched) the engine's answer. */
function sideOf(match: MatchResult, allowed: boolean | undefined): SideDecision {
  switch (match.kind) {
    case 'matched':
      return {
        outcome: allowed === undefined ? 'unavailable' : allowed ? 'allow' : 'deny',
        rule: match.rule.id,
        permission: match.rule.permission,
        object: decisionRequest(match.rule, match.params).object,
      };
    case 'no-route':
      return { outcome: 'no-route', rule: NO_RULE };
    case 'method-not-allowed':
      return { outcome: 'method-not-allowed', rule: NO_RULE, allow: match.allow };
    case 'invalid-param':
      return { outcome: 'invalid-id', rule: match.rule.id };
    case 'ambiguous':
      // Refused at load; never an answer to compare.
      return { outcome: 'unavailable', rule: NO_RULE };
  }
}

/** The divergence between the enforced and the candidate decision, or undefined when they agree. */
export function compareDecisions(enforced: SideDecision, candidate: SideDecision): DivergenceKind | undefined {
  const decided = (o: ShadowOutcome) => o === 'allow' || o === 'deny';
  if (decided(enforced.outcome) && decided(candidate.outcome)) {
    if (enforced.outcome === 'allow' && candidate.outcome === 'deny') return 'allow_to_deny';
    if (enforced.outcome === 'deny' && candidate.outcome === 'allow') return 'deny_to_allow';
    const same = enforced.rule === candidate.rule && enforced.permission === candidate.permission && enforced.object === candidate.object;
    return same ? undefined : 'rule_changed';
  }
  if (enforced.outcome !== candidate.outcome) return 'route_changed';
  if (enforced.outcome === 'method-not-allowed' && enforced.allow !== candidate.allow) return 'route_changed';
  if (enforced.outcome === 'invalid-id' && enforced.rule !== candidate.rule) return 'route_changed';
  return undefined;
}

export interface ShadowOptions {
  /** The enforced policy, or how to read the one in force now (it changes on a reload). */
  enforced: VersionedPolicy | (() => VersionedPolicy);
  candidate: VersionedPolicy;
  /** 0..1: the share of requests evaluated against the candidate. */
  sampleRate: number;
  authorizer: Authorizer;
  registry: Registry;
  log: Logger;
  /** The sampler's random source (default Math.random). */
  random?: () => number;
}

interface Entry extends DivergenceSummary {
  examples: DivergenceExample[];
}

export class ShadowPolicy {
  private readonly enforced: () => VersionedPolicy;
  private readonly candidate: VersionedPolicy;
  readonly sampleRate: number;
  private readonly authorizer: Authorizer;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly evaluations: Counter<'result'>;
  private readonly divergenceCounter: Counter<'kind' | 'rule' | 'candidate_rule'>;
  private readonly since = new Date().toISOString();
  private readonly counts = { requestsEvaluated: 0, matching: 0, diverging: 0, skipped: 0, errors: 0 };
  private readonly entries = new Map<string, Entry>();
  /** Evaluations started and not yet settled (tests and close() wait for them). */
  private readonly pending = new Set<Promise<void>>();

  constructor(opts: ShadowOptions) {
    if (!(opts.sampleRate >= 0 && opts.sampleRate <= 1)) throw new RangeError('sampleRate must be within 0..1');
    const enforced = opts.enforced;
    this.enforced = typeof enforced === 'function' ? enforced : () => enforced;
    this.candidate = opts.candidate;
    this.sampleRate = opts.sampleRate;
    this.authorizer = opts.authorizer;
    this.log = opts.log;
    this.random = opts.random ?? Math.random;
    this.evaluations = new Counter({
      name: 'tiergate_shadow_evaluations_total',
      help: 'Requests evaluated against the shadow (candidate) route policy, by result: match (same decision), divergent, skipped (the enforced engine could not decide), error',
      labelNames: ['result'],
      registers: [opts.registry],
    });
    this.divergenceCounter = new Counter({
      name: 'tiergate_shadow_divergences_total',
      help: 'Requests where the shadow policy would have decided otherwise, by kind (allow_to_deny, deny_to_allow, rule_changed, route_changed), enforced rule and candidate rule ("-": no rule matched)',
      labelNames: ['kind', 'rule', 'candidate_rule'],
      registers: [opts.registry],
    });
    for (const result of ['match', 'divergent', 'skipped', 'error']) this.evaluations.labels(result).inc(0);
  }

  /**
   * Wraps the enforced match-policy stage: the enforced stages run exactly as without
   * it; a sampled request is evaluated against the candidate after they return.
   */
  wrap(matchStage: MiddlewareHandler<GatewayEnv>): MiddlewareHandler<GatewayEnv> {
    const rate = this.sampleRate;
    if (rate === 0) return matchStage;
    return async (c, next) => {
      if (rate < 1 && !(this.random() < rate)) return matchStage(c, next);
      try {
        return await matchStage(c, next);
      } finally {
        this.schedule(c);
      }
    };
  }

  /** Reads what the enforced stages left on the context now; evaluates later, off the response path. */
  private schedule(c: Context<GatewayEnv>): void {
    const canonical = c.get('canonical');
    const principal = c.get('principal');
    if (canonical === undefined || principal === undefined) return;
    const decision = c.get('decision');
    const facts = {
      enforced: this.enforced(),
      requestId: c.get('requestId'),
      subject: principal.subject,
      method: canonical.method,
      path: canonical.path,
      segments: canonical.segments,
      enforcedAllowed: decision?.allowed,
    };
    const run = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.evaluate(facts))
      .catch((err: unknown) => {
        this.counts.errors++;
        this.evaluations.labels('error').inc();
        this.log.warn({ requestId: facts.requestId, err: err instanceof Error ? err.message : String(err) }, 'shadow policy evaluation failed');
      })
      .finally(() => this.pending.delete(run));
    this.pending.add(run);
  }

  private async evaluate(f: {
    enforced: VersionedPolicy;
    requestId: string;
    subject: string;
    method: string;
    path: string;
    segments: readonly string[];
    enforcedAllowed: boolean | undefined;
  }): Promise<void> {
    const enforced = sideOf(f.enforced.policy.match(f.method, f.segments), f.enforcedAllowed);
    if (enforced.outcome === 'unavailable') {
      this.counts.skipped++;
      this.evaluations.labels('skipped').inc();
      return;
    }
    const match = this.candidate.policy.match(f.method, f.segments);
    let allowed: boolean | undefined;
    if (match.kind === 'matched') {
      const q = decisionRequest(match.rule, match.params);
      const decision = await this.authorizer.check({
        user: f.subject,
        relation: q.permission,
        object: q.object,
        contextualTuples: q.contextualTuples,
        scope: q.scope,
        consistency: q.consistency,
      });
      allowed = decision.allowed === true;
    }
    const candidate = sideOf(match, allowed);
    this.counts.requestsEvaluated++;
    const kind = compareDecisions(enforced, candidate);
    if (kind === undefined) {
      this.counts.matching++;
      this.evaluations.labels('match').inc();
      return;
    }
    this.counts.diverging++;
    this.evaluations.labels('divergent').inc();
    this.divergenceCounter.labels(kind, enforced.rule, candidate.rule).inc();
    const example: DivergenceExample = { requestId: f.requestId, at: new Date().toISOString(), subject: f.subject, method: f.method, path: f.path, enforced, candidate };
    this.record(kind, example);
    this.log.warn(
      { requestId: f.requestId, kind, rule: enforced.rule, candidateRule: candidate.rule, enforced: enforced.outcome, candidate: candidate.outcome, candidateVersion: this.candidate.version },
      'shadow policy diverges',
    );
  }

  private record(kind: DivergenceKind, example: DivergenceExample): void {
    const key = `${kind}\u0000${example.enforced.rule}\u0000${example.candidate.rule}`;
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { kind, rule: example.enforced.rule, candidateRule: example.candidate.rule, count: 0, firstAt: example.at, lastAt: example.at, examples: [] };
      this.entries.set(key, entry);
    }
    entry.count++;
    entry.lastAt = example.at;
    entry.examples.unshift(example);
    if (entry.examples.length > EXAMPLES_PER_DIVERGENCE) entry.examples.pop();
  }

  /** Resolves once every evaluation started so far has settled. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  summary(): ShadowSummary {
    const byKind = Object.fromEntries(DIVERGENCE_KINDS.map((k) => [k, 0])) as Record<DivergenceKind, number>;
    const divergences = [...this.entries.values()]
      .map((e) => ({ ...e, examples: e.examples.map((x) => ({ ...x })) }))
      .sort((a, b) => b.count - a.count || a.kind.localeCompare(b.kind) || a.rule.localeCompare(b.rule) || a.candidateRule.localeCompare(b.candidateRule));
    for (const d of divergences) byKind[d.kind] += d.count;
    return {
      enabled: true,
      enforced: (({ file, version }) => ({ file, version }))(this.enforced()),
      candidate: { file: this.candidate.file, version: this.candidate.version },
      sampleRate: this.sampleRate,
      since: this.since,
      pid: process.pid,
      ...this.counts,
      byKind,
      divergences,
    };
  }
}

/** The summary when no shadow policy is configured. */
export function shadowOffSummary(enforced: { file: string; version: string }, since: string): ShadowSummary {
  return {
    enabled: false,
    enforced,
    sampleRate: 0,
    since,
    pid: process.pid,
    requestsEvaluated: 0,
    matching: 0,
    diverging: 0,
    skipped: 0,
    errors: 0,
    byKind: { allow_to_deny: 0, deny_to_allow: 0, rule_changed: 0, route_changed: 0 },
    divergences: [],
  };
}
