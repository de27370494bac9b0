import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { jobMessage } from '../lib/jobs/message.ts';

/**
 * Re-indexes run as `reindex` jobs of the job module (lib/jobs/types/reindex.ts): the
 * job holds the lease, heartbeat, retries and cancel, so the row's own lease goes and
 * the row names its job instead. A re-index running when this migration runs gets a
 * queued job and its message in the outbox (relayed by the maintenance service), and
 * continues from its cursor.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('model_reindex', (t) => {
    t.uuid('job_id');
    t.dropColumns('lease_owner', 'lease_until');
  });
  await knex.raw(`alter table model_reindex add constraint model_reindex_job_fk foreign key (tenant_id, job_id) references jobs (tenant_id, id) on delete set null (job_id)`);
  const running = await knex('model_reindex').where({ state: 'running' }).select('alias', 'version', 'tenant_id', 'started_by');
  for (const row of running as Array<{ alias: string; version: string; tenant_id: string; started_by: string | null }>) {
    const [job] = await knex('jobs')
      .insert({
        tenant_id: row.tenant_id,
        type: 'reindex',
        status: 'queued',
        idempotency_key: `${row.alias}@${row.version}:reindex:${randomUUID()}`,
        payload: JSON.stringify({ alias: row.alias, version: row.version }),
        max_attempts: 5,
        created_by: row.started_by,
        available_at: knex.fn.now(),
      })
      .returning(['id', 'tenant_id', 'type']);
    await knex('job_outbox').insert({ tenant_id: row.tenant_id, job_id: job.id, queue: 'reindex', kind: 'publish', message: JSON.stringify(jobMessage({ id: job.id, tenantId: job.tenant_id, type: job.type }, 1)) });
    await knex('model_reindex').where({ alias: row.alias, version: row.version, tenant_id: row.tenant_id }).update({ job_id: job.id });
  }
}

export async function down(knex: Knex): Promise<void> {
  // The jobs stay as history; the rows get their own lease back (free, so the old worker claims them).
  await knex.raw('alter table model_reindex drop constraint if exists model_reindex_job_fk');
  await knex.schema.alterTable('model_reindex', (t) => {
    t.dropColumn('job_id');
    t.text('lease_owner');
    t.timestamp('lease_until', { useTz: true });
  });
}
