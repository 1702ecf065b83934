// The two OpenFGA calls on the request path, Check and Read, over undici's keep-alive
// connection pool. Everything else (bootstrap, admin writes, ListObjects, ReadChanges)
// goes through @openfga/sdk (./client.ts).
//
// Why not the SDK here: a cache miss makes up to two calls, and the SDK (axios, its
// telemetry, per-call configuration checks) spends about four times the client CPU of
// this path per call: ~750 µs vs ~190 µs per Check on the 2-core benchmark machine,
// measured side by side against the same OpenFGA. On a box the gateway shares with
// OpenFGA that CPU is taken from the answers themselves.
//
// Every failure rejects with an AuthorizerError (./errors.ts); nothing here turns an
// error into an answer.
import { Pool } from 'undici';
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

export interface FgaRequestClientOptions {
  apiUrl: string;
  storeId: string;
  /** OPENFGA_TIMEOUT_MS: the whole call, queueing for a connection included. */
  timeoutMs: number;
  /** Connections kept to OpenFGA at most (default 128). */
  connections?: number;
  /** Told about every call: which, whether it got an answer, and its seconds (metrics). */
  onCall?: (call: 'check' | 'read', outcome: 'ok' | 'error', seconds: number) => void;
}

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json' };

function consistencyOf(c: FgaConsistency): string {
  return c === 'strong' ? 'HIGHER_CONSISTENCY' : 'MINIMIZE_LATENCY';
}

export class FgaRequestClient {
  readonly storeId: string;
  private readonly pool: Pool;
  private readonly timeoutMs: number;
  private readonly checkPath: string;
  private readonly readPath: string;
  private readonly onCall: FgaRequestClientOptions['onCall'];

  constructor(opts: FgaRequestClientOptions) {
    const url = new URL(opts.apiUrl);
    const base = url.pathname.replace(/\/+$/, '');
    const store = `${base}/stores/${encodeURIComponent(opts.storeId)}`;
    this.storeId = opts.storeId;
    this.checkPath = `${store}/check`;
    this.readPath = `${store}/read`;
    this.timeoutMs = opts.timeoutMs;
    this.onCall = opts.onCall;
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

  close(): Promise<void> {
    return this.pool.close();
  }

  private async post(path: string, body: unknown, what: 'check' | 'read'): Promise<unknown> {
    const started = performance.now();
    let outcome: 'ok' | 'error' = 'error';
    const abort = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, this.timeoutMs);
    try {
      const res = await this.pool.request({ path, method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(body), signal: abort.signal });
      // Read the whole body on every path: an unread body holds its connection.
      const text = await res.body.text();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      if (res.statusCode !== 200) {
        const err = (parsed ?? {}) as { code?: unknown; message?: unknown };
        throw fromFgaHttpError(
          res.statusCode,
          typeof err.code === 'string' ? err.code : undefined,
          typeof err.message === 'string' ? err.message : text.slice(0, 200),
        );
      }
      if (parsed === null || typeof parsed !== 'object') {
        throw new AuthorizerUnavailableError('server_error', `OpenFGA answered a ${what} with something that is not JSON`);
      }
      outcome = 'ok';
      return parsed;
    } catch (err) {
      throw transportError(err, timedOut, what, this.timeoutMs);
    } finally {
      clearTimeout(timer);
      this.onCall?.(what, outcome, (performance.now() - started) / 1000);
    }
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
