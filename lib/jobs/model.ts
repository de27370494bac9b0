import type { JobRow } from '../repositories/jobs.ts';

/** Broadcast after every change of a job (the api turns it into SSE). */
export const JOB_UPDATED_EVENT = 'jobs.updated';
/** Broadcast when a cancel is asked: the worker running the job aborts its step. */
export const JOB_CANCEL_EVENT = 'jobs.cancel';

/** What the SSE streams push: a job as the client sees it (dates as ISO strings, internals left out). */
export type JobView = Omit<
  JobRow,
  'payload' | 'idempotencyKey' | 'cancelRequested' | 'createdAt' | 'updatedAt' | 'startedAt' | 'finishedAt' | 'leaseOwner' | 'leaseExpiresAt' | 'heartbeatAt' | 'availableAt' | 'outageSince'
> & {
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
};

export function jobView(job: JobRow): JobView {
  return {
    id: job.id,
    tenantId: job.tenantId,
    type: job.type,
    status: job.status,
    step: job.step,
    progress: Math.round(job.progress * 1000) / 1000,
    attempts: job.attempts,
    maxAttempts: job.maxAttempts,
    error: job.error,
    errorCode: job.errorCode,
    documentId: job.documentId,
    createdBy: job.createdBy,
    createdAt: job.createdAt.toISOString(),
    updatedAt: job.updatedAt.toISOString(),
    finishedAt: job.finishedAt?.toISOString() ?? null,
  };
}
