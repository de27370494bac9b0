import os from 'node:os';
import type { ServiceSchema } from 'moleculer';
import { JobObserver } from '../../lib/metrics/job-observer.ts';
import { whenUp, type DependencyHealth } from '../../lib/adapters/dependency-health.ts';
import type { Consumer } from '../../lib/ports/job-queue.ts';
import { JobsRepository, type JobRow } from '../../lib/repositories/jobs.ts';
import { readinessAction, type CallMeta, type RagmeshContext, type Runtime } from '../../lib/runtime/service-kit.ts';
import { JOB_CANCEL_EVENT, JOB_UPDATED_EVENT, jobView } from './job-model.ts';
import { closeOcr, ocrActions, ocrEvents } from './ocr.actions.ts';
import { JobCanceled, runIngestJob, WorkerShutdown, type PipelineDeps } from './pipeline.ts';

/** How often the mesh looks for queued jobs whose message may never have reached RabbitMQ. */
const SWEEP_EVERY_MS = 60_000;
const STALE_AFTER_MS = 10 * 60_000;

/**
 * The ingest worker: consumes the `ingest` queue with bounded prefetch and runs the
 * pipeline (services/ingest/pipeline.ts); serves OCR for it. Status changes go out as
 * `jobs.updated` events, which the api turns into SSE.
 */
export default function ingestService(runtime: Runtime): ServiceSchema {
  const { config } = runtime;
  let consumer: Consumer | null = null;
  let sweeper: NodeJS.Timeout | null = null;
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
    },

    async started() {
      const [db, objects, vectors, kv, queue] = await Promise.all([
        runtime.stores.db(),
        runtime.stores.objects(),
        runtime.stores.vectors(),
        runtime.stores.kv(),
        runtime.stores.queue(),
      ]);
      const broker = this.broker;
      // Every status and step change passes here, so stage timings and outcomes are read off it.
      const observer = runtime.metrics ? new JobObserver(runtime.metrics) : null;
      const publishJob = (job: JobRow) => {
        observer?.observe(job);
        void broker.broadcast(JOB_UPDATED_EVENT, jobView(job)).catch(() => undefined);
      };
      const deps: PipelineDeps = {
        db,
        objects,
        vectors,
        kv,
        queue,
        logger: runtime.logger,
        workerId: `${broker.nodeID}:${process.pid}:${os.hostname()}`,
        maxAttempts: config.queue.maxAttempts,
        backoffMs: config.queue.backoffMs,
        lockTtlMs: config.queue.lockTtlMs,
        chunking: { targetTokens: config.ingest.chunkTargetTokens, overlapTokens: config.ingest.chunkOverlapTokens },
        // Calls made for a job carry its principal and one request id, so the logs of
        // every hop (emb, ocr) group under the job.
        callerFor: (job) => {
          const meta: CallMeta = job.createdBy ? { auth: { tenantId: job.tenantId, userId: job.createdBy, roles: ['editor'] } } : {};
          return <T>(action: string, params: unknown, options: { timeout?: number } = {}) =>
            broker.call(action, params as object, { meta, requestID: `job-${job.id}`, ...options }) as Promise<T>;
        },
        publishJob,
        running,
      };

      // While PostgreSQL is unreachable the worker pauses: deliveries wait (at most the
      // prefetch of them) instead of failing and spending attempts; they run when it is back.
      // The same for Redis while it holds the job locks.
      const gates = [db.health, ...('health' in kv ? [(kv as { health: DependencyHealth }).health] : [])];
      for (const health of gates) {
        health.on('down', () => runtime.logger.warn({ queue: 'ingest', dependency: health.name }, 'consumption paused: dependency unreachable'));
        health.on('up', (downMs) => runtime.logger.info({ queue: 'ingest', dependency: health.name, downMs }, 'consumption resumed'));
      }
      consumer = await queue.consume(
        'ingest',
        (delivery) => whenUp(gates, () => runIngestJob(deps, delivery), stopping.signal),
        { prefetch: config.ingest.concurrency },
      );

      if (queue.backend === 'memory') {
        // The in-process queue starts empty: the job rows say what is still to do.
        await requeueUnfinished(runtime, {});
      } else {
        sweeper = setInterval(() => {
          void requeueUnfinished(runtime, { staleBefore: new Date(Date.now() - STALE_AFTER_MS) }).catch((err: unknown) =>
            runtime.logger.warn({ err }, 'ingest sweep failed'),
          );
        }, SWEEP_EVERY_MS);
        sweeper.unref();
      }
    },

    async stopped() {
      if (sweeper) clearInterval(sweeper);
      stopping.abort(new WorkerShutdown());
      for (const controller of running.values()) controller.abort(new WorkerShutdown());
      await consumer?.close();
      consumer = null;
      await closeOcr(runtime);
    },
  };
}

/**
 * Publishes a message for every unfinished ingest job. Safe to repeat: a worker
 * ignores messages of finished jobs and the job lock keeps one worker per job. A job
 * left `running` by a dead process resumes from its last stored step.
 */
async function requeueUnfinished(runtime: Runtime, options: { staleBefore?: Date }): Promise<number> {
  const [db, queue] = await Promise.all([runtime.stores.db(), runtime.stores.queue()]);
  const jobs = await new JobsRepository(db.knex).listUnfinished('ingest', { ...options, limit: 1000 });
  for (const job of jobs) {
    await queue.publish('ingest', { jobId: job.id, tenantId: job.tenantId, type: 'ingest', attempt: job.attempts + 1, enqueuedAt: new Date().toISOString() });
  }
  if (jobs.length > 0) runtime.logger.info({ count: jobs.length }, 'unfinished ingest jobs queued again');
  return jobs.length;
}
