import type { Knex } from 'knex';

/**
 * Analyze jobs name their document in the payload, as every job type whose work is
 * a document does (lib/jobs/types/analyze.ts); rows written before carry it only in
 * `document_id`. A row whose document is gone (document_id set null) keeps the
 * payload it had: its open jobs were asked to cancel with the delete, and a retry of
 * it answers DOCUMENT_DELETED before reading the payload.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`update jobs set payload = payload || jsonb_build_object('documentId', document_id::text) where type = 'analyze' and document_id is not null and payload->>'documentId' is null`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`update jobs set payload = payload - 'documentId' where type = 'analyze'`);
}
