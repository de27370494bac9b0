/** The steps of an ingest job, in order. `job.step` names the one running or last run. */
export const INGEST_STEPS = ['extract', 'chunk', 'embed', 'index'] as const;
export type IngestStep = (typeof INGEST_STEPS)[number];

/** Where each step's share of the progress bar ends. */
export const STEP_PROGRESS_END: Record<IngestStep, number> = { extract: 0.4, chunk: 0.5, embed: 0.9, index: 1 };

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


/** Job events and the client's view of a job live in the jobs module; re-exported for the services built on them here. */
export { JOB_CANCEL_EVENT, JOB_UPDATED_EVENT, jobView, type JobView } from '../../lib/jobs/model.ts';
