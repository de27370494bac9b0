import type { Knex } from 'knex';

/**
 * Deployment-wide settings every api replica reads (maintenance mode first), and a
 * per-tenant chat retention that the maintenance sweeper applies.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('system_settings', (t) => {
    t.text('key').primary();
    t.jsonb('value').notNullable();
    t.text('updated_by');
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.alterTable('tenants', (t) => {
    t.integer('chat_retention_days');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tenants', (t) => {
    t.dropColumn('chat_retention_days');
  });
  await knex.schema.dropTable('system_settings');
}
