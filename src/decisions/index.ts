// The decision cache: what the gateway and the admin API use.
export { DecisionCache, decisionCacheSettings, type DecisionCacheOptions, type DecisionCacheStatus } from './decision-cache.js';
export { CachingAuthorizer } from './cache.js';
export { VersionInvalidator } from './invalidator.js';
export { decisionKey, canonicalDecisionInput } from './key.js';
export { bumpsFor, VersionKeys, GLOBAL_KEY, type InvalidationKind } from './nodes.js';
export { assertDecisionModel, decisionModelProblems, UnsupportedModelError } from './soundness.js';
export { VersionsUnavailableError } from './versions.js';
export type { DecisionCounts } from './metrics.js';
export type { PollerStatus } from './poller.js';
