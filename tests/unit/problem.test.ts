// The one problem type: what its body and response carry, and the one list of slugs.
import { describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE, PROBLEM_SLUGS, Problem } from '../../src/shared/problem.js';

describe('Problem', () => {
  it('renders an RFC 9457 body: type URI from the slug, then detail, extensions, invalid-params, where it happened', () => {
    const p = new Problem(403, 'forbidden', 'Forbidden', {
      detail: 'Missing permission can_read.',
      extensions: { permission: 'can_read' },
      'invalid-params': [{ name: 'path.id', reason: 'bad' }],
    });
    expect(JSON.stringify(p.details({ instance: '/x', requestId: 'r-1' }))).toBe(
      '{"type":"https://tiergate.dev/problems/forbidden","title":"Forbidden","status":403,"detail":"Missing permission can_read.",' +
        '"permission":"can_read","invalid-params":[{"name":"path.id","reason":"bad"}],"instance":"/x","requestId":"r-1"}',
    );
  });

  it('leaves out what it does not have', () => {
    expect(new Problem(500, 'internal', 'Internal Server Error').details({ requestId: undefined })).toEqual({
      type: 'https://tiergate.dev/problems/internal',
      title: 'Internal Server Error',
      status: 500,
    });
  });

  it('answers with its status, problem+json, its own headers and then the app’s', async () => {
    const res = new Problem(401, 'unauthenticated', 'Authentication required', { headers: { 'www-authenticate': 'Bearer' } }).response(
      { requestId: 'r-2' },
      { 'x-request-id': 'r-2' },
    );
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    expect(res.headers.get('x-request-id')).toBe('r-2');
    expect(await res.json()).toMatchObject({ status: 401, requestId: 'r-2' });
  });

  it('has one list of slugs, each once, one spelling for an internal error', () => {
    expect(new Set(PROBLEM_SLUGS).size).toBe(PROBLEM_SLUGS.length);
    expect(PROBLEM_SLUGS).toContain('internal');
    expect(PROBLEM_SLUGS).not.toContain('internal-error');
  });
});
