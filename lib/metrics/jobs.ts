import { jobQueues } from '../jobs/types/index.ts';
import type { Stores } from '../runtime/stores.ts';
import type { Metrics } from './metrics.ts';

/** A job that has not moved for this long is counted as stuck (the alert fires on it). */
export const STUCK_AFTER_MS = 10 * 60_000;

/**
 * Queue depth, dead letters and open/stuck jobs, read from RabbitMQ (or the memory
 * queue) and the jobs table when Prometheus scrapes. Registered by the api, which has
 * both stores; every api replica reports the same numbers, so dashboards take max().
 */
/**
 * One read shared by the gauges of one scrape: collect() runs for every gauge of a scrape
 * at once, and two gauges read the same numbers (ready and dead of a queue; open and
 * stuck jobs), so the store is asked once per scrape, not once per gauge.
 */
function perScrape<T>(read: () => Promise<T>, freshForMs = 1000): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | null = null;
  return () => {
    const now = performance.now();
    if (!last || now - last.at > freshForMs) last = { at: now, value: read() };
    return last.value;
  };
}

export function registerJobGauges(metrics: Metrics, stores: Pick<Stores, 'repos' | 'queue'>): void {
  const depths = perScrape(async () => {
    const queue = await stores.queue();
    return Promise.all(jobQueues().map(async (name) => ({ name, ...(await queue.depth(name)) })));
  });
  metrics.gaugeFromScrape('ragmesh_queue_depth', 'Messages waiting in a job queue', ['queue'], async () =>
    (await depths()).map((d) => ({ labels: { queue: d.name }, value: d.ready })),
  );
  metrics.gaugeFromScrape('ragmesh_queue_dead_letters', 'Messages parked in the dead-letter queue of a job queue', ['queue'], async () =>
    (await depths()).map((d) => ({ labels: { queue: d.name }, value: d.dead })),
  );
  const openJobs = perScrape(async () => (await stores.repos()).jobs.countOpen(new Date(Date.now() - STUCK_AFTER_MS)));
  metrics.gaugeFromScrape('ragmesh_jobs_open', 'Jobs queued or running, by job type and status (all tenants)', ['type', 'status'], async () =>
    (await openJobs()).map((r) => ({ labels: { type: r.type, status: r.status }, value: r.count })),
  );
  metrics.gaugeFromScrape('ragmesh_jobs_stuck', `Jobs queued or running that have not moved for ${STUCK_AFTER_MS / 60_000} minutes, by job type and status`, ['type', 'status'], async () =>
    (await openJobs()).map((r) => ({ labels: { type: r.type, status: r.status }, value: r.stuck })),
  );
}
