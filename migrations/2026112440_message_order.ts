import type { Knex } from 'knex';

/**
 * Messages written in the same millisecond (a question and a cached answer) tied on
 * created_at and came back in random order; a sequence gives the order they were written.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table messages add column seq bigserial');
  await knex.raw('create index messages_chat_seq on messages (tenant_id, chat_id, seq)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists messages_chat_seq');
  await knex.raw('alter table messages drop column seq');
}
