import type { Knex } from 'knex';

/**
 * OCR can be turned off per deployment (OCR_ENABLED=false): a document's pages without
 * a text layer are then kept unread, and the document says which ones.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`alter table documents add column pages_without_text integer[] not null default '{}'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('documents', (t) => {
    t.dropColumn('pages_without_text');
  });
}
