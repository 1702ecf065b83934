// A span per pipeline stage when tracing is on (src/shared/tracing.ts). The span covers
// the stage's own work only: it ends when the stage hands on (calls `next`) or answers,
// and the next stage runs in the request's span again, so the stages are siblings under
// the request's server span. Tracing off: the stage itself is returned, unwrapped.
import type { Context, Env, MiddlewareHandler } from 'hono';
import { activeContext, endSpan, startSpan, tracingEnabled, withContext, withSpan, type Span } from '../shared/tracing.js';
import type { GatewayEnv } from './types.js';

/** Adds what the stage found out to its span, when the stage is done. */
export type StageSpanEnd<E extends Env> = (c: Context<E>, span: Span) => void;

export function stageSpan<E extends Env>(name: string, stage: MiddlewareHandler<E>, onEnd?: StageSpanEnd<E>): MiddlewareHandler<E> {
  if (!tracingEnabled()) return stage;
  const spanName = `tiergate.${name}`;
  return async (c, next) => {
    const outer = activeContext();
    const span = startSpan(spanName)!;
    let open = true;
    const close = (err?: unknown): void => {
      if (!open) return;
      open = false;
      onEnd?.(c, span);
      endSpan(span, err);
    };
    try {
      return await withSpan(span, () =>
        stage(c, () => {
          close();
          return withContext(outer, next);
        }),
      );
    } catch (err) {
      // A refusal (a Problem) is an answer, not a failure of the stage: only a 5xx marks it.
      const status = (err as { status?: unknown }).status;
      close(typeof status === 'number' && status < 500 ? undefined : err);
      throw err;
    } finally {
      close();
    }
  };
}

/** The authorize stage's span: the decision and the layer that answered (l1, redis, openfga, coalesced). */
export const authorizeSpanEnd: StageSpanEnd<GatewayEnv> = (c, span) => {
  const d = c.get('decision');
  if (d === undefined) return;
  span.setAttribute('tiergate.decision', d.allowed ? 'allow' : 'deny');
  span.setAttribute('tiergate.cache_layer', d.layer);
};

/** The policy stage's span: the rule that matched and what it asks. */
export const policySpanEnd: StageSpanEnd<GatewayEnv> = (c, span) => {
  const p = c.get('policy');
  if (p === undefined) return;
  span.setAttribute('tiergate.rule', p.ruleId);
  span.setAttribute('tiergate.permission', p.permission);
  span.setAttribute('tiergate.object', p.object);
};
