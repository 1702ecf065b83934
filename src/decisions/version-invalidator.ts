// DecisionInvalidator over versions: a tuple change bumps the versions it touches
// (./version-keys.ts bumpsFor: a role grant or revocation only its principal's
// role-version and the node's any-version, a structural change the node's
// structure-version), in Redis and in process, and tells every replica — all before
// tuplesChanged resolves (the admin API awaits it before answering). A write that was
// announced first is marked as bumped once that succeeded, so the ReadChanges poller does
// not bump it again (./own-writes.ts).
import { randomUUID } from 'node:crypto';
import type { DecisionInvalidator, TupleChange, WriteAnnouncement } from '../authz/types.js';
import type { InvalidationBus, InvalidationMessage } from './invalidation-bus.js';
import type { DecisionMetrics } from './decision-metrics.js';
import { bumpsFor, globalBump, settingsBump, type Bumps, type VersionKeys } from './version-keys.js';
import type { VersionStore } from './version-store.js';
import type { OwnWriteMarkers } from './own-writes.js';

export interface VersionInvalidatorOptions {
  versions: VersionStore;
  keys: VersionKeys;
  bus?: InvalidationBus;
  metrics: DecisionMetrics;
  /** Called when local state can no longer be trusted (a bump could not be confirmed). */
  onLocalReset: () => void;
  /** Where own writes are marked for the ReadChanges poller; absent = never marked (the poller bumps them again). */
  ownWrites?: OwnWriteMarkers;
  /** A marker operation failed (the write is then bumped again by the poller). */
  onMarkerError?: (op: 'own_write_announce' | 'own_write_confirm', err: unknown) => void;
}

export class VersionInvalidator implements DecisionInvalidator {
  constructor(private readonly opts: VersionInvalidatorOptions) {}

  async announce(change: TupleChange): Promise<WriteAnnouncement | undefined> {
    const markers = this.opts.ownWrites;
    if (!markers) return undefined;
    const id = randomUUID();
    try {
      await markers.announce(change, id);
      return { id };
    } catch (err) {
      // Perhaps set, perhaps set later: never confirmed, such a marker never skips a bump.
      this.opts.onMarkerError?.('own_write_announce', err);
      return undefined;
    }
  }

  async tuplesChanged(change: TupleChange, announced?: WriteAnnouncement): Promise<void> {
    const complete = await this.bump(bumpsFor(change, this.opts.keys), 'local', true);
    // Only a bump every replica acknowledged stands in for the poller's.
    if (!announced || !complete || !this.opts.ownWrites) return;
    try {
      await this.opts.ownWrites.confirm(change, announced.id);
    } catch (err) {
      this.opts.onMarkerError?.('own_write_confirm', err);
    }
  }

  async modelChanged(): Promise<void> {
    await this.bump(globalBump('model'), 'local', true);
  }

  async settingsChanged(nodes: readonly string[]): Promise<void> {
    await this.bump(settingsBump(nodes, this.opts.keys), 'local', true);
  }

  /**
   * Bump the versions, apply locally, publish to replicas and (if awaitAcks) wait for them.
   * Rejects when Redis could not take the bump or the publish: the write is then
   * not yet visible to other replicas' in-process layers until the ReadChanges poller
   * (which sees every write in OpenFGA) bumps it again.
   * Resolves true when the bump reached every replica: applied in Redis (or the local store)
   * and, when awaited, acknowledged by every subscriber in time; false after an ack time-out.
   */
  async bump(bumps: Bumps, source: 'local' | 'readchanges', awaitAcks: boolean): Promise<boolean> {
    const { keys, roles, kinds } = bumps;
    if (keys.length === 0 && roles.length === 0) return true;
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
    if (!bus) return true;
    const outcome = await bus.publish(updates, kinds, source, awaitAcks);
    if (outcome.timedOut) metrics.ackTimeout();
    return !outcome.timedOut;
  }

  /** A message from the bus (another replica's bump, or our own echo). */
  applyRemote(msg: InvalidationMessage): void {
    this.opts.versions.apply(msg.u);
    if (msg.o !== this.opts.bus?.instanceId) {
      for (const k of msg.k) this.opts.metrics.invalidation(k, 'pubsub');
    }
  }
}
