import type { Knex } from 'knex';

/**
 * A posting table for the lexical leg: one row per (tenant, configuration, lexeme,
 * chunk) with the lexeme's frequency in the chunk (tf) and the chunk's BM25 length.
 *
 * BM25 of a query is then a sum over the postings of its terms, read from one index
 * in term order (an index-only scan: tf and len are included in it), instead of
 * fetching each candidate chunk's tsvector and picking the query's lexemes out of it
 * (~5 µs a candidate, which at 100k chunks made p95 ~250 ms). lib/search prunes
 * with MaxScore on top of it (docs/search.md).
 *
 * Kept by statement-level triggers on `chunks`, in the same transaction as the chunk
 * rows, like `search_terms` (migration 2026112420_search): inserts add the chunk's
 * lexemes, deletes (repository calls and cascades alike) remove them. Chunk text and
 * language are immutable, so an update never changes them.
 */

const CONFIG_OF_LANG = (col: string) => `case ${col} when 'ru' then 'russian' when 'en' then 'english' else 'simple' end`;

/** Own transaction (below), so that the visibility map can be set after it (VACUUM refuses to run in one). */
export const config = { transaction: false };

export async function up(root: Knex): Promise<void> {
  await root.transaction(async (knex) => {
    await knex.raw(`
      create table search_postings (
        tenant_id text not null,
        config text not null,
        term text not null,
        chunk_id uuid not null,
        tf smallint not null,
        len integer not null,
        primary key (tenant_id, config, term, chunk_id) include (tf, len)
      )`);
    // The backfill reads every chunk once: on a large database it outlasts the pool's
    // statement timeout, which guards queries, not this one-off (`set local` ends with
    // this transaction).
    await knex.raw('set local statement_timeout = 0');
    await knex.raw(`
      insert into search_postings (tenant_id, config, term, chunk_id, tf, len)
      select c.tenant_id, ${CONFIG_OF_LANG('c.lang')}, u.lexeme, c.id, least(coalesce(array_length(u.positions, 1), 1), 32767), c.tsv_len
      from chunks c, unnest(c.tsv) u`);
    await knex.raw(`
      create function ragmesh_chunks_postings_insert() returns trigger language plpgsql as $$
      begin
        insert into search_postings (tenant_id, config, term, chunk_id, tf, len)
        select r.tenant_id, ${CONFIG_OF_LANG('r.lang')}, u.lexeme, r.id, least(coalesce(array_length(u.positions, 1), 1), 32767), r.tsv_len
        from new_rows r, unnest(r.tsv) u;
        return null;
      end $$`);
    await knex.raw(`
      create function ragmesh_chunks_postings_delete() returns trigger language plpgsql as $$
      begin
        delete from search_postings p
        using old_rows r, unnest(r.tsv) u
        where p.tenant_id = r.tenant_id and p.config = ${CONFIG_OF_LANG('r.lang')} and p.term = u.lexeme and p.chunk_id = r.id;
        return null;
      end $$`);
    await knex.raw(`
      create trigger chunks_postings_insert after insert on chunks
      referencing new table as new_rows for each statement execute function ragmesh_chunks_postings_insert()`);
    await knex.raw(`
      create trigger chunks_postings_delete after delete on chunks
      referencing old table as old_rows for each statement execute function ragmesh_chunks_postings_delete()`);
  });
  // The lexical leg reads postings by index-only scans, which fetch the heap row of
  // every posting on a page the visibility map does not yet mark all-visible: at 100k
  // chunks 1 s instead of 40 ms per query. PostgreSQL's autovacuum sets the map by
  // itself; PGlite runs no autovacuum, so the backfill is vacuumed here.
  const { rows } = await root.raw(`select count(*)::int as n from pg_stat_activity where backend_type = 'autovacuum launcher'`);
  await root.raw(Number(rows[0]?.n ?? 0) > 0 ? 'analyze search_postings' : 'vacuum analyze search_postings');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger if exists chunks_postings_insert on chunks');
  await knex.raw('drop trigger if exists chunks_postings_delete on chunks');
  await knex.raw('drop function if exists ragmesh_chunks_postings_insert()');
  await knex.raw('drop function if exists ragmesh_chunks_postings_delete()');
  await knex.raw('drop table if exists search_postings');
}
