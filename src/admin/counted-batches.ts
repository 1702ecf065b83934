// What the gateway's background audits share: events counted in memory per key, and the
// counts written in batches once per `flushMs`, one write at a time, none queued behind
// it. A flood costs a map update per event and one write per key and batch, never a
// database write per request. Memory is bounded: past `maxKeys` distinct keys between two
// writes, further events are dropped and reported.

export interface CountedBatchesOptions<T> {
  /** How long events are counted before they are written (ms). */
  flushMs: number;
  /** Distinct keys held between two writes. */
  maxKeys: number;
  /**
   * Writes one batch. `lost` events were dropped since the last batch (maxKeys reached);
   * `requeue` puts an entry back for the next batch (false when it no longer fits or
   * the batches are closing).
   */
  write(batch: Map<string, T>, lost: number, requeue: (key: string, entry: T) => boolean): Promise<void>;
  /** Folds an entry put back by `requeue` into one counted since. */
  merge(into: T, from: T): void;
}

export interface CountedBatches<T> {
  /** Counts one event of `key`: `bump` the entry counted so far, else `create` it. Never waits. */
  count(key: string, bump: (entry: T) => void, create: () => T): void;
  /** Writes what has been counted so far. */
  flush(): Promise<void>;
  /** Stops the timer and writes what is left; nothing is put back after. */
  close(): Promise<void>;
}

export function createCountedBatches<T>(opts: CountedBatchesOptions<T>): CountedBatches<T> {
  let pending = new Map<string, T>();
  let dropped = 0;
  let closing = false;
  let timer: NodeJS.Timeout | undefined;
  // The write in progress: while it runs, events go on being counted and are written after it.
  let writing: Promise<void> | undefined;

  function schedule(): void {
    if (timer !== undefined || writing !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      void flush();
    }, opts.flushMs);
    timer.unref();
  }

  function requeue(key: string, entry: T): boolean {
    if (closing) return false;
    const hit = pending.get(key);
    if (hit !== undefined) {
      opts.merge(hit, entry);
      return true;
    }
    if (pending.size >= opts.maxKeys) return false;
    pending.set(key, entry);
    return true;
  }

  async function flush(): Promise<void> {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    while (writing !== undefined) await writing;
    if (pending.size === 0 && dropped === 0) return;
    const batch = pending;
    const lost = dropped;
    pending = new Map();
    dropped = 0;
    writing = opts.write(batch, lost, requeue).finally(() => {
      writing = undefined;
      if (pending.size > 0 || dropped > 0) schedule();
    });
    await writing;
  }

  return {
    count(key, bump, create) {
      const hit = pending.get(key);
      if (hit !== undefined) {
        bump(hit);
        return;
      }
      if (pending.size >= opts.maxKeys) {
        dropped++;
        return;
      }
      pending.set(key, create());
      schedule();
    },
    flush,
    async close() {
      closing = true;
      await flush();
    },
  };
}
