import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Readable } from 'node:stream';
import type { ServiceSchema } from 'moleculer';
import { appError } from '../../lib/errors.ts';
import { ndjson } from '../../lib/streams.ts';
import { LLM_ABORT_EVENT } from '../../lib/llm/types.ts';
import type { Consumer } from '../../lib/ports/job-queue.ts';
import { JobsRepository, type JobRow } from '../../lib/repositories/jobs.ts';
import { readinessAction, type CallMeta, type RagmeshContext, type Runtime } from '../../lib/runtime/service-kit.ts';
import { JobObserver } from '../../lib/metrics/job-observer.ts';
import { JOB_CANCEL_EVENT, JOB_UPDATED_EVENT, jobView } from '../ingest/job-model.ts';
import { ANALYZE_QUEUE, AnalyzeCanceled, AnalyzeWorkerStopping, analyzeMessage, runAnalyzeJob, type AnalyzeDeps } from './job.ts';

/** How much of a document the LLM is shown to summarise it (its beginning). */
const LLM_SUMMARY_INPUT_CHARS = 12_000;

/**
 * The analyze worker: consumes the `analyze` queue and writes each document's
 * analysis (summary, outline with pages, key terms, entities, counts) to object
 * storage. Jobs move through the same states as ingest, reported as `jobs.updated`.
 */
export default function analyzeService(runtime: Runtime): ServiceSchema {
  const { config } = runtime;
  let consumer: Consumer | null = null;
  const running = new Map<string, AbortController>();

  return {
    name: 'analyze',
    actions: {
      readiness: readinessAction('analyze', runtime),
    },

    events: {
      [JOB_CANCEL_EVENT]: {
        handler(ctx: RagmeshContext<{ jobId: string }>) {
          running.get(ctx.params.jobId)?.abort(new AnalyzeCanceled());
        },
      },
    },

    async started() {
      const [db, objects, kv, queue] = await Promise.all([runtime.stores.db(), runtime.stores.objects(), runtime.stores.kv(), runtime.stores.queue()]);
      const broker = this.broker;
      const observer = runtime.metrics ? new JobObserver(runtime.metrics) : null;
      const deps: AnalyzeDeps = {
        db,
        objects,
        kv,
        queue,
        logger: runtime.logger,
        workerId: `${broker.nodeID}:${process.pid}:${os.hostname()}:analyze`,
        maxAttempts: config.queue.maxAttempts,
        backoffMs: config.queue.backoffMs,
        lockTtlMs: config.queue.leaseMs,
        publishJob: (job: JobRow) => {
          // Stage timings and outcomes are read off every job update (lib/metrics/job-observer.ts).
          observer?.observe(job);
          void broker.broadcast(JOB_UPDATED_EVENT, jobView(job)).catch(() => undefined);
        },
        running,
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
      };
      consumer = await queue.consume(ANALYZE_QUEUE, (delivery) => runAnalyzeJob(deps, delivery), { prefetch: 2 });
      if (queue.backend === 'memory') {
        // The in-process queue starts empty: the job rows say what is still to do.
        const unfinished = await new JobsRepository(db.knex).listUnfinished('analyze', { limit: 1000 });
        for (const job of unfinished) await queue.publish(ANALYZE_QUEUE, analyzeMessage(job));
      }
    },

    async stopped() {
      for (const controller of running.values()) controller.abort(new AnalyzeWorkerStopping());
      await consumer?.close();
      consumer = null;
    },
  };
}
