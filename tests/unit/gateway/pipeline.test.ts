// The data path's stages as one middleware (src/gateway/pipeline.ts): the order and
// onion of Hono's compose, refusals rendered by the app's error handler, and a warm
// request (stages with nothing to await) handed through without a promise of its own.
import { Hono, type MiddlewareHandler } from 'hono';
import { describe, expect, it } from 'vitest';
import { pipeline } from '../../../src/gateway/pipeline.js';
import { Problem } from '../../../src/shared/problem.js';

const noContext = {} as Parameters<MiddlewareHandler>[0];

describe('pipeline', () => {
  it('runs the stages in order, then the handler, and each stage resumes after its next in reverse order', async () => {
    const seen: string[] = [];
    const stage =
      (name: string): MiddlewareHandler =>
      async (_c, next) => {
        seen.push(`${name} in`);
        await next();
        seen.push(`${name} out`);
      };
    const app = new Hono();
    app.use('*', pipeline([stage('a'), stage('b'), stage('c')]));
    app.get('*', (c) => {
      seen.push('handler');
      return c.text('done');
    });
    const res = await app.request('/x');
    expect(await res.text()).toBe('done');
    expect(seen).toEqual(['a in', 'b in', 'c in', 'handler', 'c out', 'b out', 'a out']);
  });

  it('a stage that throws, at once or later, stops the chain and its refusal is rendered by the error handler', async () => {
    for (const refuse of [
      (): never => {
        throw new Problem(403, 'forbidden', 'Forbidden');
      },
      async (): Promise<never> => {
        await Promise.resolve();
        throw new Problem(403, 'forbidden', 'Forbidden');
      },
    ]) {
      let reached = false;
      const app = new Hono();
      app.onError((err) => (err instanceof Problem ? err.response() : new Response('other', { status: 500 })));
      app.use('*', pipeline([(_c, next) => next(), refuse as MiddlewareHandler, (_c, next) => ((reached = true), next())]));
      app.get('*', (c) => c.text('forwarded'));
      const res = await app.request('/x');
      expect(res.status).toBe(403);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(reached).toBe(false);
    }
  });

  it('fails as an async middleware would when the first stage throws at once', async () => {
    const failing = pipeline([
      () => {
        throw new Error('at once');
      },
    ]);
    const out = failing(noContext, () => Promise.resolve());
    expect(out).toBeInstanceOf(Promise);
    await expect(out).rejects.toThrow('at once');
  });

  it('stages with nothing to await hand on synchronously: the promise is the handler’s own', () => {
    const handled = Promise.resolve();
    const pass: MiddlewareHandler = (_c, next) => next();
    expect(pipeline([pass, pass, pass])(noContext, () => handled)).toBe(handled);
    expect(pipeline([])(noContext, () => handled)).toBe(handled);
  });
});
