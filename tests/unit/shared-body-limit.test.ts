// bodyLimitWhenBody: the body limit for requests that declare a body, nothing for the rest,
// both on a real Node server (headers read from Node's request) and through app.request.
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bodyLimitWhenBody } from '../../src/shared/body-limit.js';
import { serveRaw, type RawServer } from '../support/raw-http.js';

const LIMIT = 1024;

function app(): Hono {
  const a = new Hono();
  a.use('*', bodyLimitWhenBody({ maxSize: LIMIT, onError: (c) => c.text('too large', 413) }));
  a.get('/r', (c) => c.text('read'));
  a.post('/w', async (c) => c.text(`got ${(await c.req.text()).length}`));
  return a;
}

/** A body sent with Transfer-Encoding: chunked (no Content-Length). */
function chunked(text: string): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(ctl) {
      ctl.enqueue(new TextEncoder().encode(text));
      ctl.close();
    },
  });
}

describe('bodyLimitWhenBody on a real Node server', () => {
  let server: RawServer;
  let base: string;
  beforeAll(async () => {
    server = await serveRaw(app().fetch as never);
    base = `http://127.0.0.1:${server.port}`;
  });
  afterAll(() => server.close());

  it('lets a request without a body through', async () => {
    const res = await fetch(`${base}/r`);
    expect([res.status, await res.text()]).toEqual([200, 'read']);
  });

  it('refuses a body over the limit, declared by Content-Length or sent chunked', async () => {
    expect((await fetch(`${base}/w`, { method: 'POST', body: 'x'.repeat(LIMIT + 1) })).status).toBe(413);
    const res = await fetch(`${base}/w`, { method: 'POST', body: chunked('x'.repeat(LIMIT + 1)), duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
  });

  it('passes a body within the limit to the handler whole', async () => {
    const res = await fetch(`${base}/w`, { method: 'POST', body: 'x'.repeat(LIMIT) });
    expect([res.status, await res.text()]).toEqual([200, `got ${LIMIT}`]);
    const streamed = await fetch(`${base}/w`, { method: 'POST', body: chunked('y'.repeat(100)), duplex: 'half' } as RequestInit);
    expect([streamed.status, await streamed.text()]).toEqual([200, 'got 100']);
  });
});

describe('bodyLimitWhenBody without a Node request (app.request)', () => {
  it('leaves the decision to the limit itself: a body is measured even when no header declares it', async () => {
    const a = app();
    expect((await a.request('/r')).status).toBe(200);
    expect((await a.request('/w', { method: 'POST', body: 'x'.repeat(LIMIT + 1) })).status).toBe(413);
    const ok = await a.request('/w', { method: 'POST', body: 'x'.repeat(10) });
    expect([ok.status, await ok.text()]).toEqual([200, 'got 10']);
  });
});
