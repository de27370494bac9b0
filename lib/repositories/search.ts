import type { Knex } from 'knex';
import type { SearchFilters, StoredHit } from '../ports/search-hit.ts';
import type { TenantScope } from '../ports/tenant-scope.ts';
import { preparedRaw } from './prepared.ts';

/**
 * The lexical leg's SQL: term statistics (kept by the triggers of migration
 * 2026112420_search), BM25 over PostgreSQL full-text, and the hydration of hits.
 * Every method filters on the tenant scope itself.
 */

/** PostgreSQL text-search configurations, and which chunk languages each indexes. */
export const FT_CONFIGS = ['russian', 'english', 'simple'] as const;
export type FtConfig = (typeof FT_CONFIGS)[number];

/** The configuration that indexes a chunk of this language (as the tsv column and the triggers choose it). */
export function configOfLang(lang: string): FtConfig {
  return lang === 'ru' ? 'russian' : lang === 'en' ? 'english' : 'simple';
}

const LANG_CONDITION: Record<FtConfig, string> = {
  russian: `c.lang = 'ru'`,
  english: `c.lang = 'en'`,
  simple: `c.lang not in ('ru', 'en')`,
};

export interface TenantSearchStats {
  chunkCount: number;
  totalLength: number;
  /** Chunks per configuration: a query needs only the configurations with chunks. */
  chunksPerConfig: Record<FtConfig, number>;
  /** Changed (to a random value) by every write of the tenant's chunk rows (migration 2026120200_search_stats_version). */
  version: number;
}

/** One chunk's lexemes in its configuration, as the posting table holds them. */
export interface ChunkLexemes {
  chunkId: string;
  documentId: string;
  ord: number;
  config: FtConfig;
  /** BM25 length (positions summed, tsv_len). */
  len: number;
  terms: string[];
  /** tf of each of `terms`, in the same order. */
  tfs: number[];
}

export interface QueryTerm {
  term: string;
  /** How often the query says it (BM25 with repeated query terms). */
  qtf: number;
}

/** The filters of a search, normalised (lib/search) before they reach SQL. */
export type SearchRowFilters = SearchFilters;

/**
 * The tables a search reads, whose statistics lib/search/upkeep.ts keeps. `documents` is
 * joined to every hit: never analyzed (a bulk load, PGlite without autovacuum) the planner
 * took a tenant's 1,000 documents for 3 rows and joined each hit to all of them.
 */
export const SEARCH_TABLES = ['search_postings', 'search_terms', 'chunks', 'documents'] as const;
export type SearchTable = (typeof SEARCH_TABLES)[number];

export interface SearchTableState {
  table: SearchTable;
  /** pg_class.reltuples: the row count the planner last learned (0 if never). */
  plannedRows: number;
  modifiedSinceAnalyze: number;
  /** Rows inserted since the last vacuum plus dead rows. */
  changedSinceVacuum: number;
  /** Whether ANALYZE ever stored column statistics for it (none: every estimate is a default). */
  hasStatistics: boolean;
  /** Its size now, and the pages the visibility map marked all-visible at the last vacuum. */
  pages: number;
  allVisiblePages: number;
}

export interface LexicalPlan {
  config: FtConfig;
  /** Every scored term with its weight in the sum (qtf × idf). */
  terms: Array<{ term: string; weight: number }>;
  /** Terms whose chunks become candidates (the commonest may only score, see lib/search). */
  recruit: string[];
  phrases: string[];
  excluded: string[];
}

export interface PostingPlan {
  config: FtConfig;
  /** Every scored term: weight in the sum (qtf × idf) and the most it can add to one chunk. */
  terms: Array<{ term: string; weight: number; bound: number }>;
  /** The terms whose postings give the first lower bound θ (the rarest). */
  first: string[];
}

export interface LexicalHit {
  chunkId: string;
  score: number;
}

/**
 * A normalized lexeme as a tsquery operand. The input syntax of tsquery quotes a
 * lexeme in '…' and escapes ' and \ inside it; built only from lexemes PostgreSQL
 * produced itself, and bound as a value, never spliced into SQL.
 */
export function quoteLexeme(lexeme: string): string {
  return `'${lexeme.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** Any of the lexemes (OR), as tsquery text. */
export function anyOf(lexemes: string[]): string {
  return lexemes.map(quoteLexeme).join(' | ');
}

export class SearchRepository {
  constructor(private readonly knex: Knex) {}

  async stats(scope: TenantScope): Promise<TenantSearchStats> {
    const row = await this.knex('search_stats').where({ tenant_id: scope.tenantId }).first();
    return {
      chunkCount: Number(row?.chunk_count ?? 0),
      totalLength: Number(row?.total_length ?? 0),
      chunksPerConfig: {
        russian: Number(row?.russian_chunks ?? 0),
        english: Number(row?.english_chunks ?? 0),
        simple: Number(row?.simple_chunks ?? 0),
      },
      version: Number(row?.version ?? 0),
    };
  }

  /** Every term of the tenant with its df, by configuration: the size of each posting list. */
  async tenantTerms(scope: TenantScope): Promise<Array<{ config: FtConfig; term: string; df: number }>> {
    const rows = (await this.knex('search_terms').where({ tenant_id: scope.tenantId }).where('df', '>', 0).select('config', 'term', 'df')) as Array<{ config: FtConfig; term: string; df: number | string }>;
    return rows.map((r) => ({ config: r.config, term: r.term, df: Number(r.df) }));
  }

  /**
   * A page of the tenant's chunks with their lexemes and tf, in (document, ord) order
   * after `after`: what lib/search/lexical-index.ts builds its postings from. tf is
   * counted as the posting table's triggers count it (positions, at least 1).
   */
  async chunkLexemes(scope: TenantScope, after: { documentId: string; ord: number } | null, limit: number): Promise<ChunkLexemes[]> {
    const { rows } = await this.knex.raw(
      `select c.id, c.document_id, c.ord, c.lang, c.tsv_len, coalesce(l.terms, '{}') as terms, coalesce(l.tfs, '{}') as tfs
       from chunks c
       cross join lateral (
         select array_agg(u.lexeme order by u.lexeme) as terms, array_agg(coalesce(array_length(u.positions, 1), 1) order by u.lexeme) as tfs
         from unnest(c.tsv) u
       ) l
       where c.tenant_id = ? ${after ? 'and (c.document_id, c.ord) > (?::uuid, ?::int)' : ''}
       order by c.document_id, c.ord
       limit ?`,
      after ? [scope.tenantId, after.documentId, after.ord, limit] : [scope.tenantId, limit],
    );
    return (rows as Array<{ id: string; document_id: string; ord: number; lang: string; tsv_len: number; terms: string[]; tfs: number[] }>).map((r) => ({
      chunkId: r.id,
      documentId: r.document_id,
      ord: Number(r.ord),
      config: configOfLang(r.lang),
      len: Number(r.tsv_len),
      terms: r.terms,
      tfs: r.tfs.map(Number),
    }));
  }

  /**
   * The query's lexemes in each configuration, as PostgreSQL's own parser, stemmer
   * and stop-word lists make them (the same calls that built the chunks' tsvectors).
   */
  async analyze(_scope: TenantScope, text: string, configs: FtConfig[]): Promise<Map<FtConfig, QueryTerm[]>> {
    const result = new Map<FtConfig, QueryTerm[]>(configs.map((c) => [c, []]));
    if (configs.length === 0) return result;
    const { rows } = await this.knex.raw(
      `select c.cfg, u.lexeme, coalesce(array_length(u.positions, 1), 1) as qtf
       from unnest(?::text[]) as c(cfg), unnest(to_tsvector(c.cfg::regconfig, ?)) as u
       order by c.cfg, u.lexeme`,
      [configs, text],
    );
    for (const row of rows as Array<{ cfg: FtConfig; lexeme: string; qtf: number }>) {
      result.get(row.cfg)!.push({ term: row.lexeme, qtf: Number(row.qtf) });
    }
    return result;
  }

  /**
   * Everything BM25 needs to plan a query, in one round trip: the tenant's statistics,
   * the query's lexemes in each configuration that has chunks (PostgreSQL's parser,
   * stemmer and stop words, as for the chunks) and each lexeme's document frequency.
   */
  async queryStatistics(scope: TenantScope, text: string): Promise<{ stats: TenantSearchStats; terms: Map<FtConfig, Array<QueryTerm & { df: number }>> }> {
    // Prepared: planning it cost more than running it (lib/repositories/prepared.ts).
    const { rows } = await preparedRaw(
      this.knex,
      `with s as (select * from search_stats where tenant_id = ?),
       q as (
         select c.cfg, u.lexeme, coalesce(array_length(u.positions, 1), 1) as qtf
         from s, unnest(array['russian', 'english', 'simple']) as c(cfg), unnest(to_tsvector(c.cfg::regconfig, ?)) as u
         where case c.cfg when 'russian' then s.russian_chunks when 'english' then s.english_chunks else s.simple_chunks end > 0
       )
       select s.chunk_count, s.total_length, s.russian_chunks, s.english_chunks, s.simple_chunks, s.version, q.cfg, q.lexeme, q.qtf, coalesce(t.df, 0) as df
       from s left join q on true
       left join search_terms t on t.tenant_id = s.tenant_id and t.config = q.cfg and t.term = q.lexeme
       order by q.cfg, q.lexeme collate "C"`,
      [scope.tenantId, text],
    );
    const first = (rows as Array<Record<string, unknown>>)[0];
    const stats: TenantSearchStats = {
      chunkCount: Number(first?.chunk_count ?? 0),
      totalLength: Number(first?.total_length ?? 0),
      chunksPerConfig: { russian: Number(first?.russian_chunks ?? 0), english: Number(first?.english_chunks ?? 0), simple: Number(first?.simple_chunks ?? 0) },
      version: Number(first?.version ?? 0),
    };
    const terms = new Map<FtConfig, Array<QueryTerm & { df: number }>>();
    for (const row of rows as Array<{ cfg: FtConfig | null; lexeme: string; qtf: number; df: number }>) {
      if (!row.cfg) continue;
      if (!terms.has(row.cfg)) terms.set(row.cfg, []);
      terms.get(row.cfg)!.push({ term: row.lexeme, qtf: Number(row.qtf), df: Number(row.df) });
    }
    return { stats, terms };
  }

  /** The tenant's statistics version alone (0 before its first chunk): whether postings held in memory are current. */
  async statsVersion(scope: TenantScope): Promise<number> {
    const { rows } = await preparedRaw(this.knex, 'select version from search_stats where tenant_id = ?', [scope.tenantId]);
    return Number((rows as Array<{ version: number | string }>)[0]?.version ?? 0);
  }

  /** Document frequency of terms in one configuration of the tenant (0 when absent). */
  async documentFrequencies(scope: TenantScope, config: FtConfig, terms: string[]): Promise<Map<string, number>> {
    const df = new Map(terms.map((t) => [t, 0]));
    if (terms.length === 0) return df;
    const rows = await this.knex('search_terms')
      .select('term', 'df')
      .where({ tenant_id: scope.tenantId, config })
      .whereIn('term', terms);
    for (const row of rows) df.set(row.term, Number(row.df));
    return df;
  }

  /**
   * BM25 over the chunks matching any recruiting term (and every phrase, and no
   * excluded word), per configuration, merged by score. tf is read from the chunk's
   * tsvector positions, length from `tsv_len`; idf comes in the term weights.
   */
  async bm25(
    scope: TenantScope,
    plans: LexicalPlan[],
    options: { k1: number; b: number; avgLength: number; limit: number; filters?: SearchRowFilters },
  ): Promise<LexicalHit[]> {
    const parts: string[] = [];
    const bindings: Knex.RawBinding[] = [];
    const avgdl = Math.max(options.avgLength, 1);
    for (const plan of plans) {
      const match = tsqueryExpression(plan);
      if (!match || plan.terms.length === 0) continue;
      const filter = filterSql(options.filters);
      // tf per query term without turning the whole tsvector into rows: setweight marks
      // the query's lexemes (chunks are indexed with the default weight D), ts_filter
      // keeps only those, and the few left are unnested — both C functions, ~10× cheaper
      // per candidate than unnesting every lexeme and joining.
      parts.push(`(
        select cand.id, sum(
          (?::float8[])[array_position(?::text[], u.lexeme)] * f.tf * (?::float8 + 1)
          / (f.tf + ?::float8 * (1 - ?::float8 + ?::float8 * cand.tsv_len / ?::float8))
        ) as score
        from (
          select c.id, c.tsv, c.tsv_len
          from chunks c ${filter.join}
          where c.tenant_id = ? and ${LANG_CONDITION[plan.config]} and c.tsv @@ (${match.sql}) ${filter.where}
        ) cand
        cross join lateral unnest(ts_filter(setweight(cand.tsv, 'A', ?::text[]), '{a}')) as u(lexeme, positions, weights)
        cross join lateral (select coalesce(array_length(u.positions, 1), 1)::float8 as tf) f
        group by cand.id
      )`);
      bindings.push(plan.terms.map((t) => t.weight), plan.terms.map((t) => t.term));
      bindings.push(options.k1, options.k1, options.b, options.b, avgdl);
      bindings.push(scope.tenantId, ...match.bindings, ...filter.bindings);
      bindings.push(plan.terms.map((t) => t.term));
    }
    if (parts.length === 0) return [];
    const { rows } = await this.knex.raw(
      `select id, score from (${parts.join(' union all ')}) hits order by score desc, id limit ?`,
      [...bindings, options.limit],
    );
    return (rows as Array<{ id: string; score: number }>).map((r) => ({ chunkId: r.id, score: Number(r.score) }));
  }

  /**
   * BM25 from the posting table (migration 2026120130_search_postings), exact on the
   * top `limit`, with MaxScore pruning in one statement per configuration:
   *
   * 1. θ: the `limit`-th best partial score over the `first` terms (the rarest): a
   *    lower bound of the true `limit`-th score, since a partial sum never exceeds the
   *    full one;
   * 2. the terms of lowest bound whose bounds add up to less than θ are skipped as
   *    recruiters (a chunk holding only those cannot reach the top); the others'
   *    postings are summed;
   * 3. a chunk whose partial sum plus the skipped bounds stays under θ (or under the
   *    `limit`-th partial sum, also a lower bound) is dropped; the rest get the skipped
   *    terms' contributions by index probes, and are ranked.
   *
   * No filters, phrases or exclusions here: those read the chunk rows (`bm25`).
   */
  async bm25Postings(
    scope: TenantScope,
    plans: PostingPlan[],
    options: { k1: number; b: number; avgLength: number; limit: number },
  ): Promise<LexicalHit[]> {
    const avgdl = Math.max(options.avgLength, 1);
    const { k1, b, limit } = options;
    const tfPart = `(p.tf * ${Number(k1 + 1)}::float8 / (p.tf + ${Number(k1)}::float8 * (${Number(1 - b)}::float8 + ${Number(b)}::float8 * p.len / ${Number(avgdl)}::float8)))`;
    const parts: string[] = [];
    const bindings: Knex.RawBinding[] = [];
    for (const plan of plans) {
      if (plan.terms.length === 0) continue;
      // Every read of the postings is a LATERAL subquery fenced by OFFSET 0, so the
      // plan is the same with or without statistics on the table: for each query term
      // (and for each candidate, in the probes) one index range scan of the primary key.
      // Without the fence the planner may join the other way round, and with no
      // statistics (fresh ingest, no autovacuum: PGlite) it did: it read every posting
      // of the tenant for each term, 7.7 s a query on CISI instead of milliseconds.
      const postings = (term: string, extra = '') =>
        `cross join lateral (select p.chunk_id, p.tf, p.len from search_postings p where p.tenant_id = ? and p.config = ? and p.term = ${term}${extra} offset 0) p`;
      parts.push(`(
        with q as (select * from unnest(?::text[], ?::float8[], ?::float8[], ?::boolean[]) as q(term, w, bound, first)),
        a as (
          select p.chunk_id, sum(q.w * ${tfPart}) as s from q ${postings('q.term')}
          where q.first group by p.chunk_id
        ),
        theta as (select coalesce((select s from a order by s desc offset ? limit 1), 0) as v),
        ranked as (select q.term, q.w, sum(q.bound) over (order by q.bound, q.term rows between unbounded preceding and current row) as cum from q),
        skipped as (select coalesce(max(ranked.cum), 0) as v from ranked, theta where ranked.cum < theta.v),
        part as (
          select p.chunk_id, sum(e.w * ${tfPart}) as s
          from ranked e cross join theta ${postings('e.term', ' and e.cum >= theta.v')}
          group by p.chunk_id
        ),
        theta2 as (select greatest((select v from theta), coalesce((select s from part order by s desc offset ? limit 1), 0)) as v),
        cand as (select part.chunk_id, part.s from part, theta2, skipped where part.s + skipped.v >= theta2.v),
        -- The most promising candidates first: their limit-th full score θ3 lets the
        -- others be dropped before their probes when even the skipped bounds cannot
        -- lift them to it.
        top as (
          select c.chunk_id, c.s + coalesce((
            select sum(n.w * ${tfPart})
            from ranked n cross join theta ${postings('n.term', ' and p.chunk_id = c.chunk_id and n.cum < theta.v')}
          ), 0) as score
          from (select * from cand order by s desc, chunk_id limit ?) c
        ),
        theta3 as (select greatest((select v from theta2), coalesce((select score from top order by score desc offset ? limit 1), 0)) as v)
        select chunk_id as id, score from top
        union all
        select c.chunk_id, c.s + coalesce((
          select sum(n.w * ${tfPart})
          from ranked n cross join theta ${postings('n.term', ' and p.chunk_id = c.chunk_id and n.cum < theta.v')}
        ), 0)
        from cand c, theta3, skipped
        where c.s + skipped.v >= theta3.v and not exists (select 1 from top where top.chunk_id = c.chunk_id)
      )`);
      bindings.push(
        plan.terms.map((t) => t.term),
        plan.terms.map((t) => t.weight),
        plan.terms.map((t) => t.bound),
        plan.terms.map((t) => plan.first.includes(t.term)),
      );
      bindings.push(scope.tenantId, plan.config, limit - 1); // a, theta
      bindings.push(scope.tenantId, plan.config, limit - 1); // part, theta2
      bindings.push(scope.tenantId, plan.config, limit * 3, limit - 1); // top, theta3
      bindings.push(scope.tenantId, plan.config); // the rest of cand
    }
    if (parts.length === 0) return [];
    const { rows } = await this.knex.raw(
      `select id, score from (${parts.join(' union all ')}) hits order by score desc, id limit ?`,
      [...bindings, limit],
    );
    return (rows as Array<{ id: string; score: number }>).map((r) => ({ chunkId: r.id, score: Number(r.score) }));
  }

  /**
   * What the planner and the visibility map know of the search tables (lib/search/upkeep.ts
   * decides from it whether to ANALYZE or VACUUM them), and whether autovacuum runs
   * here: PGlite has no autovacuum launcher, nor has a PostgreSQL with autovacuum off.
   */
  async upkeepState(tables: readonly SearchTable[]): Promise<{ autovacuum: boolean; tables: SearchTableState[] }> {
    // A backend keeps its row counts to itself until it flushes them, and PGlite's one
    // backend does not flush on its own: counts of inserts made before an ANALYZE would
    // arrive after it and read as changes since. Flushed at the end of this statement,
    // so the read below sees them (with PostgreSQL, those of this pool connection; other
    // backends flush within seconds).
    await this.knex.raw('select pg_stat_force_next_flush()');
    const { rows } = await this.knex.raw(
      `select c.relname as "table",
              greatest(c.reltuples, 0)::float8 as "plannedRows",
              coalesce(s.n_mod_since_analyze, 0)::float8 as "modifiedSinceAnalyze",
              (coalesce(s.n_ins_since_vacuum, 0) + coalesce(s.n_dead_tup, 0))::float8 as "changedSinceVacuum",
              exists (select 1 from pg_stats st where st.schemaname = n.nspname and st.tablename = c.relname) as "hasStatistics",
              (pg_relation_size(c.oid) / current_setting('block_size')::int)::int as pages,
              c.relallvisible::int as "allVisiblePages",
              exists (select 1 from pg_stat_activity where backend_type = 'autovacuum launcher') as autovacuum
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       left join pg_stat_user_tables s on s.relid = c.oid
       where c.oid = any(?::regclass[])`,
      [[...tables]],
    );
    const state = rows as Array<SearchTableState & { autovacuum: boolean }>;
    return {
      autovacuum: state.some((r) => r.autovacuum),
      tables: state.map(({ autovacuum: _, ...r }) => ({ ...r, plannedRows: Number(r.plannedRows), modifiedSinceAnalyze: Number(r.modifiedSinceAnalyze), changedSinceVacuum: Number(r.changedSinceVacuum) })),
    };
  }

  /**
   * ANALYZE, or VACUUM (ANALYZE), of search tables. SKIP_LOCKED: a table another
   * process is already analyzing or vacuuming is left to it rather than waited for.
   */
  async refreshStatistics(tables: readonly SearchTable[], options: { vacuum: boolean }): Promise<void> {
    if (tables.length === 0) return;
    const names = tables.map((t) => SEARCH_TABLES.find((known) => known === t)!).join(', ');
    await this.knex.raw(options.vacuum ? `vacuum (analyze, skip_locked) ${names}` : `analyze (skip_locked) ${names}`);
  }

  /**
   * Chunks with their document, in the order of `chunkIds`. Ids of other tenants or of
   * replaced chunks are simply absent. (Headlines are made by lib/search/headline.ts.)
   */
  async hits(scope: TenantScope, chunkIds: string[]): Promise<StoredHit[]> {
    if (chunkIds.length === 0) return [];
    // One primary-key lookup per hit, chunk then document, in the order asked: whatever the
    // planner believes of the tables' sizes, never a pass over the tenant's documents.
    // Prepared: planning it cost more than the lookups.
    const { rows } = await preparedRaw(
      this.knex,
      `select c.id, c.document_id, c.page, c.heading, c.text, c.lang, d.source_id, d.title, d.mime, d.tags
       from unnest(?::uuid[]) with ordinality as w(id, ord)
       cross join lateral (select * from chunks c where c.tenant_id = ? and c.id = w.id) c
       cross join lateral (select * from documents d where d.tenant_id = c.tenant_id and d.id = c.document_id) d
       order by w.ord`,
      [chunkIds, scope.tenantId],
    );
    return (rows as Array<Record<string, unknown>>).map(
      (r): StoredHit => ({
        chunkId: r.id as string,
        documentId: r.document_id as string,
        sourceId: r.source_id as string,
        title: (r.title as string | null) ?? null,
        page: (r.page as number | null) ?? null,
        heading: (r.heading as string | null) ?? null,
        text: r.text as string,
        lang: r.lang as string,
        mime: r.mime as string,
        tags: (r.tags as string[]) ?? [],
      }),
    );
  }

  /**
   * Each word's lexemes in its configuration, in the order asked: `to_tsvector`, so the
   * same parser, dictionaries and stemmer as a chunk's own (none for a stop word). A lexeme
   * comes once per position it holds (a compound can hold one twice), so that a query's
   * term frequencies can be counted from its words.
   */
  async lexemes(words: Array<{ config: FtConfig; word: string }>): Promise<string[][]> {
    if (words.length === 0) return [];
    const { rows } = await preparedRaw(
      this.knex,
      `select coalesce((select array_agg(u.lexeme order by p.pos, u.lexeme) from unnest(to_tsvector(w.cfg::regconfig, w.word)) as u, unnest(coalesce(u.positions, '{1}')) as p(pos)), '{}') as lexemes
       from unnest(?::text[], ?::text[]) with ordinality as w(cfg, word, ord)
       order by w.ord`,
      [words.map((w) => w.config), words.map((w) => w.word)],
    );
    return (rows as Array<{ lexemes: string[] }>).map((r) => r.lexemes);
  }
}

/**
 * The match condition of one configuration: any recruiting lexeme, and each
 * phrase, and none of the excluded words. Phrases and excluded words go through
 * phraseto_tsquery, which treats its input as plain text whatever it contains.
 */
function tsqueryExpression(plan: LexicalPlan): { sql: string; bindings: Knex.RawBinding[] } | null {
  const parts: string[] = [];
  const bindings: Knex.RawBinding[] = [];
  if (plan.recruit.length > 0) {
    parts.push('?::tsquery');
    bindings.push(anyOf(plan.recruit));
  }
  for (const phrase of plan.phrases) {
    parts.push(`phraseto_tsquery('${plan.config}', ?)`);
    bindings.push(phrase);
  }
  if (parts.length === 0) return null;
  for (const word of plan.excluded) {
    parts.push(`!! phraseto_tsquery('${plan.config}', ?)`);
    bindings.push(word);
  }
  return { sql: parts.join(' && '), bindings };
}

function filterSql(filters: SearchRowFilters | undefined): { join: string; where: string; bindings: Knex.RawBinding[] } {
  const where: string[] = [];
  const bindings: Knex.RawBinding[] = [];
  let join = '';
  if (filters?.documentIds?.length) {
    where.push('c.document_id = any(?::uuid[])');
    bindings.push(filters.documentIds);
  }
  if (filters?.langs?.length) {
    where.push('c.lang = any(?::text[])');
    bindings.push(filters.langs);
  }
  if (filters?.tags?.length || filters?.sourceIds?.length || filters?.mimes?.length) {
    join = 'join documents d on d.tenant_id = c.tenant_id and d.id = c.document_id';
    if (filters.tags?.length) {
      // Any of the given tags, as in the vector stores.
      where.push('d.tags && ?::text[]');
      bindings.push(filters.tags);
    }
    if (filters.sourceIds?.length) {
      where.push('d.source_id = any(?::text[])');
      bindings.push(filters.sourceIds);
    }
    if (filters.mimes?.length) {
      where.push('d.mime = any(?::text[])');
      bindings.push(filters.mimes);
    }
  }
  return { join, where: where.map((w) => `and ${w}`).join(' '), bindings };
}
