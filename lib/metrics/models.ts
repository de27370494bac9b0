import { modelMetrics } from '../models/loader.ts';
import type { Metrics } from './metrics.ts';

/**
 * The model runtime counts loads and refused files in lib/models (the loader has no
 * registry of its own); they are exported here as counters read at scrape time.
 */
export function registerModelMetrics(metrics: Metrics): void {
  metrics.counterFromScrape('ragmesh_model_events_total', 'Model runtime events of this process since it started: load = version verified and opened, load_failure = a version that could not be loaded, verify_failure = file refused (SHA-256 or size differ from the manifest), cache_refetch = corrupt cache entry fetched again', ['event'], () => [
    { labels: { event: 'load' }, value: modelMetrics.model_loads_total },
    { labels: { event: 'load_failure' }, value: modelMetrics.model_load_failures_total },
    { labels: { event: 'verify_failure' }, value: modelMetrics.model_integrity_failures_total },
    { labels: { event: 'cache_refetch' }, value: modelMetrics.model_cache_refetches_total },
  ]);
}
