// DecisionInvalidator over versions: a tuple change bumps the versions it touches
// (./version-keys.ts bumpsFor: a role grant or revocation only its principal's
// role-version and the node's any-version, a structural change the node's
// structure-version), in Redis and in process, and tells every replica — all before
// tuplesChanged resolves (the admin API awaits it before answering).
import type { DecisionInvalidator, TupleChange } from '../authz/types.js';
import type { InvalidationBus, InvalidationMessage } from './invalidation-bus.js';
import type { DecisionMetrics } from './decision-metrics.js';
import { bumpsFor, globalBump, settingsBump, type Bumps, type VersionKeys } from './version-keys.js';
import type { VersionStore } from './version-store.js';

export interface VersionInvalidatorOptions {
  versions: VersionStore;
  keys: VersionKeys;
  bus?: InvalidationBus;
  metrics: DecisionMetrics;
  /** Called when local state can no longer be trusted (a bump could not be confirmed). */
  onLocalReset: () => void;
}

export class VersionInvalidator implements DecisionInvalidator {
  constructor(private readonly opts: VersionInvalidatorOptions) {}

  tuplesChanged(change: TupleChange): Promise<void> {
    return this.bump(bumpsFor(change, this.opts.keys), 'local', true);
  }

  modelChanged(): Promise<void> {
    return this.bump(globalBump('model'), 'local', true);
  }

  settingsChanged(nodes: readonly string[]): Promise<void> {
    return this.bump(settingsBump(nodes, this.opts.keys), 'local', true);
  }

  /**
   * Bump the versions, apply locally, publish to replicas and (if awaitAcks) wait for them.
   * Rejects when Redis could not take the bump or the publish: the write is then
   * not yet visible to other replicas' in-process layers until the ReadChanges poller
   * (which sees every write in OpenFGA) bumps it again.
   */
  async bump(bumps: Bumps, source: 'local' | 'readchanges', awaitAcks: boolean): Promise<void> {
    const { keys, roles, kinds } = bumps;
    if (keys.length === 0 && roles.length === 0) return;
    const { versions, bus, metrics } = this.opts;
    let updates: Array<[string, number]>;
    try {
      updates = await versions.bump(keys, roles);
    } catch (err) {
      // Our own copy might now be behind OpenFGA with no bump to tell it: forget it.
      this.opts.onLocalReset();
      throw err;
    }
    for (const k of kinds) metrics.invalidation(k, source);
    if (!bus) return;
    const outcome = await bus.publish(updates, kinds, source, awaitAcks);
    if (outcome.timedOut) metrics.ackTimeout();
  }

  /** A message from the bus (another replica's bump, or our own echo). */
  applyRemote(msg: InvalidationMessage): void {
    this.opts.versions.apply(msg.u);
    if (msg.o !== this.opts.bus?.instanceId) {
      for (const k of msg.k) this.opts.metrics.invalidation(k, 'pubsub');
    }
  }
}
