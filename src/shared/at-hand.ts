// A value that is either at hand or on its way: the caches answer synchronously when they
// hold the answer, and the request stages go on without an await in that case (an await
// is a promise and a microtask per request even for a value that is already there).

/**
 * `use(value)` at once when `get()` answers synchronously, else once its promise
 * resolves. A failure of `get`, thrown or rejected, goes to `fail`, which throws what
 * the caller should see; a failure of `use` is not `fail`'s.
 */
export function whenAtHand<T, R>(get: () => T | Promise<T>, use: (value: T) => R, fail: (err: unknown) => never): R | Promise<Awaited<R>> {
  let value: T | Promise<T>;
  try {
    value = get();
  } catch (err) {
    fail(err);
  }
  if (value instanceof Promise) return value.then(use, fail) as Promise<Awaited<R>>;
  return use(value);
}
