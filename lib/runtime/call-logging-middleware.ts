import type { Context, Middleware } from 'moleculer';

/**
 * One log line per served call, where it was served: debug for success and for a
 * 4xx (the caller's mistake; the api's access log already has it), warn for a
 * retryable 5xx, error with the stack for anything else. With LOG_LEVEL=debug every hop of a request shows up in
 * its process's log under the request's request_id.
 */
export const callLoggingMiddleware: Middleware = {
  name: 'CallLogging',
  localAction(next, action) {
    const handler = next as (ctx: Context) => Promise<unknown>;
    return async (ctx: Context) => {
      const started = performance.now();
      const entry = () => ({ action: action.name, caller: ctx.nodeID, ms: Math.round((performance.now() - started) * 10) / 10 });
      try {
        const result = await handler(ctx);
        ctx.service?.logger.debug(entry(), `served ${action.name}`);
        return result;
      } catch (err) {
        const e = err as Error & { code?: number; type?: string; retryable?: boolean };
        const status = typeof e.code === 'number' ? e.code : 500;
        // A retryable 5xx (overloaded, maintenance mode, a dependency down) is the system working as designed: no stack.
        if (status >= 500 && e.retryable) ctx.service?.logger.warn({ ...entry(), status, type: e.type }, `${action.name} unavailable: ${e.message}`);
        else if (status >= 500) ctx.service?.logger.error({ ...entry(), status, type: e.type, err }, `${action.name} failed`);
        else ctx.service?.logger.debug({ ...entry(), status, type: e.type }, `${action.name} rejected: ${e.message}`);
        throw err;
      }
    };
  },
};
