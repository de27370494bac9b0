import type { Knex } from 'knex';

/**
 * Term statistics for BM25, kept per tenant as chunks come and go.
 *
 * PostgreSQL's own ranking (ts_rank, ts_rank_cd) has no inverse document frequency,
 * so the lexical leg scores BM25 from these tables instead (measured on Cranfield:
 * nDCG@10 0.234 with ts_rank_cd against 0.360 with BM25).
 *
 * - `chunks.tsv_len`: a chunk's length in indexed tokens (stop words excluded), the
 *   BM25 document length.
 * - `search_stats`: one row per tenant: chunk count and total length (for avgdl), and
 *   how many chunks each full-text configuration holds (which configs a query needs).
 * - `search_terms`: document frequency of each lexeme per tenant and configuration.
 *
 * Statement-level triggers with transition tables keep them exact in the same
 * transaction as the chunk rows, whatever deletes them (a repository call, the
 * cascade of a document or tenant delete). Every trigger run first upserts the
 * tenant's `search_stats` row, so concurrent writers of one tenant queue on that row
 * before touching any term row: they cannot deadlock on term rows, and df never
 * drifts. Tenants do not wait for each other.
 */

const CONFIG_OF_LANG = `case lang when 'ru' then 'russian' when 'en' then 'english' else 'simple' end`;

export async function up(knex: Knex): Promise<void> {
  // Immutable, so a generated column may use it: positions per lexeme summed. A
  // lexeme has at most 256 positions in a tsvector; a chunk never gets near that.
  await knex.raw(`
    create function ragmesh_tsv_length(v tsvector) returns integer
    language sql immutable parallel safe strict as $$
      select coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0)::integer from unnest(v) as u
    $$`);
  // A generated column cannot read another one (tsv), so the vector is built again here.
  await knex.raw(`
    alter table chunks add column tsv_len integer generated always as (
      ragmesh_tsv_length(case lang
        when 'ru' then to_tsvector('russian', text)
        when 'en' then to_tsvector('english', text)
        else to_tsvector('simple', text)
      end)
    ) stored`);

  await knex.schema.createTable('search_stats', (t) => {
    // No foreign key to tenants: deleting a tenant cascades to its chunks, whose
    // trigger then brings these rows to zero; a key would refuse that write.
    t.text('tenant_id').primary();
    t.bigInteger('chunk_count').notNullable().defaultTo(0);
    t.bigInteger('total_length').notNullable().defaultTo(0);
    t.bigInteger('russian_chunks').notNullable().defaultTo(0);
    t.bigInteger('english_chunks').notNullable().defaultTo(0);
    t.bigInteger('simple_chunks').notNullable().defaultTo(0);
  });
  await knex.schema.createTable('search_terms', (t) => {
    t.text('tenant_id').notNullable();
    t.text('config').notNullable();
    t.text('term').notNullable();
    t.integer('df').notNullable();
    t.primary(['tenant_id', 'config', 'term']);
  });
  // Finds the rows a delete brought to zero without scanning the tenant's vocabulary.
  await knex.raw('create index search_terms_zero on search_terms (tenant_id) where df <= 0');
  await knex.raw(`alter table search_terms add constraint search_terms_config_check check (config in ('russian','english','simple'))`);

  // Seeds the statistics of chunks written before this migration.
  await knex.raw(`
    insert into search_stats (tenant_id, chunk_count, total_length, russian_chunks, english_chunks, simple_chunks)
    select tenant_id, count(*), coalesce(sum(tsv_len), 0),
           count(*) filter (where lang = 'ru'), count(*) filter (where lang = 'en'),
           count(*) filter (where lang not in ('ru', 'en'))
    from chunks group by tenant_id`);
  await knex.raw(`
    insert into search_terms (tenant_id, config, term, df)
    select c.tenant_id, ${CONFIG_OF_LANG}, u.lexeme, count(*)
    from chunks c, unnest(c.tsv) u group by 1, 2, 3`);

  for (const [op, sign, rows] of [
    ['insert', 1, 'new_rows'],
    ['delete', -1, 'old_rows'],
  ] as const) {
    await knex.raw(`
      create function ragmesh_chunks_stats_${op}() returns trigger language plpgsql as $$
      begin
        insert into search_stats as s (tenant_id, chunk_count, total_length, russian_chunks, english_chunks, simple_chunks)
        select tenant_id, ${sign} * count(*), ${sign} * coalesce(sum(tsv_len), 0),
               ${sign} * count(*) filter (where lang = 'ru'), ${sign} * count(*) filter (where lang = 'en'),
               ${sign} * count(*) filter (where lang not in ('ru', 'en'))
        from ${rows} group by tenant_id order by tenant_id
        on conflict (tenant_id) do update set
          chunk_count = s.chunk_count + excluded.chunk_count,
          total_length = s.total_length + excluded.total_length,
          russian_chunks = s.russian_chunks + excluded.russian_chunks,
          english_chunks = s.english_chunks + excluded.english_chunks,
          simple_chunks = s.simple_chunks + excluded.simple_chunks;
        ${
          sign === 1
            ? `insert into search_terms as t (tenant_id, config, term, df)
               select r.tenant_id, ${CONFIG_OF_LANG.replaceAll('lang', 'r.lang')}, u.lexeme, count(*)
               from new_rows r, unnest(r.tsv) u group by 1, 2, 3 order by 1, 2, 3
               on conflict (tenant_id, config, term) do update set df = t.df + excluded.df;`
            : `update search_terms t set df = t.df - gone.n
               from (
                 select r.tenant_id, ${CONFIG_OF_LANG.replaceAll('lang', 'r.lang')} as config, u.lexeme as term, count(*) as n
                 from old_rows r, unnest(r.tsv) u group by 1, 2, 3
               ) gone
               where t.tenant_id = gone.tenant_id and t.config = gone.config and t.term = gone.term;
               -- A separate statement: one statement cannot both update and delete a row.
               delete from search_terms
               where df <= 0 and tenant_id in (select distinct tenant_id from old_rows);`
        }
        return null;
      end $$`);
    await knex.raw(`
      create trigger chunks_stats_${op} after ${op} on chunks
      referencing ${sign === 1 ? 'new' : 'old'} table as ${rows}
      for each statement execute function ragmesh_chunks_stats_${op}()`);
  }
  // Chunks are replaced, never edited; an update of the indexed text would make the
  // statistics wrong, so it is refused rather than silently tolerated.
  await knex.raw(`
    create function ragmesh_chunks_no_text_update() returns trigger language plpgsql as $$
    begin
      raise exception 'chunk text and language are immutable; delete and insert the chunk instead' using errcode = '55000';
    end $$`);
  await knex.raw(`
    create trigger chunks_no_text_update before update of text, lang, tenant_id on chunks
    for each row when (old.text is distinct from new.text or old.lang is distinct from new.lang or old.tenant_id is distinct from new.tenant_id)
    execute function ragmesh_chunks_no_text_update()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger if exists chunks_no_text_update on chunks');
  await knex.raw('drop trigger if exists chunks_stats_insert on chunks');
  await knex.raw('drop trigger if exists chunks_stats_delete on chunks');
  await knex.raw('drop function if exists ragmesh_chunks_no_text_update()');
  await knex.raw('drop function if exists ragmesh_chunks_stats_insert()');
  await knex.raw('drop function if exists ragmesh_chunks_stats_delete()');
  await knex.schema.dropTableIfExists('search_terms');
  await knex.schema.dropTableIfExists('search_stats');
  await knex.raw('alter table chunks drop column if exists tsv_len');
  await knex.raw('drop function if exists ragmesh_tsv_length(tsvector)');
}
