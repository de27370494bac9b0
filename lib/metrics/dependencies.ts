import { degradations } from '../adapters/dependency-health.ts';
import type { Metrics } from './metrics.ts';

/**
 * Operations that ran degraded because a dependency was unreachable (an answer-cache
 * read without Redis, a stream cap counted in-process…), as counted by the adapters in
 * lib/adapters/dependency-health.ts; copied in at scrape time.
 */
export function registerDependencyMetrics(metrics: Metrics): void {
  metrics.counterFromScrape(
    'ragmesh_degraded_operations_total',
    'Operations of this process that ran degraded since it started because a dependency was unreachable, by dependency (kv = Redis) and use (answer-cache, stream-cap, rate-limit)',
    ['dependency', 'use'],
    () =>
      Object.entries(degradations.snapshot()).map(([key, value]) => {
        const [dependency, use] = key.split(':') as [string, string];
        return { labels: { dependency, use }, value };
      }),
  );
}
