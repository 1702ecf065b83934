// OpenFGA as an Authorizer: Check against the pinned store and model, with the
// request's contextual tuples and context. Every failure REJECTS with a typed
// error; nothing here ever turns an error into an answer (allowed or denied).
import {
  ConsistencyPreference,
  FgaApiError,
  FgaApiValidationError,
  FgaError,
  type OpenFgaClient,
} from '@openfga/sdk';
import type { Authorizer, CheckRequest, Decision } from '../gateway/types.js';

export type AuthorizerFailure =
  /** No answer in time (client timeout, or OpenFGA's deadline_exceeded). */
  | 'timeout'
  /** Connection refused/reset, DNS, TLS: OpenFGA not reachable. */
  | 'unreachable'
  /** 5xx or an answer that is not an answer. */
  | 'server_error'
  | 'rate_limited'
  /** The model/graph needed more resolution depth or breadth than OpenFGA allows. */
  | 'too_complex'
  /** OpenFGA refused the request itself (unknown type/relation, bad id): a policy bug. */
  | 'invalid_request';

/** Base of every error an Authorizer rejects with; `failure` says which kind. */
export class AuthorizerError extends Error {
  override name = 'AuthorizerError';
  constructor(
    readonly failure: AuthorizerFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** OpenFGA could not give an answer now (retrying later may work): map to 503. */
export class AuthorizerUnavailableError extends AuthorizerError {
  override name = 'AuthorizerUnavailableError';
}

/** OpenFGA refused the question itself (unknown relation, malformed id): map to 500. */
export class AuthorizerRequestError extends AuthorizerError {
  override name = 'AuthorizerRequestError';
}

const TOO_COMPLEX = 'authorization_model_resolution_too_complex';

/** Maps whatever the SDK threw to a typed AuthorizerError. */
export function toAuthorizerError(err: unknown): AuthorizerError {
  if (err instanceof AuthorizerError) return err;
  if (err instanceof FgaApiValidationError) {
    if (err.apiErrorCode === TOO_COMPLEX) {
      return new AuthorizerUnavailableError('too_complex', `OpenFGA: resolution too complex (${err.apiErrorMessage ?? err.message})`, { cause: err });
    }
    return new AuthorizerRequestError('invalid_request', `OpenFGA refused the check: ${err.apiErrorMessage ?? err.message}`, { cause: err });
  }
  if (err instanceof FgaApiError) {
    const status = err.statusCode ?? 0;
    const code = (err.responseData as { code?: string } | undefined)?.code;
    if (status === 504 || code === 'deadline_exceeded') return new AuthorizerUnavailableError('timeout', `OpenFGA: deadline exceeded (${status})`, { cause: err });
    if (status === 429) return new AuthorizerUnavailableError('rate_limited', 'OpenFGA: rate limited (429)', { cause: err });
    if (status >= 400 && status < 500) {
      return new AuthorizerRequestError('invalid_request', `OpenFGA refused the check (${status}): ${err.apiErrorMessage ?? err.message}`, { cause: err });
    }
    return new AuthorizerUnavailableError('server_error', `OpenFGA error (${status}): ${err.apiErrorMessage ?? err.message}`, { cause: err });
  }
  // Plain FgaError wraps network-level axios errors (no HTTP status).
  const message = err instanceof Error ? err.message : String(err);
  if (/timeout|ECONNABORTED|ETIMEDOUT/i.test(message)) return new AuthorizerUnavailableError('timeout', `OpenFGA: no answer in time (${message})`, { cause: err });
  if (err instanceof FgaError) return new AuthorizerUnavailableError('unreachable', `OpenFGA unreachable: ${message}`, { cause: err });
  return new AuthorizerUnavailableError('server_error', `OpenFGA check failed: ${message}`, { cause: err });
}

export interface OpenFgaAuthorizerOptions {
  /** A client from createFgaClient (timeout = OPENFGA_TIMEOUT_MS, no retries). */
  client: OpenFgaClient;
  storeId: string;
  authorizationModelId: string;
}

/** Single-question form shared by check and batchCheck. */
function questionOf(req: CheckRequest) {
  return {
    user: req.user,
    relation: req.relation,
    object: req.object,
    contextualTuples: req.contextualTuples.map((t) => ({ user: t.user, relation: t.relation, object: t.object })),
    ...(req.context !== undefined ? { context: req.context } : {}),
  };
}

export class OpenFgaAuthorizer implements Authorizer {
  readonly storeId: string;
  private modelId: string;
  private readonly client: OpenFgaClient;

  constructor(opts: OpenFgaAuthorizerOptions) {
    this.client = opts.client;
    this.storeId = opts.storeId;
    this.modelId = opts.authorizationModelId;
  }

  /** The model id every check is pinned to. */
  get authorizationModelId(): string {
    return this.modelId;
  }

  /** Pin a new model (after bootstrap wrote one); pair with DecisionInvalidator.modelChanged(). */
  pinModel(authorizationModelId: string): void {
    this.modelId = authorizationModelId;
  }

  async check(req: CheckRequest): Promise<Decision> {
    const started = performance.now();
    let allowed: boolean | undefined;
    try {
      const res = await this.client.check(questionOf(req), {
        storeId: this.storeId,
        authorizationModelId: this.modelId,
        consistency: req.consistency === 'strong' ? ConsistencyPreference.HigherConsistency : ConsistencyPreference.MinimizeLatency,
      });
      allowed = res.allowed;
    } catch (err) {
      throw toAuthorizerError(err);
    }
    if (typeof allowed !== 'boolean') {
      throw new AuthorizerUnavailableError('server_error', 'OpenFGA answered a check without an `allowed` value');
    }
    return { allowed, layer: 'openfga', durationMs: performance.now() - started };
  }

  /**
   * Several answers in one round trip (OpenFGA's batch-check), in request order.
   * Rejects if any single check failed: a partial answer is never filled in.
   */
  async batchCheck(reqs: readonly CheckRequest[], opts: { consistency?: 'cached' | 'strong' } = {}): Promise<boolean[]> {
    if (reqs.length === 0) return [];
    let result;
    try {
      result = await this.client.batchCheck(
        {
          checks: reqs.map((r, i) => {
            const q = questionOf(r);
            // batch-check takes contextual tuples wrapped as {tuple_keys}, unlike check.
            return { ...q, contextualTuples: { tuple_keys: q.contextualTuples }, correlationId: `c${i}` };
          }),
        },
        {
          storeId: this.storeId,
          authorizationModelId: this.modelId,
          consistency: opts.consistency === 'strong' ? ConsistencyPreference.HigherConsistency : ConsistencyPreference.MinimizeLatency,
        },
      );
    } catch (err) {
      throw toAuthorizerError(err);
    }
    const answers = new Array<boolean | undefined>(reqs.length);
    for (const item of result.result) {
      const index = Number(item.correlationId.slice(1));
      if (item.error && (item.error.input_error || item.error.internal_error || item.error.message)) {
        const detail = item.error.message ?? item.error.input_error ?? item.error.internal_error ?? 'unknown';
        if (item.error.input_error === TOO_COMPLEX) throw new AuthorizerUnavailableError('too_complex', `OpenFGA batch check #${index}: ${detail}`);
        if (item.error.input_error) throw new AuthorizerRequestError('invalid_request', `OpenFGA batch check #${index}: ${detail}`);
        throw new AuthorizerUnavailableError('server_error', `OpenFGA batch check #${index}: ${detail}`);
      }
      answers[index] = item.allowed;
    }
    return answers.map((a, i) => {
      if (typeof a !== 'boolean') throw new AuthorizerUnavailableError('server_error', `OpenFGA batch check returned no answer for #${i}`);
      return a;
    });
  }
}
