// The decision cache's Redis connections. Three, because they need different rules:
//   hot  lookups on the request path: fail fast (no offline queue, no retries,
//        commandTimeout = REDIS_TIMEOUT_MS), so no request waits on a dead Redis;
//   bg   version bumps, publishes, acks, the poller: same fail-fast, longer budget;
//   sub  the invalidation subscriber (a connection in subscribe mode takes no other commands).
// All reconnect on their own (capped backoff); state is read from `status`.
import type { Socket } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';

export interface RedisLinkOptions {
  url: string;
  /** Budget for one request-path round trip (REDIS_TIMEOUT_MS). */
  hotTimeoutMs: number;
  /** Budget for background commands (bumps, publishes, poller). */
  bgTimeoutMs?: number;
  /** Connection name prefix shown in CLIENT LIST. */
  name: string;
  onError?: (conn: 'hot' | 'bg' | 'sub', err: Error) => void;
}

function baseOptions(name: string, commandTimeout: number): RedisOptions {
  return {
    connectionName: name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout,
    connectTimeout: 1000,
    // Reconnect forever, quickly at first: 50 ms, 100 ms, … capped at 1 s.
    retryStrategy: (times) => Math.min(times * 50, 1000),
    autoResendUnfulfilledCommands: false,
    disableClientInfo: true,
  };
}

export class RedisLink {
  /** Request-path commands: use `batched()`, which writes them in batches. */
  readonly hot: Redis;
  readonly bg: Redis;
  readonly sub: Redis;
  /** True while the hot connection's socket is corked until the end of this tick. */
  private batching = false;

  constructor(opts: RedisLinkOptions) {
    const bgTimeout = opts.bgTimeoutMs ?? Math.max(1000, opts.hotTimeoutMs);
    this.hot = new Redis(opts.url, baseOptions(`${opts.name}:hot`, opts.hotTimeoutMs));
    this.bg = new Redis(opts.url, baseOptions(`${opts.name}:bg`, bgTimeout));
    // The subscriber resubscribes itself (see InvalidationBus), after which it resyncs.
    this.sub = new Redis(opts.url, { ...baseOptions(`${opts.name}:sub`, bgTimeout), autoResubscribe: false });
    for (const [conn, client] of [
      ['hot', this.hot],
      ['bg', this.bg],
      ['sub', this.sub],
    ] as const) {
      // An 'error' listener is required (ioredis logs unhandled ones); state is read from status.
      client.on('error', (err: Error) => opts.onError?.(conn, err));
    }
  }

  /**
   * The hot connection, its socket corked until the end of this tick: the lookups, version
   * reads and fills that concurrent requests issue meanwhile go out in one write. Each write
   * to Redis is a syscall that costs as much as the command.
   * Why not ioredis' enableAutoPipelining, which also batches by tick: it builds a Pipeline
   * per batch, which costs more client CPU per command than corking, for small batches and
   * large ones alike.
   */
  batched(): Redis {
    if (!this.batching) {
      const stream = this.hot.stream as Socket | undefined;
      if (stream !== undefined) {
        stream.cork();
        this.batching = true;
        process.nextTick(RedisLink.endBatch, this, stream);
      }
    }
    return this.hot;
  }

  /** Ends a batch begun by `batched` (a nextTick callback with arguments: no closure per batch). */
  private static endBatch(link: RedisLink, stream: Socket): void {
    link.batching = false;
    stream.uncork();
  }

  get up(): boolean {
    return this.hot.status === 'ready' && this.bg.status === 'ready';
  }

  close(): void {
    this.hot.disconnect();
    this.bg.disconnect();
    this.sub.disconnect();
  }
}
