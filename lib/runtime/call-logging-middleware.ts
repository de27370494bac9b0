import type { Context, Middleware } from 'moleculer';
import { actionTimer, type ActionMetrics } from '../metrics/action-timer.ts';

/**
 * One log line per served call, where it was served: debug for success and for a
 * 4xx (the caller's mistake; the api's access log already has it), warn for a
 * retryable 5xx, error with the stack for anything else. With LOG_LEVEL=debug every hop of a request shows up in
 * its process's log under the request's request_id.
 *
 * With `metrics` (METRICS=true) the same wrapper also records the call's latency and
 * error in the action metrics (lib/metrics/action-timer.ts), from the clock reads it makes
 * for the log line: a second middleware around every action cost a promise, two closures
 * and a clock read more per call.
 */
export function callLoggingMiddleware(metrics?: ActionMetrics): Middleware {
  return {
    name: 'CallLogging',
    localAction(next, action) {
      const handler = next as (ctx: Context) => Promise<unknown>;
      const timer = metrics ? actionTimer(metrics, action.name as string) : null;
      return async (ctx: Context) => {
        const started = performance.now();
        const entry = (ms: number) => ({ action: action.name, caller: ctx.nodeID, ms: Math.round(ms * 10) / 10 });
        try {
          const result = await handler(ctx);
          const ms = performance.now() - started;
          timer?.ok(ms);
          ctx.service?.logger.debug(entry(ms), `served ${action.name}`);
          return result;
        } catch (err) {
          const ms = performance.now() - started;
          timer?.failed(ms, err);
          const e = err as Error & { code?: number; type?: string; retryable?: boolean };
          const status = typeof e.code === 'number' ? e.code : 500;
          // A retryable 5xx (overloaded, maintenance mode, a dependency down) is the system working as designed: no stack.
          if (status >= 500 && e.retryable) ctx.service?.logger.warn({ ...entry(ms), status, type: e.type }, `${action.name} unavailable: ${e.message}`);
          else if (status >= 500) ctx.service?.logger.error({ ...entry(ms), status, type: e.type, err }, `${action.name} failed`);
          else ctx.service?.logger.debug({ ...entry(ms), status, type: e.type }, `${action.name} rejected: ${e.message}`);
          throw err;
        }
      };
    },
  } as Middleware;
}
