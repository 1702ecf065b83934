// How SDK failures map to typed Authorizer errors (the real-server cases — refused
// request, unreachable server — are in the integration tests).
import { FgaApiError, FgaApiInternalError, FgaApiRateLimitExceededError, FgaApiValidationError, FgaError } from '@openfga/sdk';
import { describe, expect, it } from 'vitest';
import { AuthorizerRequestError, AuthorizerUnavailableError, toAuthorizerError } from '../../src/fga/authorizer.js';

/** The shape of an axios error the SDK's error classes read. */
function axiosLike(status: number, data: Record<string, unknown>) {
  return {
    isAxiosError: true,
    message: `Request failed with status code ${status}`,
    response: { status, statusText: '', data, headers: {} },
    config: { url: 'http://fga/stores/s/check', method: 'post', data: '{}' },
    request: { path: '/stores/s/check' },
  } as never;
}

describe('toAuthorizerError', () => {
  it('maps "resolution too complex" to unavailable/too_complex (not a refusal, not an answer)', () => {
    const e = toAuthorizerError(new FgaApiValidationError(axiosLike(400, { code: 'authorization_model_resolution_too_complex', message: 'too deep' })));
    expect(e).toBeInstanceOf(AuthorizerUnavailableError);
    expect(e.failure).toBe('too_complex');
  });

  it('maps other validation errors to a request error', () => {
    const e = toAuthorizerError(new FgaApiValidationError(axiosLike(400, { code: 'validation_error', message: 'relation not found' })));
    expect(e).toBeInstanceOf(AuthorizerRequestError);
    expect(e.failure).toBe('invalid_request');
  });

  it('maps 5xx, 504/deadline and 429 to unavailable', () => {
    expect(toAuthorizerError(new FgaApiInternalError(axiosLike(500, { code: 'internal_error' }))).failure).toBe('server_error');
    expect(toAuthorizerError(new FgaApiInternalError(axiosLike(504, { code: 'deadline_exceeded' }))).failure).toBe('timeout');
    expect(toAuthorizerError(new FgaApiRateLimitExceededError(axiosLike(429, {}))).failure).toBe('rate_limited');
    expect(toAuthorizerError(new FgaApiError(axiosLike(503, {})))).toBeInstanceOf(AuthorizerUnavailableError);
  });

  it('maps network failures: timeouts and refused connections', () => {
    expect(toAuthorizerError(new FgaError(new Error('timeout of 1000ms exceeded'))).failure).toBe('timeout');
    const refused = toAuthorizerError(new FgaError(new Error('connect ECONNREFUSED 127.0.0.1:1')));
    expect(refused).toBeInstanceOf(AuthorizerUnavailableError);
    expect(refused.failure).toBe('unreachable');
    expect(toAuthorizerError(new TypeError('boom'))).toBeInstanceOf(AuthorizerUnavailableError);
  });
});
