import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { sanitizedHeaders } from '../../../src/gateway/forward.js';

function sanitized(headers: IncomingHttpHeaders, trusted = false): IncomingHttpHeaders {
  const before = { ...headers };
  const out = sanitizedHeaders(headers, trusted);
  // A new object: the request's own headers are left as they were.
  expect(headers).toEqual(before);
  return out;
}

describe('sanitizedHeaders', () => {
  it('drops client identity headers in every spelling', () => {
    const out = sanitized({
      'x-user-id': 'admin',
      x_user_id: 'admin',
      'x.tenant.id': 't2',
      'x-tenant-id': 't2',
      'x-forwarded-user': 'root',
      'x-tiergate-assertion': 'forged',
      'x_tiergate_subject': 'forged',
      'x-tiergate-anything': 'forged',
      'x-auth-request-user': 'forged',
      'x-request-id': 'client-chosen',
      accept: 'application/json',
    });
    expect(out).toEqual({ accept: 'application/json' });
  });

  it('drops forwarding headers from untrusted peers and keeps them from trusted ones', () => {
    const headers = { forwarded: 'for=1.2.3.4', 'x-forwarded-for': '1.2.3.4', 'x-forwarded-host': 'evil', 'x-real-ip': '1.2.3.4' };
    expect(sanitized(headers, false)).toEqual({});
    expect(sanitized(headers, true)).toEqual(headers);
  });

  it('drops hop-by-hop headers, the headers Connection names, and the bearer token', () => {
    const out = sanitized({
      connection: 'keep-alive, X-Custom-Hop, x-tiergate-assertion',
      'keep-alive': 'timeout=5',
      'x-custom-hop': 'gone',
      te: 'trailers',
      upgrade: 'websocket',
      authorization: 'Bearer secret',
      'content-type': 'application/json',
    });
    expect(out).toEqual({ 'content-type': 'application/json' });
  });
});
