// What an Authorizer rejects with when OpenFGA gives no answer, and how an OpenFGA
// HTTP error (status + `{code, message}` body) maps to it. The request-path client
// (./request-client.ts) throws these; ./authorizer.ts re-exports them for the stages
// that map them to 503/500.
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

export const TOO_COMPLEX = 'authorization_model_resolution_too_complex';

/** An OpenFGA error answer: `status` and the `code`/`message` of its JSON body. */
export function fromFgaHttpError(status: number, code: string | undefined, message: string, cause?: unknown): AuthorizerError {
  const options = cause === undefined ? undefined : { cause };
  if (code === TOO_COMPLEX) return new AuthorizerUnavailableError('too_complex', `OpenFGA: resolution too complex (${message})`, options);
  if (status === 504 || code === 'deadline_exceeded') return new AuthorizerUnavailableError('timeout', `OpenFGA: deadline exceeded (${status})`, options);
  if (status === 429) return new AuthorizerUnavailableError('rate_limited', 'OpenFGA: rate limited (429)', options);
  if (status >= 400 && status < 500) return new AuthorizerRequestError('invalid_request', `OpenFGA refused the request (${status}): ${message}`, options);
  return new AuthorizerUnavailableError('server_error', `OpenFGA error (${status}): ${message}`, options);
}
