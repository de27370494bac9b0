import { defineJobType, PayloadReader } from '../registry.ts';

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

declare module '../registry.ts' {
  interface JobPayloads {
    ingest: IngestPayload;
  }
}

/** Upload → extract → chunk → embed → index; run by services/ingest/pipeline.ts. */
export const INGEST_JOB = defineJobType({
  type: 'ingest',
  queue: 'ingest',
  parse(raw) {
    const r = new PayloadReader('ingest', raw);
    return {
      documentId: r.string('documentId'),
      sourceId: r.string('sourceId'),
      version: r.int('version', 1),
      objectKey: r.string('objectKey'),
      contentHash: r.string('contentHash'),
      sizeBytes: r.int('sizeBytes', 0),
      mime: r.string('mime'),
      kind: r.string('kind'),
      filename: r.stringOrNull('filename'),
      tags: r.strings('tags'),
    };
  },
  documentOf: (payload) => payload.documentId,
  // Source id + content hash + step, per document: the same bytes submitted twice for
  // one source make one job, while a document deleted and uploaded again gets a new one.
  idempotencyKey: (p) => `${p.documentId}:${p.sourceId}:${p.contentHash}:ingest`,
  // A document with an indexed version stays `ready` (its old content still answers); a new one takes the job's fate.
  documentStatusAfter: (payload, document, outcome) => (document.contentHash !== payload.contentHash ? 'ready' : outcome),
  filesOf: (payload) => [payload.objectKey],
});
