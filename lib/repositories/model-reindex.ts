import type { Knex } from 'knex';
import type { TenantScope } from '../ports/tenant-scope.ts';

/**
 * State of blue/green re-indexes: one row per (alias, version, tenant). Chunks are
 * walked in id order; `cursor` is the last chunk id whose vector is stored in the
 * version's collection, advanced only after that write, so a run killed midway
 * continues after the last stored batch. The run itself is a `reindex` job
 * (lib/jobs/types/reindex.ts) named by `job_id`: the job module owns its lease,
 * heartbeat, retries and cancel, and every write here is guarded by that job id, so a
 * run that was superseded (a restart, a delete) changes nothing.
 */

export type ReindexState = 'running' | 'done' | 'canceled' | 'failed';

export interface ReindexRow {
  alias: string;
  version: string;
  tenantId: string;
  state: ReindexState;
  cursor: string | null;
  done: number;
  total: number;
  passes: number;
  /** The job running (or that last ran) this re-index. */
  jobId: string | null;
  error: string | null;
  startedBy: string | null;
  startedAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

/** A chunk as the re-index needs it: its text plus the payload fields of its vector. */
export interface ReindexChunk {
  id: string;
  documentId: string;
  text: string;
  page: number | null;
  lang: string;
  sourceId: string;
  mime: string;
  documentVersion: number;
  tags: string[];
  createdAt: Date;
}

export class ModelReindexRepository {
  constructor(private readonly knex: Knex) {}

  /** Tenants that own at least one chunk: the ones a deployment-wide re-index visits. */
  async tenantsWithChunks(): Promise<string[]> {
    const rows = await this.knex('chunks').distinct('tenant_id').orderBy('tenant_id');
    return rows.map((r: { tenant_id: string }) => r.tenant_id);
  }

  async countChunks(scope: TenantScope, trx: Knex = this.knex): Promise<number> {
    const row = await trx('chunks').where({ tenant_id: scope.tenantId }).count<{ n: string | number }>({ n: '*' }).first();
    return Number(row?.n ?? 0);
  }

  /**
   * Starts (or restarts) the re-index of `alias@version` for one tenant. A finished or
   * canceled row starts over from the beginning; a running one is left as it is.
   */
  async start(alias: string, version: string, scope: TenantScope, actor: string, trx: Knex = this.knex): Promise<ReindexRow> {
    const total = await this.countChunks(scope, trx);
    await trx('model_reindex')
      .insert({ alias, version, tenant_id: scope.tenantId, state: 'running', total, started_by: actor })
      .onConflict(['alias', 'version', 'tenant_id'])
      .merge({
        state: trx.raw(`case when model_reindex.state = 'running' then model_reindex.state else 'running' end`),
        cursor: trx.raw(`case when model_reindex.state = 'running' then model_reindex.cursor else null end`),
        done: trx.raw(`case when model_reindex.state = 'running' then model_reindex.done else 0 end`),
        passes: trx.raw(`case when model_reindex.state = 'running' then model_reindex.passes else 0 end`),
        started_at: trx.raw(`case when model_reindex.state = 'running' then model_reindex.started_at else now() end`),
        total,
        error: null,
        finished_at: null,
        started_by: actor,
        updated_at: trx.fn.now(),
      });
    return (await this.get(alias, version, scope.tenantId, trx))!;
  }

  async get(alias: string, version: string, tenantId: string, trx: Knex = this.knex): Promise<ReindexRow | null> {
    const row = await trx('model_reindex').where({ alias, version, tenant_id: tenantId }).first();
    return row ? toRow(row) : null;
  }

  async list(filter: { alias?: string; version?: string; tenantId?: string; state?: ReindexState } = {}): Promise<ReindexRow[]> {
    const query = this.knex('model_reindex').orderBy([{ column: 'alias' }, { column: 'version' }, { column: 'tenant_id' }]);
    if (filter.alias) query.where({ alias: filter.alias });
    if (filter.version) query.where({ version: filter.version });
    if (filter.tenantId) query.where({ tenant_id: filter.tenantId });
    if (filter.state) query.where({ state: filter.state });
    return (await query).map(toRow);
  }

  /** Versions being built or already built beside the live one: ingest writes to them too. */
  async buildingVersions(alias?: string): Promise<Array<{ alias: string; version: string }>> {
    const query = this.knex('model_reindex').distinct('alias', 'version').whereIn('state', ['running', 'done']);
    if (alias) query.where({ alias });
    return query;
  }

  /** Names the job that runs this re-index (a start or restart staged it in the same transaction). */
  async setJob(key: ReindexKey, jobId: string, trx: Knex = this.knex): Promise<void> {
    await trx('model_reindex').where(where(key)).update({ job_id: jobId, updated_at: trx.fn.now() });
  }

  /**
   * A failed or canceled run queued again (a retry or a dead-letter replay of its job):
   * its row runs again from its cursor. False when the row belongs to another run.
   */
  async reopen(key: ReindexKey, jobId: string): Promise<boolean> {
    const count = await this.knex('model_reindex')
      .where({ ...where(key), job_id: jobId })
      .whereIn('state', ['failed', 'canceled'])
      .update({ state: 'running', error: null, finished_at: null, updated_at: this.knex.fn.now() });
    return count === 1;
  }

  /**
   * Records one stored batch, only while the row is running under `jobId`: `false`
   * tells the run to stop (canceled, deleted, or restarted under another job).
   */
  async advance(key: ReindexKey, jobId: string, cursor: string | null, added: number, trx: Knex = this.knex): Promise<boolean> {
    const count = await trx('model_reindex')
      .where({ ...where(key), state: 'running', job_id: jobId })
      .update({ cursor, done: trx.raw('done + ?', [added]), updated_at: trx.fn.now() });
    return count === 1;
  }

  /** The first pass ended: the sweep pass starts again from the beginning of the chunks created since. */
  async nextPass(key: ReindexKey, jobId: string, trx: Knex = this.knex): Promise<boolean> {
    const count = await trx('model_reindex')
      .where({ ...where(key), state: 'running', job_id: jobId })
      .update({ cursor: null, passes: trx.raw('passes + 1'), updated_at: trx.fn.now() });
    return count === 1;
  }

  /** The run of `jobId` ended: done (with its job marked ready, same transaction), failed or canceled. */
  async endRun(key: ReindexKey, jobId: string, state: 'done' | 'failed' | 'canceled', error: string | null, trx: Knex = this.knex): Promise<boolean> {
    const count = await trx('model_reindex')
      .where({ ...where(key), state: 'running', job_id: jobId })
      .update({ state, error: state === 'failed' ? error : null, finished_at: trx.fn.now(), updated_at: trx.fn.now() });
    return count === 1;
  }

  /** Marks running rows canceled (their runs stop at their next batch); the rows it changed, with their jobs. */
  async cancel(alias: string, version: string, tenantId?: string, trx: Knex = this.knex): Promise<ReindexRow[]> {
    const query = trx('model_reindex').where({ alias, version, state: 'running' });
    if (tenantId) query.where({ tenant_id: tenantId });
    const rows = await query.update({ state: 'canceled', finished_at: trx.fn.now(), updated_at: trx.fn.now() }).returning('*');
    return rows.map(toRow);
  }

  async remove(alias: string, version: string, trx: Knex = this.knex): Promise<void> {
    await trx('model_reindex').where({ alias, version }).delete();
  }

  /**
   * The next chunks of a tenant after `cursor` in id order. The sweep pass (`since`)
   * revisits only chunks created after the re-index started: an ingest that read the
   * list of versions before the re-index began may have committed them behind the cursor.
   */
  async nextChunks(scope: TenantScope, cursor: string | null, limit: number, since?: Date): Promise<ReindexChunk[]> {
    const query = this.knex('chunks as c')
      .join('documents as d', (j) => j.on('d.tenant_id', 'c.tenant_id').andOn('d.id', 'c.document_id'))
      .where('c.tenant_id', scope.tenantId)
      .select('c.id', 'c.document_id', 'c.text', 'c.page', 'c.lang', 'c.created_at', 'd.source_id', 'd.mime', 'd.version', 'd.tags')
      .orderBy('c.id')
      .limit(limit);
    if (cursor) query.where('c.id', '>', cursor);
    if (since) query.where('c.created_at', '>=', since);
    const rows = await query;
    return rows.map((r: Record<string, unknown>) => ({
      id: r.id as string,
      documentId: r.document_id as string,
      text: r.text as string,
      page: (r.page as number | null) ?? null,
      lang: r.lang as string,
      sourceId: r.source_id as string,
      mime: r.mime as string,
      documentVersion: Number(r.version),
      tags: (r.tags as string[]) ?? [],
      createdAt: new Date(r.created_at as string),
    }));
  }
}

export type ReindexKey = Pick<ReindexRow, 'alias' | 'version' | 'tenantId'>;

function where(key: ReindexKey): Record<string, string> {
  return { alias: key.alias, version: key.version, tenant_id: key.tenantId };
}

function toRow(row: Record<string, unknown>): ReindexRow {
  const date = (v: unknown) => (v == null ? null : new Date(v as string));
  return {
    alias: row.alias as string,
    version: row.version as string,
    tenantId: row.tenant_id as string,
    state: row.state as ReindexState,
    cursor: (row.cursor as string | null) ?? null,
    done: Number(row.done),
    total: Number(row.total),
    passes: Number(row.passes),
    jobId: (row.job_id as string | null) ?? null,
    error: (row.error as string | null) ?? null,
    startedBy: (row.started_by as string | null) ?? null,
    startedAt: new Date(row.started_at as string),
    updatedAt: new Date(row.updated_at as string),
    finishedAt: date(row.finished_at),
  };
}
