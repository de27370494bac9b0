import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Readable } from 'node:stream';
import type { ServiceSchema } from 'moleculer';
import { whenUp } from '../../lib/adapters/dependency-health.ts';
import { appError } from '../../lib/errors.ts';
import { jobsContext } from '../../lib/jobs/context.ts';
import { JOB_CANCEL_EVENT, JOB_UPDATED_EVENT, jobView } from '../../lib/jobs/model.ts';
import { ANALYZE_JOB } from '../../lib/jobs/types/index.ts';
import { JobCanceled, runJobDelivery, WorkerShutdown } from '../../lib/jobs/worker.ts';
import { ndjson } from '../../lib/streams.ts';
import { LLM_ABORT_EVENT } from '../../lib/llm/types.ts';
import type { Consumer } from '../../lib/ports/job-queue.ts';
import { readinessAction, type CallMeta, type RagmeshContext, type Runtime } from '../../lib/runtime/service-kit.ts';
import { JobObserver } from '../../lib/metrics/job-observer.ts';
import { analyzeHandler } from './job.ts';

/** How much of a document the LLM is shown to summarise it (its beginning). */
const LLM_SUMMARY_INPUT_CHARS = 12_000;

/**
 * The analyze worker: consumes the `analyze` queue and runs each delivery through the
 * jobs module (lease, heartbeat, retry, dead letter, cancel) with the analyze handler
 * (./job.ts), which writes each document's analysis (summary, outline with pages, key
 * terms, entities, counts) to object storage. Status changes go out as `jobs.updated`.
 */
export default function analyzeService(runtime: Runtime): ServiceSchema {
  const { config } = runtime;
  let consumer: Consumer | null = null;
  const running = new Map<string, AbortController>();
  const stopping = new AbortController();

  return {
    name: 'analyze',
    actions: {
      readiness: readinessAction('analyze', runtime),
    },

    events: {
      /** A cancel asked through the api reaches the worker running the job, wherever it is. */
      [JOB_CANCEL_EVENT]: {
        handler(ctx: RagmeshContext<{ jobId: string }>) {
          running.get(ctx.params.jobId)?.abort(new JobCanceled());
        },
      },
    },

    async started() {
      const [db, objects, queue] = await Promise.all([runtime.stores.db(), runtime.stores.objects(), runtime.stores.queue()]);
      const broker = this.broker;
      // Stage timings and outcomes are read off every job update (lib/metrics/job-observer.ts).
      const observer = runtime.metrics ? new JobObserver(runtime.metrics) : null;
      const jobs = await jobsContext(runtime, {
        updated: (job) => {
          observer?.observe(job);
          void broker.broadcast(JOB_UPDATED_EVENT, jobView(job)).catch(() => undefined);
        },
        cancelRequested: (jobId) => void broker.broadcast(JOB_CANCEL_EVENT, { jobId }).catch(() => undefined),
      });
      const handler = analyzeHandler({
        repos: jobs.repos,
        objects,
        logger: runtime.logger,
        // The extractive backend writes no new text: its summary would be the extractive one again.
        llmSummary: config.llm.backend === 'extractive' ? undefined : async (job, text, language, signal) => {
          const generationId = randomUUID();
          const abort = () => void broker.broadcast(LLM_ABORT_EVENT, { generationId });
          signal.addEventListener('abort', abort, { once: true });
          try {
            const meta: CallMeta = job.createdBy ? { auth: { tenantId: job.tenantId, userId: job.createdBy, roles: ['editor'] } } : {};
            const instruction = language === 'ru'
              ? 'Кратко перескажи этот документ в двух-трёх предложениях, только по его тексту.'
              : 'Summarize this document in two or three sentences, using only its text.';
            const stream = (await broker.call(
              'llm.generate',
              { generationId, messages: [{ role: 'system', content: instruction }, { role: 'user', content: text.slice(0, LLM_SUMMARY_INPUT_CHARS) }], sources: [], grounded: false, maxTokens: 256 },
              { meta, requestID: `job-${job.id}` },
            )) as Readable;
            let summary = '';
            for await (const line of ndjson(stream)) {
              if (signal.aborted) {
                stream.destroy();
                throw signal.reason;
              }
              if (line.type === 'token') summary += line.text;
              else if (line.type === 'error') throw appError('LLM_ERROR', line.message);
            }
            return summary.trim() || null;
          } finally {
            signal.removeEventListener('abort', abort);
          }
        },
      });
      const workerId = `${broker.nodeID}:${process.pid}:${os.hostname()}:analyze`;
      // As ingest: while PostgreSQL is unreachable deliveries wait instead of failing.
      // In the embedded profile the maintenance service queues unfinished jobs again at boot (lib/jobs/sweep.ts).
      consumer = await queue.consume(
        ANALYZE_JOB.queue,
        (delivery) => whenUp([db.health], () => runJobDelivery(jobs, handler, delivery, { workerId, running }), stopping.signal),
        { prefetch: 2 },
      );
    },

    async stopped() {
      stopping.abort(new WorkerShutdown());
      for (const controller of running.values()) controller.abort(new WorkerShutdown());
      await consumer?.close();
      consumer = null;
    },
  };
}
