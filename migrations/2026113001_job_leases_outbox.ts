import type { Knex } from 'knex';

/**
 * Job leases and the outbox (issue 15).
 * - A running job is leased to one worker until `lease_expires_at`; the worker renews
 *   it (`heartbeat_at`) while it works. A redelivery or the sweeper may take over a
 *   job whose lease expired; the lease replaces the Redis lock.
 * - `available_at`: when the job's message is due (now, or after a retry's backoff),
 *   so the sweeper can tell a queued row that waits for its delayed message from one
 *   whose message is gone.
 * - `job_outbox`: a message to publish, written in the transaction that writes the
 *   job's state, relayed to the queue after commit (and by the maintenance relay while
 *   the broker is away). Nothing accepted waits on RabbitMQ being up.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('jobs', (t) => {
    t.text('lease_owner');
    t.timestamp('lease_expires_at', { useTz: true });
    t.timestamp('heartbeat_at', { useTz: true });
    t.timestamp('available_at', { useTz: true });
  });
  await knex.raw(`create index jobs_open_by_status on jobs (status, lease_expires_at) where status in ('queued', 'running')`);
  await knex.schema.createTable('job_outbox', (t) => {
    t.bigIncrements('id').primary();
    t.text('tenant_id').notNullable();
    t.uuid('job_id').notNullable();
    t.text('queue').notNullable();
    /** `publish`: to the queue (after `available_at`); `dead`: to its dead letters, with `reason`. */
    t.text('kind').notNullable().defaultTo('publish');
    t.text('reason');
    t.jsonb('message').notNullable();
    t.timestamp('available_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.integer('relay_attempts').notNullable().defaultTo(0);
    t.text('last_error');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.foreign(['tenant_id', 'job_id']).references(['tenant_id', 'id']).inTable('jobs').onDelete('CASCADE');
    t.index(['job_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('job_outbox');
  await knex.raw('drop index if exists jobs_open_by_status');
  await knex.schema.alterTable('jobs', (t) => {
    t.dropColumns('lease_owner', 'lease_expires_at', 'heartbeat_at', 'available_at');
  });
}
