import os from 'node:os';
import type { ServiceSchema } from 'moleculer';
import { whenUp } from '../../lib/adapters/dependency-health.ts';
import { jobsContext } from '../../lib/jobs/context.ts';
import { JOB_CANCEL_EVENT, JOB_UPDATED_EVENT, jobView } from '../../lib/jobs/model.ts';
import { INGEST_JOB } from '../../lib/jobs/types/index.ts';
import { JobCanceled, runJobDelivery, WorkerShutdown } from '../../lib/jobs/worker.ts';
import { JobObserver } from '../../lib/metrics/job-observer.ts';
import type { Consumer } from '../../lib/ports/job-queue.ts';
import { SEARCH_TABLES_CHANGED_EVENT, SearchTablesUpkeep } from '../../lib/search/upkeep.ts';
import { readinessAction, type CallMeta, type RagmeshContext, type Runtime } from '../../lib/runtime/service-kit.ts';
import { closeOcr, ocrActions, ocrEvents } from './ocr.actions.ts';
import { ingestHandler } from './pipeline.ts';

/**
 * The ingest worker: consumes the `ingest` queue with bounded prefetch and runs each
 * delivery through the jobs module (lease, heartbeat, retry, dead letter) with the
 * ingest pipeline as the handler (services/ingest/pipeline.ts); serves OCR for it.
 * Status changes go out as `jobs.updated` events, which the api turns into SSE.
 */
export default function ingestService(runtime: Runtime): ServiceSchema {
  const { config } = runtime;
  let consumer: Consumer | null = null;
  let upkeep: SearchTablesUpkeep | null = null;
  const running = new Map<string, AbortController>();
  const stopping = new AbortController();

  return {
    name: 'ingest',
    actions: {
      readiness: readinessAction('ingest', runtime),
      ...ocrActions(runtime),
    },

    events: {
      ...ocrEvents(runtime),
      /** A cancel asked through the api reaches the worker running the job, wherever it is. */
      [JOB_CANCEL_EVENT]: {
        handler(ctx: RagmeshContext<{ jobId: string }>) {
          running.get(ctx.params.jobId)?.abort(new JobCanceled());
        },
      },
      /** Chunk rows went outside ingest (a document deleted): their dead rows and statistics. */
      [SEARCH_TABLES_CHANGED_EVENT]: {
        handler() {
          upkeep?.noteWrites();
        },
      },
    },

    async started() {
      const broker = this.broker;
      const [db, objects, vectors, kv, queue] = await Promise.all([
        runtime.stores.db(),
        runtime.stores.objects(),
        runtime.stores.vectors(),
        runtime.stores.kv(),
        runtime.stores.queue(),
      ]);
      // Every status and step change passes here, so stage timings and outcomes are read off it.
      const observer = runtime.metrics ? new JobObserver(runtime.metrics) : null;
      const jobs = await jobsContext(runtime, {
        updated: (job) => {
          observer?.observe(job);
          void broker.broadcast(JOB_UPDATED_EVENT, jobView(job)).catch(() => undefined);
        },
        cancelRequested: (jobId) => void broker.broadcast(JOB_CANCEL_EVENT, { jobId }).catch(() => undefined),
      });
      // Ingest is what changes the search tables in bulk, so it keeps their statistics
      // (and, without autovacuum, their visibility map) fresh; and checks once at start.
      upkeep = new SearchTablesUpkeep({ knex: async () => db.knex, logger: runtime.logger });
      upkeep.start();
      const handler = ingestHandler({
        jobs,
        repos: jobs.repos,
        objects,
        vectors,
        kv,
        logger: runtime.logger,
        chunking: { targetTokens: config.ingest.chunkTargetTokens, overlapTokens: config.ingest.chunkOverlapTokens },
        ocr: config.models.ocrEnabled,
        chunksWritten: () => upkeep?.noteWrites(),
        // Calls made for a job carry its principal and one request id, so the logs of
        // every hop (emb, ocr) group under the job.
        callerFor: (job) => {
          const meta: CallMeta = job.createdBy ? { auth: { tenantId: job.tenantId, userId: job.createdBy, roles: ['editor'] } } : {};
          return <T>(action: string, params: unknown, options: { timeout?: number } = {}) =>
            broker.call(action, params as object, { meta, requestID: `job-${job.id}`, ...options }) as Promise<T>;
        },
      });
      const workerId = `${broker.nodeID}:${process.pid}:${os.hostname()}`;

      // While PostgreSQL is unreachable the worker pauses: deliveries wait (at most the
      // prefetch of them) instead of failing; they run when it is back. Job leases live
      // in PostgreSQL, so Redis being away does not stop ingest. A delivery that still
      // fails to record its outcome comes back through the delay queues (lib/jobs/worker.ts).
      const gates = [db.health];
      for (const health of gates) {
        health.on('down', () => runtime.logger.warn({ queue: INGEST_JOB.queue, dependency: health.name }, 'consumption paused: dependency unreachable'));
        health.on('up', (downMs) => runtime.logger.info({ queue: INGEST_JOB.queue, dependency: health.name, downMs }, 'consumption resumed'));
      }
      consumer = await queue.consume(
        INGEST_JOB.queue,
        (delivery) => whenUp(gates, () => runJobDelivery(jobs, handler, delivery, { workerId, running }), stopping.signal),
        { prefetch: config.ingest.concurrency },
      );
    },

    async stopped() {
      stopping.abort(new WorkerShutdown());
      for (const controller of running.values()) controller.abort(new WorkerShutdown());
      await consumer?.close();
      consumer = null;
      await upkeep?.close();
      upkeep = null;
      await closeOcr(runtime);
    },
  };
}
