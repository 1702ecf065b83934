// How OpenFGA's error answers map to typed Authorizer errors (the transport cases —
// refused question, unreachable or silent server — run against real peers in
// tests/integration/decisions-fga.test.ts).
import { describe, expect, it } from 'vitest';
import { AuthorizerRequestError, AuthorizerUnavailableError, fromFgaHttpError } from '../../src/fga/errors.js';

describe('fromFgaHttpError', () => {
  it('maps "resolution too complex" to unavailable/too_complex (not a refusal, not an answer)', () => {
    const e = fromFgaHttpError(400, 'authorization_model_resolution_too_complex', 'too deep');
    expect(e).toBeInstanceOf(AuthorizerUnavailableError);
    expect(e.failure).toBe('too_complex');
  });

  it('maps other 4xx answers to a request error (a policy or configuration bug)', () => {
    for (const [status, code] of [
      [400, 'validation_error'],
      [404, 'store_id_not_found'],
      [422, undefined],
    ] as const) {
      const e = fromFgaHttpError(status, code, 'refused');
      expect(e).toBeInstanceOf(AuthorizerRequestError);
      expect(e.failure).toBe('invalid_request');
    }
  });

  it('maps 5xx, 504/deadline and 429 to unavailable', () => {
    expect(fromFgaHttpError(500, 'internal_error', 'x').failure).toBe('server_error');
    expect(fromFgaHttpError(503, undefined, '').failure).toBe('server_error');
    expect(fromFgaHttpError(504, 'deadline_exceeded', 'x').failure).toBe('timeout');
    expect(fromFgaHttpError(500, 'deadline_exceeded', 'x').failure).toBe('timeout');
    expect(fromFgaHttpError(429, undefined, '').failure).toBe('rate_limited');
    for (const status of [429, 500, 502, 503, 504]) expect(fromFgaHttpError(status, undefined, '')).toBeInstanceOf(AuthorizerUnavailableError);
  });

  it('keeps the cause when given one', () => {
    const cause = new Error('raw');
    expect(fromFgaHttpError(500, undefined, 'x', cause).cause).toBe(cause);
  });
});
