import type { Knex } from 'knex';
import type { JobMessage } from '../ports/job-queue.ts';
import type { TenantScope } from '../ports/tenant-scope.ts';

export type OutboxKind = 'publish' | 'dead';

export interface OutboxRow {
  id: number;
  tenantId: string;
  jobId: string;
  queue: string;
  kind: OutboxKind;
  /** Why the message goes to the dead letters (kind `dead`). */
  reason: string | null;
  message: JobMessage;
  availableAt: Date;
  relayAttempts: number;
  lastError: string | null;
  createdAt: Date;
}

/**
 * Messages to publish, written in the transaction that writes the job state they
 * announce; the relay publishes them and deletes the row. The queue may see a message
 * twice (a relay that published and died before the delete): consumers are idempotent.
 */
export class OutboxRepository {
  constructor(private readonly knex: Knex) {}

  async add(scope: TenantScope, entry: { queue: string; message: JobMessage; availableAt?: Date; kind?: OutboxKind; reason?: string }, trx: Knex = this.knex): Promise<OutboxRow> {
    const [row] = await trx('job_outbox')
      .insert({
        tenant_id: scope.tenantId,
        job_id: entry.message.jobId,
        queue: entry.queue,
        kind: entry.kind ?? 'publish',
        reason: entry.reason ?? null,
        message: JSON.stringify(entry.message),
        available_at: entry.availableAt ?? trx.fn.now(),
      })
      .returning('*');
    return toOutbox(row);
  }

  /**
   * Runs `relay` on up to `limit` pending rows (all tenants, or the given ids), each
   * locked so two relays never publish the same row at once; a row is deleted when
   * `relay` resolves and kept, with the error, when it throws.
   */
  async drain(options: { limit: number; jobIds?: string[] }, relay: (row: OutboxRow) => Promise<void>): Promise<{ relayed: number; failed: number }> {
    let relayed = 0;
    let failed = 0;
    await this.knex.transaction(async (trx) => {
      const query = trx('job_outbox').orderBy('id').limit(options.limit).forUpdate().skipLocked();
      if (options.jobIds) query.whereIn('job_id', options.jobIds);
      for (const row of (await query).map(toOutbox)) {
        try {
          await relay(row);
          await trx('job_outbox').where({ id: row.id }).delete();
          // A message relayed late is due from now: the sweeper measures a lost message from here.
          if (row.kind === 'publish') {
            await trx('jobs')
              .where({ tenant_id: row.tenantId, id: row.jobId, status: 'queued' })
              .where((q) => q.whereNull('available_at').orWhere('available_at', '<', trx.fn.now()))
              .update({ available_at: trx.fn.now() });
          }
          relayed++;
        } catch (err) {
          await trx('job_outbox').where({ id: row.id }).update({ relay_attempts: row.relayAttempts + 1, last_error: String((err as Error)?.message ?? err).slice(0, 1000) });
          failed++;
          // The queue is down: the next rows would fail the same way.
          break;
        }
      }
    });
    return { relayed, failed };
  }

  async count(): Promise<number> {
    const [row] = await this.knex('job_outbox').count<{ count: string | number }[]>({ count: '*' });
    return Number(row?.count ?? 0);
  }

  async listForJob(scope: TenantScope, jobId: string): Promise<OutboxRow[]> {
    return (await this.knex('job_outbox').where({ tenant_id: scope.tenantId, job_id: jobId }).orderBy('id')).map(toOutbox);
  }
}

function toOutbox(row: Record<string, unknown>): OutboxRow {
  return {
    id: Number(row.id),
    tenantId: row.tenant_id as string,
    jobId: row.job_id as string,
    queue: row.queue as string,
    kind: row.kind as OutboxKind,
    reason: row.reason as string | null,
    message: (typeof row.message === 'string' ? JSON.parse(row.message) : row.message) as JobMessage,
    availableAt: new Date(row.available_at as string),
    relayAttempts: row.relay_attempts as number,
    lastError: row.last_error as string | null,
    createdAt: new Date(row.created_at as string),
  };
}
