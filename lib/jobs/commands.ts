import type { Knex } from 'knex';
import { appError } from '../errors.ts';
import { forgetDocumentAnswers } from '../llm/answer-cache.ts';
import type { DeadLetter } from '../ports/job-queue.ts';
import { collectionFor } from '../ports/vector-store.ts';
import type { TenantScope } from '../ports/tenant-scope.ts';
import type { DocumentStatus } from '../repositories/documents.ts';
import type { JobRow } from '../repositories/jobs.ts';
import type { JobsContext } from './context.ts';
import { jobMessage } from './message.ts';
import { definitionAndPayload, jobTypeOf, type JobPayloads, type JobTypeName } from './registry.ts';
import './types/index.ts';

/** A job to enqueue: its type and that type's payload, checked at compile time and validated at run time. */
export type NewJobInput<T extends JobTypeName = JobTypeName> = {
  [K in T]: { type: K; payload: JobPayloads[K]; createdBy?: string | null; maxAttempts?: number };
}[T];

export interface EnqueueResult {
  job: JobRow;
  /** False when the same input was enqueued before: `job` is that first job. */
  created: boolean;
}

/**
 * Records a job and its message in the caller's transaction (the outbox): the job
 * and the promise to run it commit together. Call `relayOutbox` after the commit.
 */
export async function stageJob<T extends JobTypeName>(ctx: JobsContext, scope: TenantScope, input: NewJobInput<T>, trx: Knex): Promise<EnqueueResult> {
  const definition = jobTypeOf(input.type);
  const payload = definition.parse(input.payload);
  const { job, created } = await ctx.repos.jobs.create(
    scope,
    {
      type: input.type,
      idempotencyKey: definition.idempotencyKey(payload),
      documentId: definition.documentOf?.(payload) ?? null,
      payload: payload as unknown as Record<string, unknown>,
      maxAttempts: input.maxAttempts ?? ctx.settings.maxAttempts,
      createdBy: input.createdBy ?? null,
    },
    trx,
  );
  if (created) await ctx.repos.outbox.add(scope, { queue: definition.queue, message: jobMessage(job, 1) }, trx);
  return { job, created };
}

/**
 * Enqueues a job of any registered type. Resolves once the job and its message are
 * durable in the database; the message reaches the queue now or, while the broker is
 * away, through the outbox relay when it returns.
 */
export async function enqueueJob<T extends JobTypeName>(ctx: JobsContext, scope: TenantScope, input: NewJobInput<T>): Promise<EnqueueResult> {
  // Answers once the job and its message are durable in the database; the broker gets the message now or on its return.
  const result = await ctx.repos.transaction((trx) => stageJob(ctx, scope, input, trx));
  if (result.created) {
    relaySoon(ctx, [result.job.id]);
    ctx.notify.updated(result.job);
  }
  return result;
}

/**
 * Publishes pending outbox messages (those of `jobIds`, or any) and deletes them once
 * the broker confirmed. A broker that is down leaves them for the next relay; this
 * never throws for that, the outbox row is the promise.
 */
export async function relayOutbox(ctx: JobsContext, options: { jobIds?: string[]; limit?: number } = {}): Promise<{ relayed: number; failed: number }> {
  try {
    const queue = await ctx.queue();
    return await ctx.repos.outbox.drain({ limit: options.limit ?? 100, jobIds: options.jobIds }, async (row) => {
      if (row.kind === 'dead') return queue.deadLetter(row.queue, row.message, row.reason ?? 'unknown');
      const delayMs = row.availableAt.getTime() - Date.now();
      await queue.publish(row.queue, row.message, delayMs > 0 ? { delayMs } : {});
    });
  } catch (err) {
    ctx.logger.warn({ err, jobIds: options.jobIds }, 'job outbox relay failed; the messages stay in the outbox');
    return { relayed: 0, failed: 1 };
  }
}

/**
 * Relays the messages of `jobIds` without making the caller wait for the broker: the
 * outbox already holds them durably, so a request answers at once even while RabbitMQ
 * is away (the publish would wait for a reconnect), and the maintenance relay retries.
 */
export function relaySoon(ctx: JobsContext, jobIds: string[]): void {
  void relayOutbox(ctx, { jobIds });
}

export async function getJob(ctx: JobsContext, scope: TenantScope, jobId: string): Promise<JobRow> {
  const job = await ctx.repos.jobs.get(scope, jobId);
  if (!job) throw appError('JOB_NOT_FOUND', `No job ${jobId}`);
  return job;
}

export interface CancelResult {
  job: JobRow;
  /** True when the job is canceled now; false when its worker was asked to stop (202). */
  final: boolean;
}

/** Who asked for a command, for its audit entry. */
export interface Actor {
  userId: string;
  requestId?: string | null;
}

/**
 * Asks a job to stop. A queued job is canceled right away; a running one by its worker,
 * which removes what it wrote. The request and its audit entry commit together.
 */
export async function cancelJob(ctx: JobsContext, scope: TenantScope, jobId: string, actor: Actor): Promise<CancelResult> {
  const job = await getJob(ctx, scope, jobId);
  if (job.status !== 'queued' && job.status !== 'running') throw appError('JOB_FINISHED', `The job is already ${job.status}`, { status: job.status });
  await ctx.repos.transaction(async (trx) => {
    await ctx.repos.jobs.requestCancel(scope, jobId, trx);
    await ctx.repos.audit.record(scope, { actor: actor.userId, action: 'job.cancel', target: jobId, details: { type: job.type, status: job.status, documentId: job.documentId }, requestId: actor.requestId ?? null }, trx);
  });
  ctx.notify.cancelRequested(jobId);
  if (job.status === 'queued') {
    // Nobody works on it: cancel here, so the answer is final. Its message finds a canceled job and is dropped.
    const canceled = await ctx.repos.transaction(async (trx) => {
      const row = await ctx.repos.jobs.transition(scope, jobId, 'canceled', {}, trx);
      if (row) await settleJobOutcome(ctx, scope, row, 'canceled', trx);
      return row;
    });
    if (canceled) {
      ctx.notify.updated(canceled);
      return { job: canceled, final: true };
    }
  }
  return { job: await getJob(ctx, scope, jobId), final: false };
}

/** Queues a failed or canceled job again; it resumes at the first step without a stored result. Audited with the change. */
export async function retryJob(ctx: JobsContext, scope: TenantScope, jobId: string, actor: Actor): Promise<JobRow> {
  const job = await getJob(ctx, scope, jobId);
  const definition = jobTypeOf(job.type);
  if (job.documentId === null && definition.documentOf) throw appError('DOCUMENT_DELETED', 'The document of this job was deleted');
  if (job.status !== 'failed' && job.status !== 'canceled') throw appError('JOB_NOT_RETRYABLE', `A ${job.status} job cannot be retried`, { status: job.status });
  const queued = await ctx.repos.transaction(async (trx) => {
    if (job.documentId && !(await ctx.repos.documents.get(scope, job.documentId, trx))) throw appError('DOCUMENT_DELETED', 'The document of this job was deleted');
    const row = await ctx.repos.jobs.transition(scope, jobId, 'queued', { attempts: 0, error: null, errorCode: null, availableAt: new Date() }, trx);
    if (!row) throw appError('JOB_NOT_RETRYABLE', `A ${job.status} job cannot be retried`, { status: job.status });
    // Only a type whose outcome decides its document's status (ingest) moves the document; an analysis does not.
    if (row.documentId && definition.documentStatusAfter) await ctx.repos.documents.setStatus(scope, row.documentId, 'queued', trx);
    await ctx.repos.outbox.add(scope, { queue: definition.queue, message: jobMessage(row, 1) }, trx);
    await ctx.repos.audit.record(scope, { actor: actor.userId, action: 'job.retry', target: jobId, details: { type: job.type, from: job.status, errorCode: job.errorCode, documentId: job.documentId }, requestId: actor.requestId ?? null }, trx);
    return row;
  });
  // A dead letter of this job would run it a second time after a replay: take it out.
  await takeDeadLetter(ctx, definition.queue, jobId).catch((err: unknown) => ctx.logger.warn({ err, jobId }, 'could not remove the dead letter of a retried job'));
  relaySoon(ctx, [jobId]);
  ctx.notify.updated(queued);
  return queued;
}

export interface ReplayResult {
  job: JobRow;
  replayed: { reason: string; deadAt: string };
}

/**
 * Runs a dead-lettered job again (admins). The letter is taken from the broker, the
 * job queued with its message in one transaction; if that transaction fails the
 * letter is put back.
 */
export async function replayDeadLetter(ctx: JobsContext, scope: TenantScope, jobId: string, actor: Actor): Promise<ReplayResult> {
  const job = await getJob(ctx, scope, jobId);
  const definition = jobTypeOf(job.type);
  if (job.status === 'ready') throw appError('JOB_NOT_RETRYABLE', `A ${job.status} job cannot be replayed`, { status: job.status });
  if (job.status === 'running' && job.leaseExpiresAt && job.leaseExpiresAt > new Date()) {
    throw appError('JOB_NOT_RETRYABLE', 'The job is running', { status: job.status });
  }
  const letter = await takeDeadLetter(ctx, definition.queue, jobId);
  if (!letter) throw appError('DEAD_LETTER_NOT_FOUND', `No dead letter for job ${jobId}`);
  try {
    const queued = await ctx.repos.transaction(async (trx) => {
      // A row the broker dead-lettered by itself may still say queued/running: it is failed first.
      await ctx.repos.jobs.transition(scope, jobId, 'failed', { error: letter.reason }, trx, { leaseExpiredBefore: new Date() });
      const row = await ctx.repos.jobs.transition(scope, jobId, 'queued', { attempts: 0, error: null, errorCode: null, availableAt: new Date() }, trx);
      if (!row) throw appError('JOB_NOT_RETRYABLE', `A ${job.status} job cannot be replayed`, { status: job.status });
      if (row.documentId && definition.documentStatusAfter) await ctx.repos.documents.setStatus(scope, row.documentId, 'queued', trx);
      await ctx.repos.outbox.add(scope, { queue: definition.queue, message: jobMessage(row, 1) }, trx);
      await ctx.repos.audit.record(scope, { actor: actor.userId, action: 'dead-letter.replay', target: jobId, details: { reason: letter.reason }, requestId: actor.requestId ?? null }, trx);
      return row;
    });
    relaySoon(ctx, [jobId]);
    ctx.notify.updated(queued);
    return { job: queued, replayed: { reason: letter.reason, deadAt: letter.deadAt } };
  } catch (err) {
    await (await ctx.queue()).deadLetter(definition.queue, letter.message, letter.reason).catch((putBack: unknown) =>
      ctx.logger.error({ err: putBack, jobId }, 'a dead letter taken for a replay could not be put back'),
    );
    throw err;
  }
}

async function takeDeadLetter(ctx: JobsContext, queue: string, jobId: string): Promise<DeadLetter | null> {
  return (await ctx.queue()).takeDeadLetter(queue, jobId);
}

export interface DeleteResult {
  id: string;
  deleted: true;
  /** What went with it, per store. */
  removed: { chunks: number; objects: number; collections: number; canceledJobs: number };
}

/**
 * Deletes a document with everything derived from it: its row and chunks (one
 * transaction, its open jobs canceled in intent), then its vectors in every embedding
 * model version, its files and artifacts, and its cached answers.
 */
export async function deleteDocument(ctx: JobsContext, scope: TenantScope, documentId: string, actor: Actor): Promise<DeleteResult> {
  const { repos } = ctx;
  const open: JobRow[] = [];
  const outcome = await repos.transaction(async (trx) => {
    for (const job of await repos.jobs.listOpen(scope, documentId, trx)) {
      await repos.jobs.requestCancel(scope, job.id, trx);
      open.push(job);
    }
    const chunks = await repos.chunks.countByDocument(scope, documentId, trx);
    const removed = await repos.documents.delete(scope, documentId, trx);
    if (removed) await repos.audit.record(scope, { actor: actor.userId, action: 'document.delete', target: documentId, details: { sourceId: removed.sourceId }, requestId: actor.requestId ?? null }, trx);
    return removed ? { removed, chunks } : null;
  });
  if (!outcome) throw appError('DOCUMENT_NOT_FOUND', `No document ${documentId}`);
  for (const job of open) ctx.notify.cancelRequested(job.id);
  if (outcome.chunks > 0) ctx.notify.chunksDeleted?.();

  const [vectors, objects, kv] = await Promise.all([ctx.vectors(), ctx.objects(), ctx.kv()]);
  const versions = (await repos.models.listVersions()).filter((v) => v.kind === 'embed');
  for (const v of versions) {
    await vectors.deleteByDocument(scope, collectionFor(v.alias, v.version), [documentId]).catch((err: unknown) =>
      ctx.logger.warn({ err, documentId, collection: collectionFor(v.alias, v.version) }, 'vectors of a deleted document could not be removed'),
    );
  }
  const keys = new Set<string>();
  if (outcome.removed.objectKey) keys.add(outcome.removed.objectKey);
  for (const job of open) {
    const { definition, payload } = definitionAndPayload(job);
    for (const key of definition.filesOf?.(payload) ?? []) keys.add(key);
  }
  for await (const item of objects.list(`tenants/${scope.tenantId}/documents/${documentId}/`)) keys.add(item.key);
  for (const key of keys) await objects.delete(key).catch((err: unknown) => ctx.logger.warn({ err, key }, 'a file of a deleted document could not be removed'));
  await forgetDocumentAnswers(kv, scope, [documentId]).catch((err: unknown) => ctx.logger.warn({ err, documentId }, 'cached answers of a deleted document could not be removed'));
  return { id: documentId, deleted: true, removed: { chunks: outcome.chunks, objects: keys.size, collections: versions.length, canceledJobs: open.length } };
}

/**
 * Everything a job's end without success settles, in the transaction that records it:
 * its type's own state (`settle`, e.g. a re-index's row) and its document's status.
 */
export async function settleJobOutcome(ctx: Pick<JobsContext, 'repos'>, scope: TenantScope, job: JobRow, outcome: 'failed' | 'canceled', trx?: Knex): Promise<DocumentStatus | null> {
  const definition = jobTypeOf(job.type);
  if (definition.settle) {
    // A payload that does not parse has no state of its type to settle (its run failed on it).
    let payload: JobPayloads[JobTypeName] | null = null;
    try {
      payload = definition.parse(job.payload);
    } catch {
      payload = null;
    }
    if (payload) await definition.settle(ctx.repos, scope, payload, job, outcome, trx);
  }
  return settleDocumentStatus(ctx, scope, job, outcome, trx);
}

/**
 * The one rule for a document's status when its job ends without success: a document
 * that has an indexed version stays `ready` (its old content still answers); a new
 * one takes the job's fate.
 */
export async function settleDocumentStatus(ctx: Pick<JobsContext, 'repos'>, scope: TenantScope, job: JobRow, outcome: 'failed' | 'canceled', trx?: Knex): Promise<DocumentStatus | null> {
  if (!job.documentId) return null;
  const { definition, payload } = definitionAndPayload(job);
  if (!definition.documentStatusAfter) return null;
  const document = await ctx.repos.documents.get(scope, job.documentId, trx);
  if (!document) return null;
  const status = definition.documentStatusAfter(payload, document, outcome);
  await ctx.repos.documents.setStatus(scope, document.id, status, trx);
  return status;
}
