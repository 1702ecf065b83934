// A policy file that can be replaced while the process runs: one reference to an
// immutable compiled snapshot, swapped only after the new file was read, built and
// checked in full. Readers call current() once per request and keep what they got,
// so a request in flight finishes under the snapshot it started with.
//
// Triggers: a change in the file's directory (watched, debounced), and reload()
// (SIGHUP, the admin endpoint, a message from another process). Watching the
// directory rather than the file sees editors that write a new file and rename it
// over the old one, and Kubernetes ConfigMap volumes, whose files are symlinks
// through a `..data` symlink that is swapped. Any event in the directory schedules a
// reload; a file whose content hash did not change is not built again.
//
// A file that does not build leaves the current snapshot in force; the reason is kept
// for status() and handed to the listeners. Reloads run one at a time; a trigger
// during a reload runs one more once it ends, so the last change is never missed.
//
// Generic over what the file compiles to (`build`), so any policy-like file (the
// route policy, a candidate policy evaluated beside it) is reloaded the same way.
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { policyVersion } from '../gateway/shadow.js';

// The policy version (a short hash of the file's content) in logs, metrics and the audit.
export { policyVersion };

export interface PolicySnapshot<T> {
  /** policyVersion of the file's content. */
  readonly version: string;
  readonly value: T;
  readonly loadedAt: Date;
}

/** What started a reload (logs, the audit, metrics). */
export type ReloadTrigger = 'file' | 'signal' | 'admin' | 'peer';

export type ReloadOutcome<T> =
  | { result: 'applied'; snapshot: PolicySnapshot<T>; previous: PolicySnapshot<T>; trigger: ReloadTrigger }
  | { result: 'unchanged'; snapshot: PolicySnapshot<T>; trigger: ReloadTrigger }
  /** The file did not read or build: `snapshot` (the one in force) stays. */
  | { result: 'refused'; snapshot: PolicySnapshot<T>; error: string; trigger: ReloadTrigger };

export interface PolicyHolderStatus {
  version: string;
  loadedAt: Date;
  /** The last refused reload, until a later one is applied or finds the file unchanged. */
  lastError?: { message: string; at: Date; trigger: ReloadTrigger };
}

export interface PolicyHolderOptions<T> {
  file: string;
  /**
   * Builds a snapshot's value from the file's text; throws (with a message naming
   * file:line:col where it can) to refuse it. Everything the snapshot needs is
   * built here, before the swap. `previous` lets it reuse parts that did not change.
   */
  build: (text: string, file: string, previous: T | undefined) => T;
  /** Watch the file's directory (default true). */
  watch?: boolean;
  /** Quiet time after the last event in the directory before reloading (default 250 ms). */
  debounceMs?: number;
  /** Told when watching fails (the directory vanished, too many watchers): reload() still works. */
  onWatchError?: (err: Error) => void;
}

export class PolicyHolder<T> {
  private snapshot: PolicySnapshot<T>;
  private lastError: PolicyHolderStatus['lastError'];
  private readonly listeners = new Set<(outcome: ReloadOutcome<T>) => void>();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ReloadOutcome<T>> | undefined;
  private pending: { trigger: ReloadTrigger; promise: Promise<ReloadOutcome<T>>; resolve: (o: ReloadOutcome<T>) => void } | undefined;
  private closed = false;

  private constructor(
    private readonly opts: PolicyHolderOptions<T>,
    first: PolicySnapshot<T>,
  ) {
    this.snapshot = first;
  }

  /** Reads and builds the file (a failure throws: nothing to keep in force yet), then starts watching. */
  static async open<T>(opts: PolicyHolderOptions<T>): Promise<PolicyHolder<T>> {
    const text = await readFile(opts.file, 'utf8');
    const holder = new PolicyHolder(opts, { version: policyVersion(text), value: opts.build(text, opts.file, undefined), loadedAt: new Date() });
    if (opts.watch !== false) holder.startWatching();
    return holder;
  }

  /** The snapshot in force. Read it once per request and keep it. */
  current(): PolicySnapshot<T> {
    return this.snapshot;
  }

  status(): PolicyHolderStatus {
    return { version: this.snapshot.version, loadedAt: this.snapshot.loadedAt, ...(this.lastError ? { lastError: this.lastError } : {}) };
  }

  /** Every reload's outcome, applied, unchanged or refused (after the swap, when there is one). Returns the unsubscribe. */
  onChange(listener: (outcome: ReloadOutcome<T>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads the file again; resolves with what happened (never rejects). */
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome<T>> {
    if (this.running === undefined) {
      this.running = this.runOnce(trigger).finally(() => {
        this.running = undefined;
        const next = this.pending;
        this.pending = undefined;
        if (next) void this.reload(next.trigger).then(next.resolve);
      });
      return this.running;
    }
    // One more after the running one: it reads the file as it is then.
    if (this.pending === undefined) {
      let resolve!: (o: ReloadOutcome<T>) => void;
      const promise = new Promise<ReloadOutcome<T>>((r) => (resolve = r));
      this.pending = { trigger, promise, resolve };
    }
    return this.pending.promise;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
  }

  private async runOnce(trigger: ReloadTrigger): Promise<ReloadOutcome<T>> {
    const previous = this.snapshot;
    let outcome: ReloadOutcome<T>;
    try {
      const text = await readFile(this.opts.file, 'utf8');
      const version = policyVersion(text);
      if (version === previous.version) {
        this.lastError = undefined;
        outcome = { result: 'unchanged', snapshot: previous, trigger };
      } else {
        const value = this.opts.build(text, this.opts.file, previous.value);
        // The swap: one assignment of a fully built, immutable snapshot.
        this.snapshot = { version, value, loadedAt: new Date() };
        this.lastError = undefined;
        outcome = { result: 'applied', snapshot: this.snapshot, previous, trigger };
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.lastError = { message, at: new Date(), trigger };
      outcome = { result: 'refused', snapshot: previous, error: message, trigger };
    }
    for (const l of this.listeners) l(outcome);
    return outcome;
  }

  private startWatching(): void {
    const dir = dirname(this.opts.file);
    const name = basename(this.opts.file);
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, changed) => {
        // Another file of a shared directory: only the file itself and the ConfigMap's
        // `..data` swap (and an unnamed event, which some platforms send) count.
        if (changed !== null && changed !== name && !String(changed).startsWith('..')) return;
        this.schedule();
      });
      this.watcher.on('error', (err) => {
        this.watcher?.close();
        this.watcher = undefined;
        this.opts.onWatchError?.(err);
      });
    } catch (err) {
      this.opts.onWatchError?.(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reload('file'), this.opts.debounceMs ?? 250);
    this.timer.unref();
  }
}

