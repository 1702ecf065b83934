// DecisionInvalidator over versions: a tuple change bumps the versions of the nodes it
// touches (./nodes.ts), in Redis and in process, and tells every replica — all before
// tuplesChanged resolves (the admin API awaits it before answering).
import type { DecisionInvalidator, TupleChange } from '../gateway/types.js';
import type { InvalidationBus, InvalidationMessage } from './bus.js';
import type { DecisionMetrics } from './metrics.js';
import { bumpsFor, GLOBAL_KEY, type InvalidationKind, type VersionKeys } from './nodes.js';
import type { VersionStore } from './versions.js';

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
    const { keys, kinds } = bumpsFor(change, this.opts.keys);
    return this.bump(keys, kinds, 'local', true);
  }

  modelChanged(): Promise<void> {
    return this.bump([GLOBAL_KEY], ['model'], 'local', true);
  }

  /**
   * Bump `keys`, apply locally, publish to replicas and (if awaitAcks) wait for them.
   * Rejects when Redis could not take the bump or the publish: the write is then
   * not yet visible to other replicas' in-process layers until the ReadChanges poller
   * (which sees every write in OpenFGA) bumps it again.
   */
  async bump(keys: string[], kinds: InvalidationKind[], source: 'local' | 'readchanges', awaitAcks: boolean): Promise<void> {
    if (keys.length === 0) return;
    const { versions, bus, metrics } = this.opts;
    let updates: Array<[string, number]>;
    try {
      updates = await versions.bump(keys);
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
