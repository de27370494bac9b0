import { randomUUID } from 'node:crypto';
import { defineJobType, PayloadReader } from '../registry.ts';

/** An analysis of a document version (handler: services/analyze/job.ts). */
export interface AnalyzePayload {
  documentId: string;
  /** The document version current when it was asked for; the run analyses the version current then. */
  version: number;
}

declare module '../registry.ts' {
  interface JobPayloads {
    analyze: AnalyzePayload;
  }
}

/**
 * Document → analysis artifact (summary, outline, key terms, entities, counts). It
 * waits for its document's ingest, and never changes its document's status (no
 * documentStatusAfter): an analysis failing or canceled leaves the document as it is.
 */
export const ANALYZE_JOB = defineJobType({
  type: 'analyze',
  queue: 'analyze',
  parse(raw) {
    const r = new PayloadReader('analyze', raw);
    return { documentId: r.string('documentId'), version: r.int('version', 1) };
  },
  documentOf: (payload) => payload.documentId,
  // Every request is its own run (a re-analysis replaces the previous one); one open per document is the route's rule.
  idempotencyKey: (p) => `${p.documentId}:analyze:${p.version}:${randomUUID()}`,
});
