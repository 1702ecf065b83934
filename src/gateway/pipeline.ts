// The data path's stages as one middleware: each stage's `next` calls the following stage
// directly. Hono's compose runs every middleware in an async dispatch of its own (a
// promise and a microtask per stage per request); here a stage that has nothing to await
// hands on synchronously, so a warm request runs normalise → … → residency without one.
// Errors propagate to the middleware's caller, where Hono's onError renders them, as it
// would have rendered them at the stage that threw.
import type { Env, MiddlewareHandler, Next } from 'hono';

export function pipeline<E extends Env>(stages: readonly MiddlewareHandler<E>[]): MiddlewareHandler<E> {
  return (c, next) => {
    const run = (i: number): Promise<void> => {
      if (i === stages.length) return next();
      const step: Next = () => run(i + 1);
      // The stages answer through `next` (or throw); none of them answers with a Response of its own.
      return stages[i]!(c, step) as Promise<void>;
    };
    try {
      return run(0);
    } catch (err) {
      // A stage that threw at once fails the middleware as an async one would.
      return Promise.reject(err);
    }
  };
}
