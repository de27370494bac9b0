import type { Knex } from 'knex';

/**
 * Per-user API keys (stored as a hash of their secret; the secret is shown once) and
 * indexes for reading the audit log by actor and action.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('api_keys', (t) => {
    // The public half of a key (`rmk_<id>_<secret>`): finds the row without a scan.
    t.text('id').primary();
    t.text('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    t.text('user_id').notNullable();
    t.text('name').notNullable();
    t.specificType('roles', 'text[]').notNullable();
    // SHA-256 of the 32-byte random secret: high entropy, so a fast hash is enough.
    t.text('secret_hash').notNullable();
    t.text('created_by').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_used_at', { useTz: true });
    t.timestamp('revoked_at', { useTz: true });
    t.index(['tenant_id', 'user_id']);
  });
  await knex.raw(
    `alter table api_keys add constraint api_keys_roles_check
       check (roles <@ array['viewer','editor','admin','tenant_admin']::text[])`,
  );
  await knex.raw('create index audit_log_tenant_actor on audit_log (tenant_id, actor, id)');
  await knex.raw('create index audit_log_tenant_action on audit_log (tenant_id, action, id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists audit_log_tenant_action');
  await knex.raw('drop index if exists audit_log_tenant_actor');
  await knex.schema.dropTableIfExists('api_keys');
}
