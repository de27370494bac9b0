import type { Knex } from 'knex';

/**
 * Blue/green re-index state: one row per (alias, version, tenant). The cursor is the
 * last chunk id whose vector is written to the version's collection, so a worker that
 * died continues after it; the lease says which worker owns the row right now.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('model_reindex', (t) => {
    t.text('alias').notNullable();
    t.text('version').notNullable();
    t.text('tenant_id').notNullable();
    t.text('state').notNullable().defaultTo('running');
    t.uuid('cursor');
    t.integer('done').notNullable().defaultTo(0);
    t.integer('total').notNullable().defaultTo(0);
    t.integer('passes').notNullable().defaultTo(0);
    t.text('lease_owner');
    t.timestamp('lease_until', { useTz: true });
    t.text('error');
    t.text('started_by');
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('finished_at', { useTz: true });
    t.primary(['alias', 'version', 'tenant_id']);
  });
  await knex.raw(`alter table model_reindex add constraint model_reindex_state_check check (state in ('running','done','canceled','failed'))`);
  // The re-index walks a tenant's chunks in id order from its cursor.
  await knex.raw('create index if not exists chunks_tenant_id_order on chunks (tenant_id, id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists chunks_tenant_id_order');
  await knex.schema.dropTableIfExists('model_reindex');
}
