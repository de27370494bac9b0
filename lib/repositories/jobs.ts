import type { Knex } from 'knex';
import type { TenantScope } from '../ports/tenant-scope.ts';

export const JOB_STATUSES = ['queued', 'running', 'ready', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/**
 * The job state machine. `running → queued` is a redelivery after a worker died;
 * `failed/canceled → queued` is a retry. `ready` is final.
 */
export const JOB_TRANSITIONS: Record<JobStatus, readonly JobStatus[]> = {
  queued: ['running', 'canceled'],
  running: ['ready', 'failed', 'canceled', 'queued'],
  failed: ['queued'],
  canceled: ['queued'],
  ready: [],
};

export interface JobRow {
  id: string;
  tenantId: string;
  type: string;
  status: JobStatus;
  step: string | null;
  progress: number;
  attempts: number;
  maxAttempts: number;
  error: string | null;
  errorCode: string | null;
  idempotencyKey: string;
  documentId: string | null;
  payload: Record<string, unknown>;
  cancelRequested: boolean;
  createdBy: string | null;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface NewJob {
  type: string;
  idempotencyKey: string;
  documentId?: string | null;
  payload?: Record<string, unknown>;
  maxAttempts?: number;
  createdBy?: string | null;
}

export interface JobPatch {
  step?: string | null;
  progress?: number;
  error?: string | null;
  errorCode?: string | null;
  attempts?: number;
}

export class JobsRepository {
  constructor(private readonly knex: Knex) {}

  /** Idempotent: a second create with the same key returns the first job with created=false. */
  async create(scope: TenantScope, input: NewJob, trx: Knex = this.knex): Promise<{ job: JobRow; created: boolean }> {
    const [row] = await trx('jobs')
      .insert({
        tenant_id: scope.tenantId,
        type: input.type,
        idempotency_key: input.idempotencyKey,
        document_id: input.documentId ?? null,
        payload: JSON.stringify(input.payload ?? {}),
        max_attempts: input.maxAttempts ?? 5,
        created_by: input.createdBy ?? null,
      })
      .onConflict(['tenant_id', 'idempotency_key'])
      .ignore()
      .returning('*');
    if (row) return { job: toJob(row), created: true };
    const existing = await trx('jobs').where({ tenant_id: scope.tenantId, idempotency_key: input.idempotencyKey }).first();
    return { job: toJob(existing), created: false };
  }

  async get(scope: TenantScope, id: string, trx: Knex = this.knex): Promise<JobRow | null> {
    const row = await trx('jobs').where({ tenant_id: scope.tenantId, id }).first();
    return row ? toJob(row) : null;
  }

  async list(scope: TenantScope, options: { status?: JobStatus; documentId?: string; limit: number }): Promise<JobRow[]> {
    const query = this.knex('jobs')
      .where({ tenant_id: scope.tenantId })
      .orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }])
      .limit(Math.min(Math.max(options.limit, 1), 500));
    if (options.status) query.where({ status: options.status });
    if (options.documentId) query.where({ document_id: options.documentId });
    return (await query).map(toJob);
  }

  /**
   * Moves a job to `to` only from a state that allows it, in one UPDATE, so two
   * workers racing on one job cannot both win. Returns null when the job is absent
   * or its state forbids the move.
   */
  async transition(scope: TenantScope, id: string, to: JobStatus, patch: JobPatch = {}, trx: Knex = this.knex): Promise<JobRow | null> {
    const from = JOB_STATUSES.filter((s) => JOB_TRANSITIONS[s].includes(to));
    if (from.length === 0) return null;
    const now = trx.fn.now();
    const [row] = await trx('jobs')
      .where({ tenant_id: scope.tenantId, id })
      .whereIn('status', from)
      .update({
        status: to,
        ...(patch.step !== undefined && { step: patch.step }),
        ...(patch.progress !== undefined && { progress: patch.progress }),
        ...(patch.error !== undefined && { error: patch.error }),
        ...(patch.errorCode !== undefined && { error_code: patch.errorCode }),
        ...(patch.attempts !== undefined && { attempts: patch.attempts }),
        ...(to === 'running' && { started_at: now }),
        ...((to === 'ready' || to === 'failed' || to === 'canceled') && { finished_at: now }),
        ...(to === 'queued' && { finished_at: null, cancel_requested: false }),
        updated_at: now,
      })
      .returning('*');
    return row ? toJob(row) : null;
  }

  /** Progress within the current state; null (nothing changed) once the job left `running`. */
  async reportProgress(scope: TenantScope, id: string, step: string, progress: number): Promise<JobRow | null> {
    const [row] = await this.knex('jobs')
      .where({ tenant_id: scope.tenantId, id, status: 'running' })
      .update({ step, progress: Math.min(Math.max(progress, 0), 1), updated_at: this.knex.fn.now() })
      .returning('*');
    return row ? toJob(row) : null;
  }

  async requestCancel(scope: TenantScope, id: string, trx: Knex = this.knex): Promise<boolean> {
    const updated = await trx('jobs')
      .where({ tenant_id: scope.tenantId, id })
      .whereIn('status', ['queued', 'running'])
      .update({ cancel_requested: true, updated_at: trx.fn.now() });
    return updated === 1;
  }

  /** A redelivered job that was `running` when its worker died: counts the attempt, keeps the state. */
  async resume(scope: TenantScope, id: string, attempts: number): Promise<JobRow | null> {
    const [row] = await this.knex('jobs')
      .where({ tenant_id: scope.tenantId, id, status: 'running' })
      .update({ attempts, updated_at: this.knex.fn.now() })
      .returning('*');
    return row ? toJob(row) : null;
  }

  /** The jobs of a document that have not finished, newest first. */
  async listOpen(scope: TenantScope, documentId: string, trx: Knex = this.knex): Promise<JobRow[]> {
    const rows = await trx('jobs')
      .where({ tenant_id: scope.tenantId, document_id: documentId })
      .whereIn('status', ['queued', 'running'])
      .orderBy('created_at', 'desc');
    return rows.map(toJob);
  }

  /**
   * Jobs left `queued` or `running` (all tenants): the embedded queue lives in memory,
   * so at boot these are queued again; in the mesh the sweeper re-queues those whose
   * message may have been lost (`staleBefore`).
   */
  async listUnfinished(type: string, options: { staleBefore?: Date; limit: number }): Promise<JobRow[]> {
    const query = this.knex('jobs').where({ type }).whereIn('status', ['queued', 'running']).orderBy('created_at').limit(options.limit);
    if (options.staleBefore) query.where('updated_at', '<', options.staleBefore);
    return (await query).map(toJob);
  }

  /**
   * Open jobs of every tenant by type and status, and how many of them have not moved
   * since `stuckBefore` (metrics: a running job updates its progress while it works).
   */
  async countOpen(stuckBefore: Date): Promise<Array<{ type: string; status: 'queued' | 'running'; count: number; stuck: number }>> {
    const rows = (await this.knex('jobs')
      .select('type', 'status')
      .count({ count: '*' })
      .select(this.knex.raw('count(*) filter (where updated_at < ?) as stuck', [stuckBefore]))
      .whereIn('status', ['queued', 'running'])
      .groupBy('type', 'status')) as Array<Record<string, unknown>>;
    return rows.map((r) => ({ type: String(r.type), status: r.status as 'queued' | 'running', count: Number(r.count), stuck: Number(r.stuck) }));
  }
}

function toJob(row: Record<string, unknown>): JobRow {
  const date = (v: unknown) => (v ? new Date(v as string) : null);
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    type: row.type as string,
    status: row.status as JobStatus,
    step: row.step as string | null,
    progress: Number(row.progress),
    attempts: row.attempts as number,
    maxAttempts: row.max_attempts as number,
    error: row.error as string | null,
    errorCode: row.error_code as string | null,
    idempotencyKey: row.idempotency_key as string,
    documentId: row.document_id as string | null,
    payload: (typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload) as Record<string, unknown>,
    cancelRequested: row.cancel_requested as boolean,
    createdBy: row.created_by as string | null,
    createdAt: new Date(row.created_at as string),
    updatedAt: new Date(row.updated_at as string),
    startedAt: date(row.started_at),
    finishedAt: date(row.finished_at),
  };
}
