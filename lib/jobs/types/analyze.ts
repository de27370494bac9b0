import { randomUUID } from 'node:crypto';
import { defineJobType, PayloadReader } from '../registry.ts';

/** An analysis of a document version (services/analyze): the job row carries the document. */
export interface AnalyzePayload {
  version: number;
}

declare module '../registry.ts' {
  interface JobPayloads {
    analyze: AnalyzePayload;
  }
}

/**
 * Registered so the lifecycle commands (cancel, retry, replay, sweeps, delete) know its
 * queue; its worker (services/analyze/job.ts) still runs its own claim and retries.
 * An analysis never changes its document's status.
 */
export const ANALYZE_JOB = defineJobType({
  type: 'analyze',
  queue: 'analyze',
  parse(raw) {
    const r = new PayloadReader('analyze', raw);
    return { version: r.int('version', 1) };
  },
  // Every request is its own run (a re-analysis replaces the previous one).
  idempotencyKey: (p) => `analyze:${p.version}:${randomUUID()}`,
});
