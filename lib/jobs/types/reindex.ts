import { randomUUID } from 'node:crypto';
import { defineJobType, PayloadReader } from '../registry.ts';

/**
 * A blue/green re-index of one tenant's chunks with one embedding version (handler:
 * lib/models/reindex.ts, run by the maintenance service). The job owns the lease,
 * heartbeat, retries, dead letter and cancel; its `model_reindex` row (one per alias,
 * version and tenant, linked by `job_id`) keeps the cursor and the counts that
 * ingest, status and the admin page read.
 */
export interface ReindexPayload {
  alias: string;
  version: string;
}

declare module '../registry.ts' {
  interface JobPayloads {
    reindex: ReindexPayload;
  }
}

export const REINDEX_JOB = defineJobType({
  type: 'reindex',
  queue: 'reindex',
  parse(raw) {
    const r = new PayloadReader('reindex', raw);
    return { alias: r.string('alias'), version: r.string('version') };
  },
  // Every start of a re-index is its own run; one open run per alias, version and tenant is the start command's rule (its row's job_id).
  idempotencyKey: (p) => `${p.alias}@${p.version}:reindex:${randomUUID()}`,
  // A run that failed or was canceled ends its row's state with it (ingest then stops writing to the version).
  async settle(repos, scope, payload, job, outcome, trx) {
    await repos.modelReindex.endRun({ alias: payload.alias, version: payload.version, tenantId: scope.tenantId }, job.id, outcome, job.error, trx);
  },
});
