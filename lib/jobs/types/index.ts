/**
 * Every job type of the product. A new type is a file here that calls defineJobType
 * and extends JobPayloads, plus one import line below; nothing else in lib/jobs changes.
 */
import './ingest.ts';
import './analyze.ts';
import './reindex.ts';
import { jobTypes } from '../registry.ts';

/** Every queue some job type uses (metrics, dead-letter listings, reconciliation). */
export function jobQueues(): string[] {
  return [...new Set(jobTypes().map((t) => t.queue))];
}

export { INGEST_JOB, type IngestPayload } from './ingest.ts';
export { ANALYZE_JOB, type AnalyzePayload } from './analyze.ts';
export { REINDEX_JOB, type ReindexPayload } from './reindex.ts';
