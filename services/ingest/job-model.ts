import type { JobRow } from '../../lib/repositories/jobs.ts';

/** The steps of an ingest job, in order. `job.step` names the one running or last run. */
export const INGEST_STEPS = ['extract', 'chunk', 'embed', 'index'] as const;
export type IngestStep = (typeof INGEST_STEPS)[number];

/** Where each step's share of the progress bar ends. */
export const STEP_PROGRESS_END: Record<IngestStep, number> = { extract: 0.4, chunk: 0.5, embed: 0.9, index: 1 };

/** What an ingest job needs to know about the file version it indexes (jobs.payload). */
export interface IngestPayload {
  documentId: string;
  sourceId: string;
  /** The document version this job makes current when it finishes. */
  version: number;
  objectKey: string;
  contentHash: string;
  sizeBytes: number;
  mime: string;
  kind: string;
  filename: string | null;
  tags: string[];
}

/**
 * Key = source id + content hash + step, per document: the same bytes submitted twice
 * for one source make one job, while a document deleted and uploaded again gets a new one.
 */
export function ingestIdempotencyKey(documentId: string, sourceId: string, contentHash: string): string {
  return `${documentId}:${sourceId}:${contentHash}:ingest`;
}

/** Object keys of a version's files: the intermediate results that let a retry resume. */
export function artifactKeys(tenantId: string, documentId: string, version: number) {
  const base = `tenants/${tenantId}/documents/${documentId}/v${version}`;
  return {
    prefix: `${base}/`,
    extracted: `${base}/extracted.json`,
    chunks: `${base}/chunks.json`,
    embeddings: (collection: string) => `${base}/embeddings/${collection}.f32`,
    embeddingsMeta: (collection: string) => `${base}/embeddings/${collection}.json`,
  };
}

export const JOB_UPDATED_EVENT = 'jobs.updated';
export const JOB_CANCEL_EVENT = 'jobs.cancel';

/** What the SSE streams push: a job as the client sees it (dates as ISO strings, internals left out). */
export type JobView = Omit<JobRow, 'payload' | 'idempotencyKey' | 'cancelRequested' | 'createdAt' | 'updatedAt' | 'startedAt' | 'finishedAt'> & {
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
