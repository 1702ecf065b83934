// The two OpenFGA calls on the request path, Check and Read, and the changelog the
// ReadChanges poller reads every second (ReadChanges), over undici's keep-alive
// connection pool. Everything else (bootstrap, admin writes, ListObjects) goes through
// @openfga/sdk (./client.ts).
//
// Why not the SDK here: a cache miss makes up to two calls, and the SDK (axios, its
// telemetry, per-call configuration checks) spends several times the client CPU of
// this path per call; undici's dispatch with the handler below spends less than its
// fetch. On a box the gateway shares with OpenFGA that CPU is taken from the answers
// themselves.
//
// Every failure rejects with an AuthorizerError (./errors.ts); nothing here turns an
// error into an answer.
import { Pool, type Dispatcher } from 'undici';
import { endSpan, injectTraceHeaders, SpanKind, startSpan } from '../shared/tracing.js';
import { AuthorizerError, AuthorizerUnavailableError, fromFgaHttpError } from './errors.js';

export interface FgaTuple {
  user: string;
  relation: string;
  object: string;
}

export interface FgaCheckQuestion extends FgaTuple {
  contextualTuples: readonly FgaTuple[];
  context?: Record<string, unknown>;
}

/** `strong` = HIGHER_CONSISTENCY (skip OpenFGA's own caches), else MINIMIZE_LATENCY. */
export type FgaConsistency = 'strong' | 'cached';

export interface FgaReadFilter {
  user?: string;
  relation?: string;
  /** `type:id`, or `type:` with `user` set (every object of the type related to `user`). */
  object: string;
}

export interface FgaReadPage {
  tuples: FgaTuple[];
  /** Absent on the last page. */
  continuationToken: string | undefined;
}

export interface FgaChange {
  operation: 'write' | 'delete';
  tuple: FgaTuple;
  /** RFC 3339, OpenFGA's clock. */
  timestamp: string;
}

export interface FgaChangesPage {
  changes: FgaChange[];
  /** Where the next read starts; OpenFGA returns one on every page, the last included. */
  continuationToken: string | undefined;
}

export interface FgaRequestClientOptions {
  apiUrl: string;
  storeId: string;
  /** OPENFGA_TIMEOUT_MS: the whole call, queueing for a connection included. */
  timeoutMs: number;
  /** Connections kept to OpenFGA at most (default 128). */
  connections?: number;
  /** OpenFGA's preshared key (sent as `Authorization: Bearer …`); unset for an OpenFGA without authentication. */
  apiToken?: string | undefined;
  /** Told about every call: which, whether it got an answer, and its seconds (metrics). */
  onCall?: (call: 'check' | 'read', outcome: 'ok' | 'error', seconds: number) => void;
}

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json' };

const RPC_METHOD = { check: 'Check', read: 'Read', read_changes: 'ReadChanges' } as const;

function consistencyOf(c: FgaConsistency): string {
  return c === 'strong' ? 'HIGHER_CONSISTENCY' : 'MINIMIZE_LATENCY';
}

export class FgaRequestClient {
  readonly storeId: string;
  private readonly pool: Pool;
  private readonly timeoutMs: number;
  private readonly checkPath: string;
  private readonly readPath: string;
  private readonly changesPath: string;
  private readonly onCall: FgaRequestClientOptions['onCall'];
  private readonly headers: Record<string, string>;
  private readonly origin: string;

  constructor(opts: FgaRequestClientOptions) {
    const url = new URL(opts.apiUrl);
    const base = url.pathname.replace(/\/+$/, '');
    const store = `${base}/stores/${encodeURIComponent(opts.storeId)}`;
    this.storeId = opts.storeId;
    this.origin = url.host;
    this.checkPath = `${store}/check`;
    this.readPath = `${store}/read`;
    this.changesPath = `${store}/changes`;
    this.timeoutMs = opts.timeoutMs;
    this.onCall = opts.onCall;
    this.headers = opts.apiToken ? { ...JSON_HEADERS, authorization: `Bearer ${opts.apiToken}` } : JSON_HEADERS;
    this.pool = new Pool(url.origin, { connections: opts.connections ?? 128, connectTimeout: opts.timeoutMs });
  }

  /** OpenFGA's answer to one Check against `modelId`. */
  async check(q: FgaCheckQuestion, modelId: string, consistency: FgaConsistency): Promise<boolean> {
    const body: Record<string, unknown> = {
      tuple_key: { user: q.user, relation: q.relation, object: q.object },
      authorization_model_id: modelId,
      consistency: consistencyOf(consistency),
    };
    // Serialised as they are: FgaTuple has exactly OpenFGA's tuple key fields.
    if (q.contextualTuples.length > 0) body.contextual_tuples = { tuple_keys: q.contextualTuples };
    if (q.context !== undefined) body.context = q.context;
    const res = (await this.post(this.checkPath, body, 'check')) as { allowed?: unknown };
    if (typeof res.allowed !== 'boolean') {
      throw new AuthorizerUnavailableError('server_error', 'OpenFGA answered a check without an `allowed` value');
    }
    return res.allowed;
  }

  /** One page of stored tuples matching `filter`. */
  async read(filter: FgaReadFilter, opts: { pageSize: number; continuationToken?: string; consistency: FgaConsistency }): Promise<FgaReadPage> {
    const body: Record<string, unknown> = {
      tuple_key: filter,
      page_size: opts.pageSize,
      consistency: consistencyOf(opts.consistency),
    };
    if (opts.continuationToken) body.continuation_token = opts.continuationToken;
    const res = (await this.post(this.readPath, body, 'read')) as { tuples?: unknown; continuation_token?: unknown };
    if (!Array.isArray(res.tuples)) throw new AuthorizerUnavailableError('server_error', 'OpenFGA answered a read without `tuples`');
    const tuples: FgaTuple[] = [];
    for (const t of res.tuples as Array<{ key?: Partial<FgaTuple> }>) {
      const k = t?.key;
      if (typeof k?.user !== 'string' || typeof k.relation !== 'string' || typeof k.object !== 'string') {
        throw new AuthorizerUnavailableError('server_error', 'OpenFGA answered a read with a malformed tuple');
      }
      tuples.push({ user: k.user, relation: k.relation, object: k.object });
    }
    const token = typeof res.continuation_token === 'string' && res.continuation_token !== '' ? res.continuation_token : undefined;
    return { tuples, continuationToken: token };
  }

  /**
   * One page of the store's changelog, every type, from a continuation token or else a
   * start time. Not a request-path call: not told to onCall.
   */
  async readChanges(opts: { pageSize: number; continuationToken?: string; startTime?: string }): Promise<FgaChangesPage> {
    const q = new URLSearchParams({ page_size: String(opts.pageSize) });
    if (opts.continuationToken) q.set('continuation_token', opts.continuationToken);
    else if (opts.startTime) q.set('start_time', opts.startTime);
    const res = (await this.call('GET', `${this.changesPath}?${q.toString()}`, undefined, 'read_changes')) as { changes?: unknown; continuation_token?: unknown };
    if (!Array.isArray(res.changes)) throw new AuthorizerUnavailableError('server_error', 'OpenFGA answered a changelog read without `changes`');
    const changes: FgaChange[] = [];
    for (const c of res.changes as Array<{ tuple_key?: Partial<FgaTuple>; operation?: unknown; timestamp?: unknown }>) {
      const k = c?.tuple_key;
      const operation = c?.operation === 'TUPLE_OPERATION_WRITE' ? 'write' : c?.operation === 'TUPLE_OPERATION_DELETE' ? 'delete' : undefined;
      if (typeof k?.user !== 'string' || typeof k.relation !== 'string' || typeof k.object !== 'string' || operation === undefined) {
        throw new AuthorizerUnavailableError('server_error', 'OpenFGA answered a changelog read with a malformed change');
      }
      changes.push({ operation, tuple: { user: k.user, relation: k.relation, object: k.object }, timestamp: typeof c.timestamp === 'string' ? c.timestamp : '' });
    }
    const token = typeof res.continuation_token === 'string' && res.continuation_token !== '' ? res.continuation_token : undefined;
    return { changes, continuationToken: token };
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  private post(path: string, body: unknown, what: 'check' | 'read'): Promise<unknown> {
    return this.call('POST', path, body, what);
  }

  private async call(method: 'GET' | 'POST', path: string, body: unknown, what: 'check' | 'read' | 'read_changes'): Promise<unknown> {
    const started = performance.now();
    let outcome: 'ok' | 'error' = 'error';
    const exchange = new Exchange();
    // Tracing on: a CLIENT span, and OpenFGA is told its traceparent.
    const span = startSpan(`openfga.${what}`, SpanKind.CLIENT, { 'rpc.system.name': 'openfga', 'rpc.method': RPC_METHOD[what], 'server.address': this.origin });
    let headers = this.headers;
    if (span) {
      headers = { ...this.headers };
      injectTraceHeaders(span, headers);
    }
    let failure: unknown;
    try {
      const answer = exchange.answer(this.timeoutMs);
      try {
        this.pool.dispatch(body === undefined ? { path, method, headers } : { path, method, headers, body: JSON.stringify(body) }, exchange);
      } catch (err) {
        exchange.fail(err);
      }
      const { status, text } = await answer;
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      if (status !== 200) {
        const err = (parsed ?? {}) as { code?: unknown; message?: unknown };
        throw fromFgaHttpError(status, typeof err.code === 'string' ? err.code : undefined, typeof err.message === 'string' ? err.message : text.slice(0, 200));
      }
      if (parsed === null || typeof parsed !== 'object') {
        throw new AuthorizerUnavailableError('server_error', `OpenFGA answered a ${what} with something that is not JSON`);
      }
      outcome = 'ok';
      return parsed;
    } catch (err) {
      failure = transportError(err, exchange.timedOut, what, this.timeoutMs);
      throw failure;
    } finally {
      if (what !== 'read_changes') this.onCall?.(what, outcome, (performance.now() - started) / 1000);
      if (span) endSpan(span, failure);
    }
  }
}

/**
 * One request and its whole answer, as undici's dispatch handler: the body is collected
 * as it arrives, with no response stream, AbortController or closure per call (undici's
 * `request()` builds all three; on a cache miss they were a tenth of the client's CPU).
 */
class Exchange implements Dispatcher.DispatchHandler {
  timedOut = false;
  private status = 0;
  private readonly chunks: Buffer[] = [];
  private controller: Dispatcher.DispatchController | undefined;
  private settled = false;
  private timer: NodeJS.Timeout | undefined;
  private resolve!: (answer: { status: number; text: string }) => void;
  private reject!: (err: unknown) => void;

  /**
   * The status and body, or the transport's error; rejects after `timeoutMs`, queueing for
   * a connection included. Called before the dispatch, which may report an error at once.
   */
  answer(timeoutMs: number): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.timer = setTimeout(Exchange.timeout, timeoutMs, this);
    });
  }

  private static timeout(x: Exchange): void {
    x.timedOut = true;
    const err = new Error('timed out');
    // A request still queued for a connection is aborted when it gets one (onRequestStart).
    x.controller?.abort(err);
    x.settle(undefined, err);
  }

  private settle(answer: { status: number; text: string } | undefined, error?: unknown): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    if (answer !== undefined) this.resolve(answer);
    else this.reject(error);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.settled) controller.abort(new Error('timed out'));
    else this.controller = controller;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.settle({ status: this.status, text: body.toString('utf8') });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.settle(undefined, err);
  }

  /** The request could not even be dispatched (a closed pool may say so by throwing). */
  fail(err: unknown): void {
    this.settle(undefined, err);
  }
}

function transportError(err: unknown, timedOut: boolean, what: string, timeoutMs: number): AuthorizerError {
  if (err instanceof AuthorizerError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (timedOut) return new AuthorizerUnavailableError('timeout', `OpenFGA: no ${what} answer within ${timeoutMs} ms`, { cause: err });
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new AuthorizerUnavailableError('timeout', `OpenFGA: connect timeout (${message})`, { cause: err });
  return new AuthorizerUnavailableError('unreachable', `OpenFGA unreachable: ${message}`, { cause: err });
}
