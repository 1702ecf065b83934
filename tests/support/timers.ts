// Counts the timers (setTimeout/setInterval) code starts, for hot-path checks: a
// timer per request is work a cached answer should not do.
import { createHook } from 'node:async_hooks';

/**
 * Calls `fn` `times` times, more than 1 ms apart (busy-waiting, then one turn of the
 * event loop; neither starts a timer), and returns how many timers were started while
 * it ran.
 */
export async function timersStartedBy(fn: () => unknown, times: number): Promise<number> {
  let started = 0;
  let counting = false;
  const hook = createHook({
    init(_id, type) {
      if (counting && type === 'Timeout') started++;
    },
  }).enable();
  try {
    for (let i = 0; i < times; i++) {
      const until = performance.now() + 2;
      while (performance.now() < until) {
        // spacing the calls: lru-cache would reuse a clock reading within 1 ms
      }
      // Let the loop run its due timers (as it does between requests in a server).
      await new Promise((r) => setImmediate(r));
      counting = true;
      await fn();
      counting = false;
    }
  } finally {
    hook.disable();
  }
  return started;
}
