import { cancelJob, getJob, replayDeadLetter, retryJob } from '../../../lib/jobs/commands.ts';
import { JOB_UPDATED_EVENT, jobView, type JobView } from '../../../lib/jobs/model.ts';
import { jobQueues } from '../../../lib/jobs/types/index.ts';
import { currentRequest } from '../../../lib/logging.ts';
import { tenantScope } from '../../../lib/ports/tenant-scope.ts';
import { JOB_STATUSES, type JobStatus } from '../../../lib/repositories/jobs.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import { JOB_SCHEMA, jobEventsEndpoint, listEndpoint, requireId, scopeOf, type JobFeed } from './job-feed.ts';
import { endpoint, type ApiRouteModule } from './module.ts';

/** Who acts, for the audit entry the command writes: the caller and the request id of its log lines. */
const actorOf = (ctx: RagmeshContext) => ({ userId: ctx.meta.auth!.userId, requestId: currentRequest()?.requestId ?? ctx.requestID ?? null });


/**
 * Jobs of every type: list, get, cancel, retry, the caller's jobs live over SSE, and
 * the dead letters for admins. Each route is one lib/jobs command; this module also
 * feeds the mesh's `jobs.updated` events to the SSE streams of this node.
 */
export function jobRoutes(runtime: Runtime, feed: JobFeed): ApiRouteModule {
  const repos = () => runtime.stores.repos();

  return {
    endpoints: [
      listEndpoint<{ status?: JobStatus; documentId?: string }>({
        path: '/api/v1/jobs',
        permission: 'jobs.read',
        summary: "The tenant's jobs, newest first",
        params: { status: { type: 'enum', values: [...JOB_STATUSES], optional: true }, documentId: { type: 'string', optional: true } },
        item: JOB_SCHEMA,
        action: 'jobs.list',
        async rows(ctx, limit) {
          const { jobs } = await repos();
          const documentId = ctx.params.documentId ? requireId(ctx.params.documentId, 'document') : undefined;
          return (await jobs.list(scopeOf(ctx), { status: ctx.params.status, documentId, limit })).map(jobView);
        },
      }),
      // Before /jobs/:id, which would take "events" for an id.
      jobEventsEndpoint(feed, {
        path: '/api/v1/jobs/events',
        summary: 'SSE: every job the caller started, live',
        async select(req) {
          const auth = req.$ctx.meta.auth!;
          const scope = tenantScope(auth.tenantId);
          const { jobs } = await repos();
          const initial = (await jobs.list(scope, { limit: 50 })).filter((j) => j.createdBy === auth.userId && (j.status === 'queued' || j.status === 'running'));
          return { initial, match: (job) => job.tenantId === scope.tenantId && job.createdBy === auth.userId };
        },
      }),
      endpoint<{ id: string }>({
        method: 'GET',
        path: '/api/v1/jobs/:id',
        permission: 'jobs.read',
        summary: 'One job',
        params: { id: 'string' },
        response: { schema: JOB_SCHEMA },
        errors: ['JOB_NOT_FOUND'],
        action: 'jobs.get',
        async handler(ctx) {
          return jobView(await getJob(await feed.context(ctx.broker), scopeOf(ctx), requireId(ctx.params.id, 'job')));
        },
      }),
      /** Asks the job to stop: the worker running it aborts its step, removes what it wrote, and marks it canceled. */
      endpoint<{ id: string }>({
        method: 'POST',
        path: '/api/v1/jobs/:id/cancel',
        permission: 'jobs.cancel',
        summary: 'Cancel a job: 200 when queued, 202 while its worker stops it',
        params: { id: 'string' },
        response: { schema: JOB_SCHEMA },
        errors: ['JOB_NOT_FOUND', 'JOB_FINISHED'],
        action: 'jobs.cancel',
        async handler(ctx) {
          const { job, final } = await cancelJob(await feed.context(ctx.broker), scopeOf(ctx), requireId(ctx.params.id, 'job'), actorOf(ctx));
          if (!final) ctx.meta.$statusCode = 202;
          return jobView(job);
        },
      }),
      /** Queues a failed or canceled job again; it resumes at the first step without a stored result. */
      endpoint<{ id: string }>({
        method: 'POST',
        path: '/api/v1/jobs/:id/retry',
        permission: 'jobs.retry',
        summary: 'Queue a failed or canceled job again',
        params: { id: 'string' },
        response: { status: 202, schema: JOB_SCHEMA },
        errors: ['JOB_NOT_FOUND', 'JOB_NOT_RETRYABLE', 'DOCUMENT_DELETED'],
        action: 'jobs.retry',
        async handler(ctx) {
          const job = await retryJob(await feed.context(ctx.broker), scopeOf(ctx), requireId(ctx.params.id, 'job'), actorOf(ctx));
          ctx.meta.$statusCode = 202;
          return jobView(job);
        },
      }),
      endpoint<{ queue?: string; limit?: number }>({
        method: 'GET',
        path: '/api/v1/admin/dead-letters',
        permission: 'deadLetters.read',
        summary: "Jobs that failed for good, of the admin's tenant, and the queue depths",
        params: { queue: { type: 'enum', values: jobQueues(), optional: true }, limit: { type: 'number', convert: true, integer: true, min: 1, max: 1000, optional: true } },
        response: { schema: { type: 'object', required: ['items', 'depth'] } },
        action: 'deadLetters.list',
        async handler(ctx) {
          const scope = scopeOf(ctx);
          const queue = await runtime.stores.queue();
          // Without ?queue=, the dead letters of every job queue (ingest first, for older clients).
          const names = ctx.params.queue ? [ctx.params.queue] : jobQueues();
          const letters = (await Promise.all(names.map((name) => queue.listDeadLetters(name, ctx.params.limit ?? 100)))).flat();
          // Dead letters of every tenant share one queue; an admin sees those of their tenant.
          return {
            items: letters
              .filter((l) => l.message.tenantId === scope.tenantId)
              .map((l) => ({ jobId: l.message.jobId, type: l.message.type, attempt: l.message.attempt, reason: l.reason, deadAt: l.deadAt })),
            depth: await queue.depth(names[0]!),
            depths: Object.fromEntries(await Promise.all(names.map(async (name) => [name, await queue.depth(name)] as const))),
          };
        },
      }),
      endpoint<{ jobId: string }>({
        method: 'POST',
        path: '/api/v1/admin/dead-letters/:jobId/replay',
        permission: 'deadLetters.replay',
        summary: 'Queue a dead-lettered job again (audited)',
        params: { jobId: 'string' },
        response: { schema: { type: 'object', required: ['job', 'replayed'] } },
        errors: ['JOB_NOT_FOUND', 'JOB_NOT_RETRYABLE', 'DEAD_LETTER_NOT_FOUND'],
        action: 'deadLetters.replay',
        async handler(ctx) {
          const result = await replayDeadLetter(await feed.context(ctx.broker), scopeOf(ctx), requireId(ctx.params.jobId, 'job'), actorOf(ctx));
          return { job: jobView(result.job), replayed: result.replayed };
        },
      }),
    ],

    events: {
      [JOB_UPDATED_EVENT]: {
        handler(ctx: RagmeshContext<JobView>) {
          feed.publish(ctx.params);
        },
      },
    },
  };
}
