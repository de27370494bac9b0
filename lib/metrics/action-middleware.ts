import type { Middleware } from 'moleculer';
import { classify } from '../errors.ts';
import type { HistogramChild } from './hot-histogram.ts';
import type { Metrics } from './metrics.ts';

/**
 * Latency and errors of every action this process handles, by action name (declared
 * names only: bounded). Added last to the broker's middlewares so it wraps the others.
 * The action's histogram child is looked up on its first call (not when Moleculer wraps
 * the handler: actions never called then export no series, as with prom-client's own
 * histograms); later calls cost a clock read on each side and the observe.
 */
export function actionMetricsMiddleware(metrics: Metrics): Middleware {
  return {
    name: 'RagmeshMetrics',
    localAction(next: (ctx: unknown) => Promise<unknown>, action: { name: string }) {
      let duration: HistogramChild | null = null;
      return function timed(ctx: unknown) {
        const started = performance.now();
        const child = (duration ??= metrics.actionDuration.child({ action: action.name }));
        return next(ctx).then(
          (result) => {
            child.observe((performance.now() - started) / 1000);
            return result;
          },
          (err: unknown) => {
            child.observe((performance.now() - started) / 1000);
            metrics.actionErrors.inc({ action: action.name, code: classify(err).code });
            throw err;
          },
        );
      };
    },
  } as unknown as Middleware;
}
