import type { Knex } from 'knex';

/**
 * The system of record. Every tenant-owned table has `tenant_id`, and references
 * between tenant-owned rows are composite (tenant_id, id) foreign keys, so the
 * database itself refuses a chunk that points at another tenant's document.
 */
export async function up(knex: Knex): Promise<void> {
  const now = knex.fn.now();

  await knex.schema.createTable('tenants', (t) => {
    t.text('id').primary();
    t.text('name').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(now);
  });

  await knex.schema.createTable('users', (t) => {
    t.text('id').primary();
    t.text('display_name');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(now);
  });

  await knex.schema.createTable('memberships', (t) => {
    t.text('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    t.text('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.specificType('roles', 'text[]').notNullable().defaultTo('{viewer}');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(now);
    t.primary(['tenant_id', 'user_id']);
  });
  await knex.raw(
    `alter table memberships add constraint memberships_roles_check
       check (roles <@ array['viewer','editor','admin','tenant_admin']::text[])`,
  );

  await knex.schema.createTable('documents', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    t.text('source_id').notNullable();
    t.text('title');
    t.text('filename');
    t.text('mime').notNullable();
    t.bigInteger('size_bytes').notNullable();
    t.text('content_hash').notNullable();
    t.text('object_key');
    t.specificType('tags', 'text[]').notNullable().defaultTo('{}');
    t.text('status').notNullable().defaultTo('queued');
    t.integer('version').notNullable().defaultTo(1);
    t.text('created_by');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(now);
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(now);
    t.unique(['tenant_id', 'id']);
    t.unique(['tenant_id', 'source_id']);
    t.unique(['tenant_id', 'content_hash']);
  });

  await knex.schema.createTable('chunks', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('tenant_id').notNullable();
    t.uuid('document_id').notNullable();
    t.integer('ord').notNullable();
    t.text('text').notNullable();
    t.integer('page');
    t.text('heading');
    t.text('lang').notNullable().defaultTo('simple');
    t.text('content_hash').notNullable();
    t.integer('token_count').notNullable().defaultTo(0);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(now);
    t.foreign(['tenant_id', 'document_id']).references(['tenant_id', 'id']).inTable('documents').onDelete('CASCADE');
    t.unique(['tenant_id', 'document_id', 'ord']);
    t.index(['tenant_id', 'content_hash']);
  });
  // A generated column cannot cast `lang` to regconfig (not immutable), so each
  // language maps to a literal configuration.
  await knex.raw(`
    alter table chunks add column tsv tsvector generated always as (
      case lang
        when 'ru' then to_tsvector('russian', text)
        when 'en' then to_tsvector('english', text)
        else to_tsvector('simple', text)
      end
    ) stored`);
  // String index type: knex's { indexType: 'GIN' } option silently builds a btree.
  await knex.schema.alterTable('chunks', (t) => t.index(['tsv'], 'chunks_tsv_gin', 'gin'));

  await knex.schema.createTable('jobs', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    t.text('type').notNullable();
    t.text('status').notNullable().defaultTo('queued');
    t.text('step');
    t.float('progress').notNullable().defaultTo(0);
    t.integer('attempts').notNullable().defaultTo(0);
    t.integer('max_attempts').notNullable().defaultTo(5);
    t.text('error');
    t.text('error_code');
    t.text('idempotency_key').notNullable();
    t.uuid('document_id');
    t.jsonb('payload').notNullable().defaultTo('{}');
    t.boolean('cancel_requested').notNullable().defaultTo(false);
    t.text('created_by');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(now);
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(now);
    t.timestamp('started_at', { useTz: true });
    t.timestamp('finished_at', { useTz: true });
    t.unique(['tenant_id', 'id']);
    t.unique(['tenant_id', 'idempotency_key']);
    t.index(['tenant_id', 'status']);
    t.foreign(['tenant_id', 'document_id']).references(['tenant_id', 'id']).inTable('documents').onDelete('SET NULL (document_id)');
  });
  await knex.raw(
    `alter table jobs add constraint jobs_status_check
       check (status in ('queued','running','ready','failed','canceled'))`,
  );

  await knex.schema.createTable('chats', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    t.text('user_id').notNullable();
    t.text('title').notNullable().defaultTo('New chat');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(now);
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(now);
    t.unique(['tenant_id', 'id']);
    t.index(['tenant_id', 'user_id', 'updated_at']);
  });

  await knex.schema.createTable('messages', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('tenant_id').notNullable();
    t.uuid('chat_id').notNullable();
    t.text('role').notNullable();
    t.text('content').notNullable();
    t.jsonb('sources').notNullable().defaultTo('[]');
    t.jsonb('usage');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(now);
    t.foreign(['tenant_id', 'chat_id']).references(['tenant_id', 'id']).inTable('chats').onDelete('CASCADE');
    t.index(['tenant_id', 'chat_id', 'created_at']);
  });
  await knex.raw(`alter table messages add constraint messages_role_check check (role in ('system','user','assistant'))`);

  // Models are deployment-wide, not tenant-owned: every tenant is served by the same versions.
  await knex.schema.createTable('models', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('alias').notNullable();
    t.text('version').notNullable();
    t.text('kind').notNullable();
    t.jsonb('manifest').notNullable();
    t.text('status').notNullable().defaultTo('registered');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(now);
    t.unique(['alias', 'version']);
  });
  await knex.raw(`alter table models add constraint models_kind_check check (kind in ('embed','ocr','llm','rerank'))`);

  await knex.schema.createTable('model_flags', (t) => {
    t.text('alias').primary();
    t.text('active_version').notNullable();
    t.text('previous_version');
    t.text('updated_by');
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(now);
  });

  await knex.schema.createTable('artifacts', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('tenant_id').notNullable();
    t.uuid('job_id').notNullable();
    t.uuid('document_id');
    t.text('kind').notNullable();
    t.text('object_key').notNullable();
    t.text('mime').notNullable();
    t.bigInteger('size_bytes').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(now);
    t.foreign(['tenant_id', 'job_id']).references(['tenant_id', 'id']).inTable('jobs').onDelete('CASCADE');
    t.foreign(['tenant_id', 'document_id']).references(['tenant_id', 'id']).inTable('documents').onDelete('SET NULL (document_id)');
  });

  await knex.schema.createTable('audit_log', (t) => {
    t.bigIncrements('id');
    // Null for deployment-wide admin actions (a model switch), set for tenant actions.
    t.text('tenant_id');
    t.text('actor').notNullable();
    t.text('action').notNullable();
    t.text('target');
    t.jsonb('details').notNullable().defaultTo('{}');
    t.text('request_id');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(now);
    t.index(['tenant_id', 'created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['audit_log', 'artifacts', 'model_flags', 'models', 'messages', 'chats', 'jobs', 'chunks', 'documents', 'memberships', 'users', 'tenants']) {
    await knex.schema.dropTableIfExists(table);
  }
}
