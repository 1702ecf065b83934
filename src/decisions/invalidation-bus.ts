// The invalidation bus between replicas (Redis pub/sub).
//
// Channels, all on one subscriber connection per replica:
//   <p>inv        every replica: {t:'inv', id, o: origin, ts, u: [[key, version], …], k: kinds}
//   <p>to:<self>  this replica only: acks for its invalidations, and its own heartbeats
//
// Guarantee: when publish() resolves, every replica that was subscribed has applied
// the new versions, or has stopped serving in-process hits. Why:
//   - PUBLISH returns how many subscribers received the message; publish() waits for
//     that many acks (each sent after the receiver applied the versions);
//   - if some ack doesn't come within ackTimeoutMs, publish() still resolves, but
//     each replica fences itself: in-process hits need a heartbeat of its own that
//     was published less than fenceMs (≤ ackTimeoutMs) ago and has already been
//     received. Redis delivers a connection's messages in publish order, so a replica
//     that has not applied an invalidation has not seen any heartbeat published after
//     it either, and fenceMs after the invalidation it stops trusting its copy;
//   - a replica that is not subscribed (disconnected, reconnecting) serves no
//     in-process hits; on (re)subscribing it drops everything it holds first.
import { randomUUID } from 'node:crypto';
import type { InvalidationKind } from './version-keys.js';
import type { RedisLink } from './redis-link.js';

export interface InvalidationMessage {
  t: 'inv';
  id: string;
  /** Instance id of the publisher (acks go to its channel). */
  o: string;
  /** Date.now() at publish, for the lag metric. */
  ts: number;
  u: Array<[string, number]>;
  k: InvalidationKind[];
  /** 'local' when it came from tuplesChanged/modelChanged, 'readchanges' from the poller. */
  s: 'local' | 'readchanges';
}

interface AckMessage {
  t: 'ack';
  id: string;
}

interface HeartbeatMessage {
  t: 'hb';
  /** performance.now() of this process at publish. */
  at: number;
}

export interface PublishOutcome {
  receivers: number;
  acked: number;
  timedOut: boolean;
}

export interface InvalidationBusOptions {
  link: RedisLink;
  /** Channel prefix, e.g. `tg:<storeId>:`. */
  prefix: string;
  instanceId: string;
  /** Apply versions learnt from another replica (or our own echo). */
  onInvalidation: (msg: InvalidationMessage) => void;
  /** Subscribed again after a gap: drop everything held in process. */
  onResync: () => void;
  onStateChange?: (subscribed: boolean) => void;
  onLag?: (seconds: number) => void;
  onError?: (op: string, err: unknown) => void;
  heartbeatMs: number;
  fenceMs: number;
  ackTimeoutMs: number;
}

interface PendingAck {
  needed: number;
  got: number;
  done: () => void;
}

export class InvalidationBus {
  readonly instanceId: string;
  private readonly link: RedisLink;
  private readonly invChannel: string;
  private readonly selfChannel: string;
  private readonly opts: InvalidationBusOptions;
  private subscribed = false;
  /** performance.now() stamp of the newest own heartbeat received (or of the subscribe). */
  private lastHeartbeatAt = -Infinity;
  private readonly pending = new Map<string, PendingAck>();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(opts: InvalidationBusOptions) {
    if (opts.fenceMs > opts.ackTimeoutMs) throw new Error('fenceMs must not exceed ackTimeoutMs');
    this.opts = opts;
    this.link = opts.link;
    this.instanceId = opts.instanceId;
    this.invChannel = `${opts.prefix}inv`;
    this.selfChannel = `${opts.prefix}to:${opts.instanceId}`;
  }

  start(): void {
    const sub = this.link.sub;
    sub.on('message', (channel: string, raw: string) => this.onMessage(channel, raw));
    sub.on('ready', () => void this.subscribe());
    const lost = () => this.setSubscribed(false);
    sub.on('close', lost);
    sub.on('end', lost);
    sub.on('reconnecting', lost);
    if (sub.status === 'ready') void this.subscribe();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.opts.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /** Hot path: may in-process entries be served? */
  trusted(): boolean {
    return this.subscribed && performance.now() - this.lastHeartbeatAt < this.opts.fenceMs;
  }

  get isSubscribed(): boolean {
    return this.subscribed;
  }

  private setSubscribed(v: boolean): void {
    if (this.subscribed === v) return;
    this.subscribed = v;
    this.opts.onStateChange?.(v);
  }

  private async subscribe(): Promise<void> {
    if (this.closed) return;
    try {
      await this.link.sub.subscribe(this.invChannel, this.selfChannel);
    } catch (err) {
      this.opts.onError?.('subscribe', err);
      return; // the next 'ready' (after reconnect) tries again
    }
    // Messages published from here on reach us; anything before may have been
    // missed, so what we hold is dropped before in-process hits resume.
    this.opts.onResync();
    this.lastHeartbeatAt = performance.now();
    this.setSubscribed(true);
  }

  private heartbeat(): void {
    if (!this.subscribed) return;
    const msg: HeartbeatMessage = { t: 'hb', at: performance.now() };
    this.link.bg.publish(this.selfChannel, JSON.stringify(msg)).catch((err: unknown) => this.opts.onError?.('heartbeat', err));
  }

  private onMessage(channel: string, raw: string): void {
    let msg: InvalidationMessage | AckMessage | HeartbeatMessage;
    try {
      msg = JSON.parse(raw) as typeof msg;
    } catch (err) {
      this.opts.onError?.('decode', err);
      return;
    }
    if (channel === this.invChannel && msg.t === 'inv') {
      this.opts.onInvalidation(msg);
      this.opts.onLag?.(Math.max(0, Date.now() - msg.ts) / 1000);
      const ack: AckMessage = { t: 'ack', id: msg.id };
      this.link.bg.publish(`${this.opts.prefix}to:${msg.o}`, JSON.stringify(ack)).catch((err: unknown) => this.opts.onError?.('ack', err));
    } else if (channel === this.selfChannel && msg.t === 'ack') {
      const p = this.pending.get(msg.id);
      if (p && ++p.got >= p.needed) p.done();
    } else if (channel === this.selfChannel && msg.t === 'hb') {
      if (msg.at > this.lastHeartbeatAt) this.lastHeartbeatAt = msg.at;
    }
  }

  /**
   * Publish new versions and wait until every subscribed replica applied them
   * (or ackTimeoutMs passed: see the fence above). Rejects if Redis refused the publish.
   */
  async publish(updates: Array<[string, number]>, kinds: InvalidationKind[], source: 'local' | 'readchanges', awaitAcks = true): Promise<PublishOutcome> {
    const msg: InvalidationMessage = { t: 'inv', id: randomUUID(), o: this.instanceId, ts: Date.now(), u: updates, k: kinds, s: source };
    let resolveAcks!: () => void;
    const acked = new Promise<void>((r) => (resolveAcks = r));
    const pending: PendingAck = { needed: Number.POSITIVE_INFINITY, got: 0, done: resolveAcks };
    // Registered before publishing: an ack may arrive before PUBLISH's reply does.
    if (awaitAcks) this.pending.set(msg.id, pending);
    let receivers: number;
    try {
      receivers = await this.link.bg.publish(this.invChannel, JSON.stringify(msg));
    } catch (err) {
      this.pending.delete(msg.id);
      this.opts.onError?.('publish', err);
      throw err;
    }
    if (!awaitAcks) return { receivers, acked: 0, timedOut: false };
    pending.needed = receivers;
    if (pending.got >= receivers) pending.done();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      acked.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), this.opts.ackTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.pending.delete(msg.id);
    return { receivers, acked: pending.got, timedOut };
  }

  close(): void {
    this.closed = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    for (const p of this.pending.values()) p.done();
    this.pending.clear();
    this.setSubscribed(false);
  }
}

export function newInstanceId(): string {
  return randomUUID();
}
