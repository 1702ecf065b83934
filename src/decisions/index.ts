// The decision cache: what the gateway and the admin API use.
export { DecisionCache, decisionCacheSettings, type DecisionCacheOptions, type DecisionCacheStatus } from './decision-cache.js';
export { CachingAuthorizer } from './caching-authorizer.js';
export { VersionInvalidator } from './version-invalidator.js';
export { decisionKey, canonicalDecisionInput } from './decision-key.js';
export { bumpsFor, VersionKeys, GLOBAL_KEY, type InvalidationKind } from './version-keys.js';
export { assertDecisionModel, decisionModelProblems, UnsupportedModelError } from './soundness.js';
export { VersionsUnavailableError } from './version-store.js';
export type { DecisionCounts } from './decision-metrics.js';
export type { PollerStatus } from './read-changes-poller.js';
