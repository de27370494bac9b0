import type { Middleware } from 'moleculer';
import { classify } from '../errors.ts';
import { Metrics } from './metrics.ts';

/**
 * Latency and errors of every action this process handles, by action name (declared
 * names only: bounded). Added last to the broker's middlewares so it wraps the others.
 */
export function actionMetricsMiddleware(metrics: Metrics): Middleware {
  return {
    name: 'RagmeshMetrics',
    localAction(next: (ctx: unknown) => Promise<unknown>, action: { name: string }) {
      const labels = { action: action.name };
      return function timed(ctx: unknown) {
        const elapsed = Metrics.since();
        return next(ctx).then(
          (result) => {
            metrics.actionDuration.observe(labels, elapsed());
            return result;
          },
          (err: unknown) => {
            metrics.actionDuration.observe(labels, elapsed());
            metrics.actionErrors.inc({ action: action.name, code: classify(err).code });
            throw err;
          },
        );
      };
    },
  } as unknown as Middleware;
}
