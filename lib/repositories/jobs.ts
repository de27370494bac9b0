import type { Knex } from 'knex';
import type { TenantScope } from '../ports/tenant-scope.ts';

export const JOB_STATUSES = ['queued', 'running', 'ready', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/**
 * The job state machine. `running → queued` is a retry after a failed attempt or a
 * sweep of a job whose worker stopped heart-beating; `failed/canceled → queued` is a
 * retry asked by a user; `queued → failed` is a job whose message RabbitMQ
 * dead-lettered by itself (reconciled by the sweeper). `ready` is final.
 */
export const JOB_TRANSITIONS: Record<JobStatus, readonly JobStatus[]> = {
  queued: ['running', 'canceled', 'failed'],
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
  /** The worker running the job, while its lease holds. */
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  heartbeatAt: Date | null;
  /** When the job's message is due: now, or after a retry's backoff. */
  availableAt: Date | null;
  /** Since when the job has been waiting out an outage of a dependency; null when it is not. */
  outageSince: Date | null;
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
  /** When the job's next message is due (a retry's backoff). */
  availableAt?: Date;
  step?: string | null;
  progress?: number;
  error?: string | null;
  errorCode?: string | null;
  attempts?: number;
  outageSince?: Date | null;
}

/** Conditions a transition also needs, so a worker or sweeper acting on stale knowledge changes nothing. */
export interface TransitionGuard {
  /** Only while this worker holds the lease (a worker finishing its own job). */
  leaseOwner?: string;
  /** Only while the lease is expired (a sweeper taking over). */
  leaseExpiredBefore?: Date;
  /** Only if nobody touched the row since (a reconciliation with an older fact). */
  updatedNotAfter?: Date;
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
        available_at: trx.fn.now(),
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

  async list(scope: TenantScope, options: { status?: JobStatus; documentId?: string; limit: number }, trx: Knex = this.knex): Promise<JobRow[]> {
    const query = trx('jobs')
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
  async transition(scope: TenantScope, id: string, to: JobStatus, patch: JobPatch = {}, trx: Knex = this.knex, guard: TransitionGuard = {}): Promise<JobRow | null> {
    const from = JOB_STATUSES.filter((s) => JOB_TRANSITIONS[s].includes(to));
    if (from.length === 0) return null;
    const now = trx.fn.now();
    const query = trx('jobs').where({ tenant_id: scope.tenantId, id }).whereIn('status', from);
    if (guard.leaseOwner !== undefined) query.where({ lease_owner: guard.leaseOwner });
    if (guard.leaseExpiredBefore) query.where((q) => q.whereNull('lease_expires_at').orWhere('lease_expires_at', '<', guard.leaseExpiredBefore!));
    if (guard.updatedNotAfter) query.where('updated_at', '<=', guard.updatedNotAfter);
    const [row] = await query
      .update({
        status: to,
        ...(patch.step !== undefined && { step: patch.step }),
        ...(patch.progress !== undefined && { progress: patch.progress }),
        ...(patch.error !== undefined && { error: patch.error }),
        ...(patch.errorCode !== undefined && { error_code: patch.errorCode }),
        ...(patch.attempts !== undefined && { attempts: patch.attempts }),
        ...(patch.availableAt !== undefined && { available_at: patch.availableAt }),
        ...(patch.outageSince !== undefined && { outage_since: patch.outageSince }),
        // A job that got anywhere, or failed on its own account, is no longer waiting out an outage.
        ...(patch.outageSince === undefined && to !== 'running' && { outage_since: null }),
        ...(to === 'running' && { started_at: now }),
        // Leaving `running` ends the lease, whoever held it.
        ...(to !== 'running' && { lease_owner: null, lease_expires_at: null }),
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

  /**
   * Takes the job for `owner` in one UPDATE: a queued job, a running job whose lease
   * expired (its worker died or stopped heart-beating), or one this owner already
   * holds. Counts the attempt. Null when someone else holds a live lease or the job
   * is finished, canceled or gone.
   */
  async claim(scope: TenantScope, id: string, owner: string, leaseMs: number): Promise<JobRow | null> {
    const lease = this.knex.raw(`now() + (? * interval '1 millisecond')`, [leaseMs]);
    const [row] = await this.knex('jobs')
      .where({ tenant_id: scope.tenantId, id })
      .where((q) =>
        q
          .where({ status: 'queued' })
          .orWhere((r) => r.where({ status: 'running' }).where((l) => l.whereNull('lease_expires_at').orWhere('lease_expires_at', '<', this.knex.fn.now()).orWhere({ lease_owner: owner }))),
      )
      .update({
        status: 'running',
        attempts: this.knex.raw('attempts + 1'),
        lease_owner: owner,
        lease_expires_at: lease,
        heartbeat_at: this.knex.fn.now(),
        started_at: this.knex.raw('coalesce(started_at, now())'),
        finished_at: null,
        updated_at: this.knex.fn.now(),
      })
      .returning('*');
    return row ? toJob(row) : null;
  }

  /**
   * Renews `owner`'s lease. Null when the lease is no longer this owner's (a sweeper or
   * another worker took the job over): the caller must stop working on it.
   */
  async heartbeat(scope: TenantScope, id: string, owner: string, leaseMs: number): Promise<JobRow | null> {
    const [row] = await this.knex('jobs')
      .where({ tenant_id: scope.tenantId, id, status: 'running', lease_owner: owner })
      .update({ lease_expires_at: this.knex.raw(`now() + (? * interval '1 millisecond')`, [leaseMs]), heartbeat_at: this.knex.fn.now() })
      .returning('*');
    return row ? toJob(row) : null;
  }

  /** Ends `owner`'s lease now (a worker shutting down), so the next delivery takes the job at once. */
  async releaseLease(scope: TenantScope, id: string, owner: string): Promise<boolean> {
    const updated = await this.knex('jobs')
      .where({ tenant_id: scope.tenantId, id, status: 'running', lease_owner: owner })
      .update({ lease_expires_at: this.knex.fn.now() });
    return updated === 1;
  }

  /** Whether `owner` still holds the job's lease, read inside the caller's transaction (row locked). */
  async holdsLease(scope: TenantScope, id: string, owner: string, trx: Knex): Promise<JobRow | null> {
    const row = await trx('jobs').where({ tenant_id: scope.tenantId, id, status: 'running', lease_owner: owner }).forUpdate().first();
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
   * so at boot these are queued again.
   */
  async listUnfinished(type: string | null, options: { limit: number }): Promise<JobRow[]> {
    const query = this.knex('jobs').whereIn('status', ['queued', 'running']).orderBy('created_at').limit(options.limit);
    if (type) query.where({ type });
    return (await query).map(toJob);
  }

  /** Running jobs (all tenants) whose lease ran out before `before`: their worker stopped heart-beating. */
  async listLeaseExpired(before: Date, limit: number, unleasedBefore: Date): Promise<JobRow[]> {
    const rows = await this.knex('jobs')
      .where({ status: 'running' })
      // A running job without a lease (a worker not on leases yet, or one from before them) counts once it stopped moving.
      .where((q) => q.where('lease_expires_at', '<', before).orWhere((n) => n.whereNull('lease_expires_at').where('updated_at', '<', unleasedBefore)))
      .orderBy('updated_at')
      .limit(limit);
    return rows.map(toJob);
  }

  /**
   * Queued jobs (all tenants) whose message was due before `before` and that have no
   * message waiting in the outbox: their message may be gone.
   */
  async listQueuedOverdue(before: Date, limit: number): Promise<JobRow[]> {
    const rows = await this.knex('jobs')
      .where({ status: 'queued' })
      .where((q) => q.where('available_at', '<', before).orWhere((n) => n.whereNull('available_at').where('updated_at', '<', before)))
      .whereNotExists((q) => q.select(this.knex.raw('1')).from('job_outbox').whereRaw('job_outbox.job_id = jobs.id'))
      .orderBy('updated_at')
      .limit(limit);
    return rows.map(toJob);
  }

  /** Marks a queued job's message as published again now (the sweeper), so it is not re-published every sweep. */
  async markRepublished(scope: TenantScope, id: string, trx: Knex = this.knex): Promise<boolean> {
    const updated = await trx('jobs').where({ tenant_id: scope.tenantId, id, status: 'queued' }).update({ available_at: trx.fn.now() });
    return updated === 1;
  }

  /**
   * A queued job that cannot start yet (it waits for another job) is due again at
   * `availableAt`: its row says so, so the sweeper does not take it for a lost message.
   */
  async postpone(scope: TenantScope, id: string, availableAt: Date): Promise<boolean> {
    const updated = await this.knex('jobs').where({ tenant_id: scope.tenantId, id, status: 'queued' }).update({ available_at: availableAt });
    return updated === 1;
  }

  /**
   * Ends every lease (embedded profile at boot): one process owns the database, so a
   * lease held in it belongs to a previous run of this process, which is gone.
   */
  async expireAllLeases(): Promise<number> {
    return this.knex('jobs').where({ status: 'running' }).update({ lease_expires_at: this.knex.fn.now() });
  }

  /** Any job by id regardless of tenant: for the sweepers, which reconcile the whole deployment. */
  async getAnyTenant(id: string): Promise<JobRow | null> {
    const row = await this.knex('jobs').where({ id }).first();
    return row ? toJob(row) : null;
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
    leaseOwner: (row.lease_owner as string | null) ?? null,
    leaseExpiresAt: date(row.lease_expires_at),
    heartbeatAt: date(row.heartbeat_at),
    availableAt: date(row.available_at),
    outageSince: date(row.outage_since),
    createdBy: row.created_by as string | null,
    createdAt: new Date(row.created_at as string),
    updatedAt: new Date(row.updated_at as string),
    startedAt: date(row.started_at),
    finishedAt: date(row.finished_at),
  };
}
