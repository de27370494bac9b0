import type { Knex } from 'knex';

/**
 * When a job began waiting out an outage (a store or the service bus out of reach):
 * such failures give their attempt back until JOB_OUTAGE_PATIENCE_MS has passed since.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('jobs', (t) => {
    t.timestamp('outage_since', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('jobs', (t) => {
    t.dropColumn('outage_since');
  });
}
