import type { Middleware } from 'moleculer';
import { classify } from '../errors.ts';
import type { HistogramChild } from './hot-histogram.ts';
import type { Metrics } from './metrics.ts';

/** The part of Moleculer's Context this reads: the start its Timeout middleware records. */
interface TimedContext {
  startHrTime: [number, number] | null;
}

/** Seconds since the call's start: Moleculer's, or `own` (performance.now) where it had none. */
function elapsed(ctx: TimedContext, own: number | undefined): number {
  if (own !== undefined || !ctx.startHrTime) return (performance.now() - (own ?? performance.now())) / 1000;
  const [seconds, nanos] = process.hrtime(ctx.startHrTime);
  return seconds + nanos / 1e9;
}

/**
 * Latency and errors of every action this process handles, by action name (declared
 * names only: bounded). Added last of ragmesh's middlewares, so it wraps them; Moleculer's
 * internal middlewares wrap it.
 * The action's histogram child is looked up on its first call (not when Moleculer wraps
 * the handler: actions never called then export no series, as with prom-client's own
 * histograms). The start is the one Moleculer's Timeout middleware already read into ctx.startHrTime whenever the call has a timeout, which
 * REQUEST_TIMEOUT_MS gives every call: a later call costs one clock read, at the end, and
 * the observe. A call without a timeout is timed from a clock read of its own.
 */
export function actionMetricsMiddleware(metrics: Metrics): Middleware {
  return {
    name: 'RagmeshMetrics',
    localAction(next: (ctx: TimedContext) => Promise<unknown>, action: { name: string }) {
      let duration: HistogramChild | null = null;
      return function timed(ctx: TimedContext) {
        const own = ctx.startHrTime ? undefined : performance.now();
        const child = (duration ??= metrics.actionDuration.child({ action: action.name }));
        return next(ctx).then(
          (result) => {
            child.observe(elapsed(ctx, own));
            return result;
          },
          (err: unknown) => {
            child.observe(elapsed(ctx, own));
            metrics.actionErrors.inc({ action: action.name, code: classify(err).code });
            throw err;
          },
        );
      };
    },
  } as unknown as Middleware;
}
