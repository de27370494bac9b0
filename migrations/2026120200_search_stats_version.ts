import type { Knex } from 'knex';

/**
 * A version per tenant in `search_stats`, changed by every statement that inserts or
 * deletes chunk rows of the tenant, in the same transaction. A random value (below
 * 2^52, so exact in JavaScript), not a counter: a counter comes back to values it had
 * after a restore of an older backup, and postings held for the old value would pass
 * for current.
 *
 * Why: the api keeps a tenant's postings in memory for the lexical leg
 * (lib/search/lexical-index.ts); it may use them only while nothing changed since it
 * read them, and the version it reads with the statistics in the same statement says so.
 */

export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table search_stats add column version bigint not null default 0');
  for (const [op, rows] of [
    ['insert', 'new_rows'],
    ['delete', 'old_rows'],
  ] as const) {
    // An upsert, not an update: it does not depend on firing after chunks_stats_* (triggers fire by name).
    await knex.raw(`
      create function ragmesh_chunks_version_${op}() returns trigger language plpgsql as $$
      begin
        insert into search_stats as s (tenant_id, version)
        select tenant_id, floor(random() * 4503599627370496)::bigint from (select distinct tenant_id from ${rows}) t order by tenant_id
        on conflict (tenant_id) do update set version = excluded.version;
        return null;
      end $$`);
    await knex.raw(`
      create trigger chunks_version_${op} after ${op} on chunks
      referencing ${op === 'insert' ? 'new' : 'old'} table as ${rows}
      for each statement execute function ragmesh_chunks_version_${op}()`);
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const op of ['insert', 'delete']) {
    await knex.raw(`drop trigger if exists chunks_version_${op} on chunks`);
    await knex.raw(`drop function if exists ragmesh_chunks_version_${op}()`);
  }
  await knex.raw('alter table search_stats drop column if exists version');
}
