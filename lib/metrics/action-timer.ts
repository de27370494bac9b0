import { classify } from '../errors.ts';
import type { HistogramChild } from './hot-histogram.ts';
import type { Metrics } from './metrics.ts';

/** The metrics an action's calls are recorded in. */
export type ActionMetrics = Pick<Metrics, 'actionDuration' | 'actionErrors'>;

/** What the call middleware tells about each call of one action, with its duration in ms. */
export interface ActionTimer {
  ok(ms: number): void;
  failed(ms: number, err: unknown): void;
}

/**
 * Latency and errors of every call of one action this process handles, by action name
 * (declared names only: bounded). Fed by the call-logging middleware
 * (lib/runtime/call-logging-middleware.ts), which already reads the clock before and
 * after every call for its log line, so recording costs one histogram observe per call:
 * no wrapper, promise or clock read of its own. The histogram child is looked up on the
 * action's first call, not when Moleculer wraps the handler: actions never called export
 * no series, as with prom-client's own histograms.
 */
export function actionTimer(metrics: ActionMetrics, action: string): ActionTimer {
  let duration: HistogramChild | null = null;
  return {
    ok(ms) {
      (duration ??= metrics.actionDuration.child({ action })).observe(ms / 1000);
    },
    failed(ms, err) {
      (duration ??= metrics.actionDuration.child({ action })).observe(ms / 1000);
      metrics.actionErrors.inc({ action, code: classify(err).code });
    },
  };
}
