import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { appError, RagmeshError } from '../errors.ts';
import type { ModelManifest } from '../models/manifest.ts';
import { collectionFor, type VectorFilter, type VectorStore } from '../ports/vector-store.ts';
import type { TenantScope } from '../ports/tenant-scope.ts';
import type { ActiveModel } from '../repositories/models.ts';
import { configOfLang, FT_CONFIGS, SearchRepository, type FtConfig, type LexicalPlan, type SearchRowFilters } from '../repositories/search.ts';
import { withTimeout } from '../runtime/stores.ts';
import type { LexicalIndexCache } from './lexical-index.ts';
import { SearchAdmission } from './admission.ts';
import { maximalMarginalRelevance } from './mmr.ts';
import { parseQuery, type ParsedQuery } from './query.ts';
import { reciprocalRankFusion, type FusedItem } from './rrf.ts';
import { headlines, LexemeCache } from './headline.ts';
import { excerptHtml } from './snippet.ts';
import type { SearchFilters, SearchHit, SearchParams, SearchResult } from './types.ts';

/** BM25 parameters: the textbook values, which the CISI/Cranfield references use. */
export const BM25 = { k1: 1.2, b: 0.75 } as const;

/** A query term's weight in the BM25 sum: how often the query says it × its idf among `n` chunks. */
export function bm25Weight(qtf: number, df: number, n: number): number {
  return qtf * Math.log(1 + (n - df + 0.5) / (df + 0.5));
}
export const DEFAULT_RRF_K = 60;
export const DEFAULT_LIMIT = 10;
export const MAX_LIMIT = 100;

/**
 * RRF weight of the dense leg when the request gives none. A model may state its own
 * (`embed.fusionWeight` in its manifest). Otherwise: the bundled hashed-n-gram model
 * matches spelling, not meaning — a second lexical leg — and at equal weight it
 * pulled nDCG@10 down (Cranfield 0.357 → 0.338–0.351, a Russian set 0.952 →
 * 0.900–0.943) while 0.15–0.3 was neutral to +2 %. On CISI (bench:retrieval) 0.1 was
 * the best of 0.05–0.3 and 1 (nDCG@10 0.412 vs lexical alone 0.409; 0.25 gave 0.400).
 * A real sentence encoder (onnx) brings meaning and gets the lexical leg's weight.
 */
export const HASHED_NGRAM_DENSE_WEIGHT = 0.1;

export function defaultDenseWeight(manifest: ModelManifest | null | undefined): number {
  const embed = manifest?.embed as { engine?: string; fusionWeight?: unknown } | undefined;
  const stated = embed?.fusionWeight;
  if (typeof stated === 'number' && Number.isFinite(stated) && stated >= 0 && stated <= 10) return stated;
  return embed?.engine === 'hashed-ngrams' ? HASHED_NGRAM_DENSE_WEIGHT : 1;
}

export interface SearchSettings {
  legTimeoutMs: number;
  candidates: number;
  lexicalPostings: number;
  /** Searches run at once by this process; absent = no limit (benches, tests). */
  concurrency?: number;
  /** Searches waiting for a turn; past it a search is refused at once (OVERLOADED). */
  queueLimit?: number;
  /** Longest expected wait for a turn; a search expected to wait longer is refused at once (lib/search/admission.ts). */
  queueWaitMs?: number;
}

export interface QueryEmbedding {
  alias: string;
  version: string;
  vector: number[];
}

/** What one search call may ask of the embedding service (through the caller's context). */
export interface EmbedCalls {
  embedQuery(alias: string, text: string): Promise<QueryEmbedding>;
  /** Vectors of candidate texts for MMR, from the same model version as the query. */
  embedPassages(alias: string, version: string, texts: string[]): Promise<number[][]>;
}

export interface HybridSearchDeps {
  knex: () => Promise<Knex>;
  vectors: () => Promise<VectorStore>;
  /** The active embedding models (the first one is the default dense alias). */
  activeEmbedModels: () => Promise<ActiveModel[]>;
  settings: SearchSettings;
  logger?: Logger;
  /** Tenants' postings in memory for plain-word lexical searches (absent: always SQL). */
  lexicalIndex?: LexicalIndexCache;
}

interface LegOutcome<T> {
  value: T | null;
  error: string | null;
  cause?: unknown;
}

interface LexicalOutcome {
  ids: string[];
  highlight: Partial<Record<FtConfig, string[]>>;
}

interface DenseOutcome {
  ids: string[];
  alias: string;
  version: string;
}

/**
 * Hybrid search: BM25 over PostgreSQL full-text and kNN over the vector store run in
 * parallel and are fused by Reciprocal Rank Fusion. Both legs take the tenant scope
 * down into their data layer (SearchRepository, VectorStore). A leg that fails or
 * times out is dropped and named in `degraded`; only when no leg answers does the
 * call fail, with a retryable 503.
 */
export class HybridSearch {
  private readonly ensured = new Set<string>();
  private modelsCache: { at: number; value: Promise<ActiveModel[]> } | null = null;
  /** Words' lexemes for headlines, asked of the database once per word (lib/search/headline.ts). */
  private readonly lexemes = new LexemeCache(async (words) => new SearchRepository(await this.deps.knex()).lexemes(words));
  /**
   * Admission control: past `concurrency` running, a search waits only while its
   * expected wait (measured service time) is under `queueWaitMs` and fewer than
   * `queueLimit` wait; otherwise it gets 503 OVERLOADED with Retry-After at once, instead
   * of joining a queue whose every member would run into the leg timeout (the 2 s
   * cascade under overload).
   */
  readonly admission: SearchAdmission | null;

  constructor(private readonly deps: HybridSearchDeps) {
    const { concurrency, queueLimit, queueWaitMs } = deps.settings;
    this.admission = concurrency ? new SearchAdmission({ concurrency, queueLimit: queueLimit ?? 0, maxWaitMs: queueWaitMs ?? Infinity }) : null;
  }

  async search(scope: TenantScope, params: SearchParams, calls: EmbedCalls): Promise<SearchResult> {
    const release = this.admission ? await this.admission.acquire() : null;
    // The legs' own work, which a leg timeout does not stop (a PostgreSQL statement runs
    // to its end): the slot is held until it is done, so admission counts what the
    // database is really running. Releasing at the timeout let new searches in on top
    // of the late ones, and each late one made the next later (the timeout cascade).
    const work: Array<Promise<unknown>> = [];
    try {
      return await this.admitted(scope, params, calls, work);
    } finally {
      if (release) {
        if (work.length) void Promise.allSettled(work).then(release);
        else release();
      }
    }
  }

  private async admitted(scope: TenantScope, params: SearchParams, calls: EmbedCalls, work: Array<Promise<unknown>>): Promise<SearchResult> {
    const started = performance.now();
    const request = withDefaults(params);
    const parsed = parseQuery(params.query);
    const filters = normalizeFilters(params.filters);
    const { settings } = this.deps;
    // The pool fusion hands on to hydration: a few more than asked, since a dense hit whose
    // chunk row was replaced meanwhile is dropped. With MMR, more to choose from.
    const poolSize = request.mmr ? Math.min(MAX_LIMIT * 2, request.limit * 4) : request.limit + 10;
    // One leg alone without MMR: its ranking is the result, so its first `poolSize` are all
    // that is used (the same exact top, and a smaller top to keep costs less to sort).
    const candidates = request.mode !== 'hybrid' && !request.mmr ? poolSize : Math.max(request.limit, settings.candidates);

    const runLexical = request.mode !== 'dense';
    const runDense = request.mode !== 'lexical';
    const denseModel = runDense || request.mmr ? await this.pickModel(params.alias) : null;

    const lexicalWork = runLexical ? this.lexical(scope, parsed, filters, candidates) : null;
    const denseWork = runDense ? this.dense(scope, parsed, filters, candidates, denseModel, calls) : null;
    for (const leg of [lexicalWork, denseWork]) if (leg) work.push(leg);
    const [lexical, dense] = await Promise.all([
      lexicalWork ? settle(withTimeout(lexicalWork, settings.legTimeoutMs, 'lexical search')) : null,
      denseWork ? settle(withTimeout(denseWork, settings.legTimeoutMs, 'dense search')) : null,
    ]);
    const degraded: NonNullable<SearchResult['degraded']> = {};
    if (lexical?.error) degraded.lexical = lexical.error;
    if (dense?.error) degraded.dense = dense.error;
    if (!lexical?.value && !dense?.value) {
      // The legs' reasons go into the message too: the REST error shape carries no data,
      // and a 503 that says only "no leg answered" cannot be told apart afterwards.
      const reasons = Object.entries(degraded).map(([leg, reason]) => `${leg}: ${reason}`).join('; ');
      throw appError('SEARCH_UNAVAILABLE', `Search is unavailable right now: no search leg answered${reasons ? ` (${reasons})` : ''}`, degraded);
    }
    for (const [leg, outcome] of [['lexical', lexical], ['dense', dense]] as const) {
      if (outcome?.error) this.deps.logger?.warn({ leg, err: outcome.cause }, 'search leg dropped');
    }

    const weights = {
      lexical: params.weights?.lexical ?? 1,
      dense: params.weights?.dense ?? (denseModel ? defaultDenseWeight(denseModel.model.manifest) : 1),
    };
    const fused = reciprocalRankFusion(
      { ...(lexical?.value && { lexical: lexical.value.ids }), ...(dense?.value && { dense: dense.value.ids }) },
      { k: request.rrfK, weights },
    );

    const knex = await this.deps.knex();
    const repo = new SearchRepository(knex);
    const pool = fused.slice(0, poolSize);
    // Without MMR the first `limit` rows that exist are the hits: only those are read. Rows
    // gone since the legs ran (a chunk deleted or replaced meanwhile, a vector point left
    // behind) are made up from the rest of the pool in a second trip.
    const poolIds = pool.map((f) => f.id);
    const highlight = lexical?.value?.highlight ?? {};
    const first = request.mmr ? poolIds : poolIds.slice(0, request.limit);
    let rows = await repo.hits(scope, first);
    if (rows.length < first.length && first.length < poolIds.length) rows = [...rows, ...(await repo.hits(scope, poolIds.slice(first.length)))];
    const fusedById = new Map(pool.map((f) => [f.id, f]));
    let ranked: Array<{ item: FusedItem; row: (typeof rows)[number]; score: number }> = rows.map((row) => {
      const item = fusedById.get(row.chunkId)!;
      return { item, row, score: item.score };
    });

    if (request.mmr && ranked.length > 1) {
      try {
        if (!denseModel) throw new Error('no embedding model to compare candidates with');
        const version = dense?.value?.version ?? denseModel.flag.activeVersion;
        const vectors = await withTimeout(
          calls.embedPassages(denseModel.flag.alias, version, ranked.map((r) => r.row.text)),
          settings.legTimeoutMs,
          'MMR embedding',
        );
        ranked = maximalMarginalRelevance(ranked, vectors, { lambda: request.mmr.lambda, limit: request.limit });
      } catch (err) {
        degraded.mmr = describe(err);
      }
    }

    const shown = ranked.slice(0, request.limit);
    // Only the hits shown get a headline.
    const marked = await headlines(
      shown.map(({ row }) => ({ text: row.text, config: configOfLang(row.lang) })),
      highlight,
      this.lexemes,
    );
    const hits: SearchHit[] = shown.map(({ item, row }, i) => ({
      chunkId: row.chunkId,
      documentId: row.documentId,
      sourceId: row.sourceId,
      title: row.title,
      page: row.page,
      heading: row.heading,
      text: row.text,
      snippet: marked[i] ?? excerptHtml(row.text),
      score: item.score,
      ranks: { ...item.ranks },
      lang: row.lang,
      mime: row.mime,
      tags: row.tags,
    }));
    return {
      hits,
      degraded: Object.keys(degraded).length ? degraded : null,
      dense: dense?.value ? { alias: dense.value.alias, version: dense.value.version } : null,
      tookMs: Math.round((performance.now() - started) * 10) / 10,
      fusion: { k: request.rrfK, weights },
    };
  }

  /**
   * The lexical leg alone: chunk ids by BM25, best first.
   *
   * MaxScore pruning (Turtle & Flood), exact on the top `limit`: a term can add at
   * most `bound = weight × (k1 + 1)` to a chunk's score (the tf part of BM25 stays
   * below k1 + 1). A first pass scores, on every query term, the chunks holding the
   * terms of highest bound (the rarest, while their postings fit a small budget); its
   * `limit`-th score θ is a lower bound of the true `limit`-th score. A chunk holding
   * only terms whose bounds add up to less than θ cannot reach the top, so only the
   * other ("essential") terms need to bring in candidates. When the first pass already
   * recruited all of them its answer is the exact top; otherwise a second pass
   * recruits the essential terms (up to SEARCH_LEXICAL_POSTINGS, beyond which it is no
   * longer exact: see docs/search.md).
   */
  async lexical(scope: TenantScope, parsed: ParsedQuery, filters: SearchRowFilters | undefined, limit: number): Promise<LexicalOutcome> {
    const repo = new SearchRepository(await this.deps.knex());
    const plainWords = !hasRowFilters(filters) && parsed.phrases.length === 0 && parsed.excluded.length === 0;
    // Statistics, the query's lexemes and their document frequencies: from the postings held
    // in memory when they are current, else one round trip.
    const { stats, terms: analyzed } = (plainWords ? await this.heldStatistics(repo, scope, parsed) : null) ?? (await repo.queryStatistics(scope, parsed.words.join(' ')));
    if (stats.chunkCount <= 0) return { ids: [], highlight: {} };
    const wantedLangs = filters?.langs;
    const configs = FT_CONFIGS.filter(
      (c) => stats.chunksPerConfig[c] > 0 && (!wantedLangs || wantedLangs.some((l) => configOfLang(l) === c)),
    );
    const highlight: Partial<Record<FtConfig, string[]>> = {};
    const n = stats.chunkCount;
    const weighted: Array<{ config: FtConfig; terms: WeightedTerm[] }> = [];
    for (const config of configs) {
      const terms = analyzed.get(config) ?? [];
      if (terms.length === 0) continue;
      weighted.push({
        config,
        terms: terms.map((t) => {
          const weight = bm25Weight(t.qtf, t.df, n);
          return { term: t.term, df: t.df, weight, bound: weight * (BM25.k1 + 1) };
        }),
      });
      highlight[config] = terms.map((t) => t.term);
    }
    if (weighted.length === 0) return { ids: [], highlight };
    const options = { ...BM25, avgLength: stats.totalLength / n, limit, filters };
    const plansFor = (recruit: (config: FtConfig) => string[]): LexicalPlan[] =>
      weighted
        .map(({ config, terms }) => ({
          config,
          terms: terms.map(({ term, weight }) => ({ term, weight })),
          recruit: recruit(config),
          phrases: parsed.phrases,
          excluded: parsed.excluded,
        }))
        .sort((a, b) => FT_CONFIGS.indexOf(a.config) - FT_CONFIGS.indexOf(b.config));

    const budget = this.deps.settings.lexicalPostings;
    const firstBudget = Math.min(budget, Math.max(FIRST_PASS_POSTINGS, limit * 10));
    const first = new Map(weighted.map(({ config, terms }) => [config, recruitingTerms(terms, firstBudget)]));
    // Plain words with the tenant's postings in memory at this very version: the same
    // BM25 over the same statistics, summed in the process (lib/search/lexical-index.ts).
    const held = plainWords ? this.deps.lexicalIndex?.lookup(scope, stats) : null;
    if (held) {
      const hits = held.top(weighted.map(({ config, terms }) => ({ config, terms })), options);
      return { ids: hits.map((h) => h.chunkId), highlight };
    }
    if (plainWords) {
      // Plain words: the posting table, exact BM25 on the top `limit` whatever the budget.
      const hits = await repo.bm25Postings(
        scope,
        weighted.map(({ config, terms }) => ({ config, terms, first: first.get(config)! })),
        options,
      );
      return { ids: hits.map((h) => h.chunkId), highlight };
    }
    const firstHits = await repo.bm25(scope, plansFor((c) => first.get(c)!), options);
    // Fewer than `limit` hits: θ is 0, every term is essential.
    const theta = firstHits.length >= limit ? firstHits[limit - 1]!.score : 0;
    const essential = new Map(weighted.map(({ config, terms }) => [config, essentialTerms(terms, theta)]));
    const covered = weighted.every(({ config }) => essential.get(config)!.every((t) => first.get(config)!.includes(t.term)));
    if (covered) return { ids: firstHits.map((h) => h.chunkId), highlight };
    const hits = await repo.bm25(scope, plansFor((c) => recruitingTerms(essential.get(c)!, budget)), options);
    return { ids: hits.map((h) => h.chunkId), highlight };
  }

  /**
   * What `queryStatistics` answers, without its statement, when the tenant's postings are
   * held at the database's current version: N, the average length and each term's df are
   * the postings' own (the same numbers, read at that version), and the query's lexemes
   * are its words' (`to_tsvector` of each word: PostgreSQL's parser never makes a token
   * across whitespace, so they are the whole text's), which the process remembers. One
   * primary-key read of the version is left. Null when nothing current is held.
   */
  private async heldStatistics(repo: SearchRepository, scope: TenantScope, parsed: ParsedQuery): Promise<Awaited<ReturnType<SearchRepository['queryStatistics']>> | null> {
    const postings = this.deps.lexicalIndex?.held(scope);
    if (!postings?.stats || (await repo.statsVersion(scope)) !== postings.version) return null;
    const { stats } = postings;
    const configs = FT_CONFIGS.filter((c) => stats.chunksPerConfig[c] > 0);
    const lexemesOf = await this.lexemes.resolve(new Map(configs.map((c) => [c, new Set(parsed.words)])));
    const terms = new Map<FtConfig, Array<{ term: string; qtf: number; df: number }>>();
    for (const config of configs) {
      const qtf = new Map<string, number>();
      for (const word of parsed.words) for (const lexeme of lexemesOf(config, word)) qtf.set(lexeme, (qtf.get(lexeme) ?? 0) + 1);
      if (qtf.size === 0) continue;
      // In code point order, as the statement gives them (collate "C"): the order sums are added in stays the same.
      // A tsvector keeps at most 256 positions of a lexeme (MAXNUMPOS): the statement's qtf stops there.
      terms.set(config, [...qtf.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((term) => ({ term, qtf: Math.min(qtf.get(term)!, 256), df: postings.df(config, term) })));
    }
    return { stats, terms };
  }

  /** The dense leg alone: chunk ids by cosine similarity to the query, best first. */
  async dense(
    scope: TenantScope,
    parsed: ParsedQuery,
    filters: SearchRowFilters | undefined,
    limit: number,
    model: ActiveModel | null,
    calls: EmbedCalls,
  ): Promise<DenseOutcome> {
    if (!model) throw new Error('no active embedding model');
    const legStarted = performance.now();
    const embedding = await calls.embedQuery(model.flag.alias, parsed.text);
    const collection = collectionFor(embedding.alias, embedding.version);
    const vectors = await this.deps.vectors();
    if (!this.ensured.has(collection)) {
      // Search before the first ingest of a version finds an empty collection, not an error.
      await vectors.ensureCollection({ name: collection, dimension: embedding.vector.length });
      this.ensured.add(collection);
    }
    // What is left of the leg's time: past it the search is dropped here, and stopped in the store.
    const timeoutMs = Math.max(1, this.deps.settings.legTimeoutMs - (performance.now() - legStarted));
    const hits = await vectors.search(scope, collection, embedding.vector, { limit, filter: filters as VectorFilter | undefined, timeoutMs });
    const ids = [...new Set(hits.map((h) => h.payload.chunk_id))];
    return { ids, alias: embedding.alias, version: embedding.version };
  }

  private async pickModel(alias: string | undefined): Promise<ActiveModel | null> {
    const now = Date.now();
    // Flags change by maintenance actions, rarely; a few seconds of staleness only
    // delays a new default weight, while the version itself comes from emb.embed.
    if (!this.modelsCache || now - this.modelsCache.at > 5000) {
      const value = this.deps.activeEmbedModels();
      this.modelsCache = { at: now, value };
      value.catch(() => (this.modelsCache = null));
    }
    let active: ActiveModel[];
    try {
      active = await this.modelsCache.value;
    } catch {
      return null;
    }
    if (alias === undefined) return active[0] ?? null;
    const found = active.find((m) => m.flag.alias === alias);
    if (!found) throw appError('UNKNOWN_EMBEDDING_ALIAS', `No active embedding model under the alias "${String(alias).slice(0, 100)}"`);
    return found;
  }
}

/**
 * Terms that bring in candidates: the rarest first, while their chunks add up to the
 * postings budget. The rest still score every candidate; a chunk holding only very
 * common words would rank last anyway. Below the budget the result is exact BM25.
 */
/** Postings the first pass of the lexical leg recruits from (see HybridSearch.lexical). */
export const FIRST_PASS_POSTINGS = 2000;

export interface WeightedTerm {
  term: string;
  df: number;
  /** qtf × idf: the term's weight in the BM25 sum. */
  weight: number;
  /** The most the term can add to one chunk's score. */
  bound: number;
}

/**
 * The terms that bring in candidates: by bound (the rarest first), while their
 * postings (df) add up to at most `budget`; the first always. The others only score
 * chunks already found.
 */
export function recruitingTerms(terms: Array<{ term: string; df: number; bound?: number }>, budget: number): string[] {
  const sorted = [...terms].sort((a, b) => (b.bound ?? 0) - (a.bound ?? 0) || a.df - b.df || (a.term < b.term ? -1 : 1));
  const recruit: string[] = [];
  let postings = 0;
  for (const t of sorted) {
    if (recruit.length > 0 && postings + t.df > budget) break;
    recruit.push(t.term);
    postings += t.df;
  }
  return recruit;
}

/**
 * MaxScore's essential terms for a threshold θ: leave out the terms of lowest bound
 * while their bounds add up to less than θ — a chunk holding only those scores below
 * θ — and keep the rest (highest bound first).
 */
export function essentialTerms(terms: WeightedTerm[], theta: number): WeightedTerm[] {
  const ascending = [...terms].sort((a, b) => a.bound - b.bound || b.df - a.df || (a.term < b.term ? -1 : 1));
  let sum = 0;
  let skip = 0;
  while (skip < ascending.length && sum + ascending[skip]!.bound < theta) sum += ascending[skip++]!.bound;
  return ascending.slice(skip).reverse();
}

/** Filters that only the chunk and document rows can answer (the posting table knows neither). */
function hasRowFilters(filters: SearchRowFilters | undefined): boolean {
  return Boolean(filters && Object.values(filters).some((v) => Array.isArray(v) && v.length > 0));
}

interface ValidRequest {
  limit: number;
  mode: 'hybrid' | 'lexical' | 'dense';
  rrfK: number;
  mmr: { lambda: number } | null;
}

/** Defaults filled in. The request was validated by api.search's schema, its only check (services/api/routes/search.ts). */
function withDefaults(params: SearchParams): ValidRequest {
  return { limit: params.limit ?? DEFAULT_LIMIT, mode: params.mode ?? 'hybrid', rrfK: params.rrfK ?? DEFAULT_RRF_K, mmr: params.mmr ? { lambda: params.mmr.lambda } : null };
}

function normalizeFilters(filters: SearchFilters | undefined): SearchRowFilters | undefined {
  if (!filters) return undefined;
  const list = (name: keyof SearchFilters) => {
    const value = filters[name];
    return value?.length ? [...new Set(value)] : undefined;
  };
  const out: SearchRowFilters = {
    tags: list('tags'),
    sourceIds: list('sourceIds'),
    documentIds: list('documentIds'),
    langs: list('langs'),
    mimes: list('mimes'),
  };
  for (const key of Object.keys(out) as Array<keyof SearchRowFilters>) if (!out[key]) delete out[key];
  return Object.keys(out).length ? out : undefined;
}

async function settle<T>(promise: Promise<T>): Promise<LegOutcome<T>> {
  try {
    return { value: await promise, error: null };
  } catch (err) {
    return { value: null, error: describe(err), cause: err };
  }
}

/** A reason a client may read: the stable code for our own errors, a short message otherwise. */
function describe(err: unknown): string {
  if (err instanceof RagmeshError || (err as { type?: string })?.type) {
    const e = err as { type?: string; message?: string };
    return `${e.type ?? 'ERROR'}: ${e.message ?? ''}`.slice(0, 200);
  }
  const message = (err as Error)?.message ?? String(err);
  return /timed out/.test(message) ? message.slice(0, 200) : 'the leg failed (see the server log)';
}
