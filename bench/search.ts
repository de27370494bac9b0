/**
 * bench:search — hybrid search latency at 100k chunks against each leg alone, in one run.
 *
 *   ratio = hybrid p95 / p95 of the slower leg     goal ≤ 1.2 + 5 ms / (slower leg p95)
 *           (i.e. hybrid p95 ≤ 1.2 × the slower leg + 5 ms)
 *
 * Each mode runs through the same HybridSearch code (mode lexical, dense, hybrid),
 * hydration and snippets included, against one store set: the embedded profile's
 * PGlite (chunks, BM25 statistics, pgvector exact scan) unless VECTORS_DRIVER says
 * otherwise. Corpus: 100k chunks of ~80 words cut from the CISI abstracts at random
 * offsets with 10 % of the words swapped for other CISI words (so chunks differ but
 * keep the real vocabulary and term-frequency shape). Vectors: 384-dimensional,
 * clustered like real embeddings (200 centres, one per 5 documents, plus noise), since
 * no real model exists here; a query's vector is a noisy centre. Query embedding time
 * is left out of every mode alike (bench:emb measures it): the embed call returns a
 * precomputed vector. Queries are the CISI questions. Modes alternate query by query
 * so machine noise hits all three alike. The lexical leg runs as the api runs it, from
 * the tenant's postings held in memory (built before measuring; SEARCH_LEXICAL_MEMORY_MB=0
 * measures the SQL leg alone), and its top is checked against the SQL leg's, query by
 * query, after the timed runs.
 *
 * Env: BENCH_CHUNKS (100000), BENCH_QUERIES (150 per mode), BENCH_DATA_DIR (reuse an
 * already built corpus: its PGlite files and vector index; with PostgreSQL the corpus
 * stays in DATABASE_URL's database and is reused from there), DB_DRIVER (pglite, the
 * embedded default, or pg with DATABASE_URL), VECTORS_DRIVER (usearch, the
 * embedded default; pgvector for the exact scan; with PostgreSQL without pgvector,
 * postgres: plain arrays, exact and slow), BENCH_MODES (lexical,dense,hybrid; a subset
 * leaves the ratio null). After the build (or on reuse) the search tables get the check
 * ingest runs after its commits and at start (lib/search/upkeep.ts): ANALYZE, and
 * VACUUM where no autovacuum runs (PGlite, a PostgreSQL with autovacuum off).
 * BENCH_MEMORY_SCALE=k also times the in-memory lexical leg's summing and top at k×
 * the corpus (its chunks' lexemes held k times under other ids), e.g. 10 for 1M chunks
 * from the 100k corpus.
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomUUID } from 'node:crypto';
import { loadConfig } from '../lib/config/env.ts';
import { createLogger } from '../lib/logging.ts';
import { collectionFor, type VectorPoint } from '../lib/ports/vector-store.ts';
import { tenantScope } from '../lib/ports/tenant-scope.ts';
import { ChunksRepository } from '../lib/repositories/chunks.ts';
import { SearchRepository } from '../lib/repositories/search.ts';
import { DocumentsRepository } from '../lib/repositories/documents.ts';
import { Stores } from '../lib/runtime/stores.ts';
import { BM25, bm25Weight, HybridSearch, type EmbedCalls } from '../lib/search/hybrid.ts';
import { buildPostings, LexicalIndexCache } from '../lib/search/lexical-index.ts';
import { parseQuery } from '../lib/search/query.ts';
import { SearchTablesUpkeep } from '../lib/search/upkeep.ts';
import type { ActiveModel } from '../lib/repositories/models.ts';
import { datasetDir } from './support.ts';

const CHUNKS = Number(process.env.BENCH_CHUNKS ?? 100_000);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 150);
const CHUNKS_PER_DOC = 100;
const DIM = 384;
const CENTRES = 200;
const ALIAS = 'bench-dense';
const VERSION = '1';
const CISI = datasetDir('cisi');

let seed = 42;
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
const unit = (v: Float32Array) => {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n);
  for (let i = 0; i < v.length; i++) v[i]! /= n;
  return v;
};
const centres = Array.from({ length: CENTRES }, () => unit(Float32Array.from({ length: DIM }, gauss)));
const noisy = (c: Float32Array, amount: number) => unit(Float32Array.from(c, (x) => x + (amount / Math.sqrt(DIM)) * gauss()));

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

async function main(): Promise<void> {
  const reuse = process.env.BENCH_DATA_DIR;
  const dataDir = reuse ?? path.join(os.tmpdir(), `ragmesh-bench-search-${process.pid}`);
  await mkdir(dataDir, { recursive: true });
  const dbDriver = process.env.DB_DRIVER ?? 'pglite';
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    DB_DRIVER: dbDriver,
    ...(process.env.DATABASE_URL && { DATABASE_URL: process.env.DATABASE_URL }),
    VECTORS_DRIVER: process.env.VECTORS_DRIVER ?? (dbDriver === 'pg' ? 'postgres' : 'usearch'),
    // An exact scan of plain arrays can outlast the default leg timeout: measured, not dropped.
    SEARCH_LEG_TIMEOUT_MS: process.env.SEARCH_LEG_TIMEOUT_MS ?? '60000',
  };
  const config = loadConfig(env);
  const stores = new Stores(config, createLogger('warn'));
  const knex = (await stores.db()).knex;
  const vectors = await stores.vectors();
  const scope = tenantScope('bench');
  const collection = collectionFor(ALIAS, VERSION);

  const docs = (await readFile(path.join(CISI, 'docs.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { text: string });
  const queries = (await readFile(path.join(CISI, 'queries.jsonl'), 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text);
  const docWords = docs.map((d) => d.text.split(/\s+/));
  const vocabulary = docWords.flat();

  const allModes = ['lexical', 'dense', 'hybrid'] as const;
  // BENCH_MODES=lexical: the lexical leg alone (PostgreSQL without pgvector scans plain arrays, seconds a query).
  const modes = allModes.filter((m) => (process.env.BENCH_MODES ?? 'lexical,dense,hybrid').split(',').includes(m));
  // A lexical-only run writes no vectors (at 1M chunks on PostgreSQL the plain-array
  // vectors were most of the build: 10k chunks in 150 s). The marker file keeps a later
  // dense or hybrid run from measuring a corpus that has no vectors.
  const lexicalOnly = !modes.some((m) => m !== 'lexical');
  const noVectorsMarker = path.join(dataDir, 'corpus-without-vectors');
  const existing = Number((await knex('chunks').where({ tenant_id: scope.tenantId }).count({ n: '*' }))[0]!.n);
  const buildStarted = performance.now();
  const markedLexicalOnly = await stat(noVectorsMarker).then(() => true, () => false);
  if (markedLexicalOnly && !lexicalOnly) throw new Error(`${dataDir} holds a corpus built for BENCH_MODES=lexical, without vectors: build another for dense or hybrid`);
  if (existing < CHUNKS) {
    const writeVectors = !(lexicalOnly && (existing === 0 || markedLexicalOnly));
    if (!writeVectors) await writeFile(noVectorsMarker, 'built by BENCH_MODES=lexical\n');
    await knex('tenants').insert({ id: scope.tenantId, name: 'bench' }).onConflict('id').ignore();
    await vectors.ensureCollection({ name: collection, dimension: DIM });
    const documents = new DocumentsRepository(knex);
    const chunks = new ChunksRepository(knex);
    for (let d = Math.floor(existing / CHUNKS_PER_DOC); d * CHUNKS_PER_DOC < CHUNKS; d++) {
      const { document } = await documents.create(scope, {
        sourceId: `bench-${d}`,
        title: `Bench document ${d}`,
        mime: 'text/plain',
        sizeBytes: 1,
        contentHash: createHash('sha256').update(`bench-${d}`).digest('hex'),
      });
      const centre = centres[Math.floor(d / 5) % CENTRES]!;
      const rows = Array.from({ length: CHUNKS_PER_DOC }, (_, ord) => {
        const words = docWords[(d * 7 + ord) % docWords.length]!;
        const start = Math.floor(rand() * words.length);
        const text = Array.from({ length: 80 }, (_, i) => (rand() < 0.1 ? vocabulary[Math.floor(rand() * vocabulary.length)]! : words[(start + i) % words.length]!)).join(' ');
        return { id: randomUUID(), ord, text, lang: 'en' as const, page: 1 + Math.floor(ord / 5), contentHash: `${d}-${ord}`, tokenCount: 80 };
      });
      await knex.transaction((trx) => chunks.insertMany(scope, document.id, rows, trx));
      // The vectors are drawn either way, so the texts (same random stream) do not depend on the modes.
      const points: VectorPoint[] = rows.map((row) => ({
        id: row.id,
        vector: noisy(centre, 0.6),
        payload: {
          source_id: `bench-${d}`, document_id: document.id, chunk_id: row.id, page: row.page, lang: 'en', mime: 'text/plain',
          version: 1, updated_at: new Date().toISOString(), tags: [], embed_model_alias: ALIAS, embed_model_version: VERSION,
        },
      }));
      if (writeVectors) await vectors.upsert(scope, collection, points);
      if (d % 100 === 0) process.stderr.write(`built ${(d + 1) * CHUNKS_PER_DOC} chunks in ${Math.round((performance.now() - buildStarted) / 1000)} s\n`);
    }
  }
  const buildSeconds = (performance.now() - buildStarted) / 1000;
  // What ingest's upkeep does after its commits (and at start): the corpus is written
  // here without the ingest service.
  const upkeepStarted = performance.now();
  const upkeep = await new SearchTablesUpkeep({ knex: async () => knex }).check();
  const upkeepSeconds = (performance.now() - upkeepStarted) / 1000;

  const model = { flag: { alias: ALIAS, activeVersion: VERSION }, model: { manifest: { embed: { engine: 'onnx' } } } } as unknown as ActiveModel;
  // Admission control is the api's (bench:search-load measures it): one search at a time here.
  const settings = { ...config.search, concurrency: undefined };
  // The lexical leg as the api runs it: the tenant's postings in memory, built before
  // measuring (the api builds them on a tenant's first search, SQL answering meanwhile).
  const lexicalIndex = new LexicalIndexCache({ knex: async () => knex, settings: { budgetBytes: config.search.lexicalMemoryBytes } });
  const heldStarted = performance.now();
  const held = modes.includes('lexical') || modes.includes('hybrid') ? await lexicalIndex.load(scope) : null;
  const heldSeconds = (performance.now() - heldStarted) / 1000;
  const search = new HybridSearch({
    knex: async () => knex,
    vectors: async () => vectors,
    activeEmbedModels: async () => [model],
    settings,
    lexicalIndex,
  });
  // The same searches with the lexical leg in SQL, for the parity check below.
  const sqlSearch = new HybridSearch({ knex: async () => knex, vectors: async () => vectors, activeEmbedModels: async () => [model], settings });
  const queryVectors = queries.map(() => Array.from(noisy(centres[Math.floor(rand() * CENTRES)]!, 0.6)));
  let current = 0;
  const calls: EmbedCalls = {
    embedQuery: async (alias) => ({ alias, version: VERSION, vector: queryVectors[current]! }),
    embedPassages: async () => [],
  };

  const times: Record<(typeof modes)[number], number[]> = { lexical: [], dense: [], hybrid: [] };
  const hitsSeen: Record<string, number> = { lexical: 0, dense: 0, hybrid: 0 };
  for (let i = -10; i < QUERIES; i++) {
    current = ((i % queries.length) + queries.length) % queries.length;
    // Rotating the order removes any advantage of running first or last.
    for (let m = 0; m < modes.length; m++) {
      const mode = modes[(m + i + 30) % modes.length]!;
      const started = performance.now();
      const res = await search.search(scope, { query: queries[current]!, mode, limit: 10 }, calls);
      const ms = performance.now() - started;
      if (res.degraded) throw new Error(`${mode} degraded: ${JSON.stringify(res.degraded)}`);
      if (i >= 0) {
        times[mode].push(ms);
        hitsSeen[mode]! += res.hits.length;
      }
    }
  }

  // Parity (untimed): the lexical leg's top SEARCH_CANDIDATES from memory and from SQL.
  let identical = 0;
  const sqlMs: number[] = [];
  if (held && modes.includes('lexical')) {
    for (let i = 0; i < QUERIES; i++) {
      const parsed = parseQuery(queries[i % queries.length]!);
      const fromMemory = await search.lexical(scope, parsed, undefined, config.search.candidates);
      const started = performance.now();
      const fromSql = await sqlSearch.lexical(scope, parsed, undefined, config.search.candidates);
      sqlMs.push(performance.now() - started);
      if (fromMemory.ids.join() === fromSql.ids.join()) identical++;
    }
  }

  // BENCH_MEMORY_SCALE=k: the in-memory leg's summing and top at k× this tenant, without
  // a k× database: the same chunks' lexemes read k times under other ids (every df ×k,
  // the same average length), scored with the statistics scaled alike. What it leaves
  // out, the statistics round trip and the hydration, are index lookups whose cost does
  // not grow with the tenant (measured above at this size).
  const scale = Number(process.env.BENCH_MEMORY_SCALE ?? 0);
  let scaled: { chunks: number; mb: number; build_s: number; top_p50_ms: number; top_p95_ms: number; here_top_p50_ms: number; here_top_p95_ms: number } | null = null;
  if (held && scale > 1) {
    const repo = new SearchRepository(knex);
    const startedScale = performance.now();
    // Read the tenant's pages once, then hand them out k times under other chunk ids.
    const all: Awaited<ReturnType<SearchRepository['chunkLexemes']>> = [];
    for (let after: { documentId: string; ord: number } | null = null; ; ) {
      const page = await repo.chunkLexemes(scope, after, 5000);
      all.push(...page);
      if (page.length < 5000) break;
      after = { documentId: page[page.length - 1]!.documentId, ord: page[page.length - 1]!.ord };
    }
    let served = 0;
    const terms = await repo.tenantTerms(scope);
    const big = await buildPostings(
      {
        tenantTerms: async () => terms.map((t) => ({ ...t, df: t.df * scale })),
        chunkLexemes: async (_s, _after, limit) => {
          const out = [];
          for (; out.length < limit && served < all.length * scale; served++) {
            const c = all[served % all.length]!;
            const copy = Math.floor(served / all.length);
            out.push({ ...c, chunkId: copy === 0 ? c.chunkId : `${c.chunkId}#${copy}` });
          }
          return out;
        },
      },
      scope,
      -1,
      5000,
    );
    const buildS = (performance.now() - startedScale) / 1000;
    const topMs: number[] = [];
    const hereMs: number[] = [];
    for (let i = 0; i < QUERIES; i++) {
      const { stats, terms } = await repo.queryStatistics(scope, queries[i % queries.length]!);
      const plansAt = (k: number) =>
        [...terms].map(([cfg, ts]) => ({
          config: cfg,
          terms: ts.map((t) => ({ term: t.term, weight: bm25Weight(t.qtf, k * t.df, k * stats.chunkCount) })),
        }));
      const opts = { k1: BM25.k1, b: BM25.b, avgLength: stats.totalLength / stats.chunkCount, limit: config.search.candidates };
      let started = performance.now();
      held.top(plansAt(1), opts);
      hereMs.push(performance.now() - started);
      started = performance.now();
      big.top(plansAt(scale), opts);
      topMs.push(performance.now() - started);
    }
    scaled = { chunks: big.chunkCount, mb: Math.round(big.bytes / 2 ** 20), build_s: Math.round(buildS * 10) / 10, top_p50_ms: r2(pct(topMs, 50)), top_p95_ms: r2(pct(topMs, 95)), here_top_p50_ms: r2(pct(hereMs, 50)), here_top_p95_ms: r2(pct(hereMs, 95)) };
  }

  const p = Object.fromEntries(allModes.map((m) => [m, { p50: r2(pct(times[m], 50)), p95: r2(pct(times[m], 95)) }])) as Record<(typeof modes)[number], { p50: number; p95: number }>;
  const slower = Math.max(p.lexical.p95, p.dense.p95);
  const ratio = modes.length === 3 ? p.hybrid.p95 / slower : NaN;
  const goal = 1.2 + 5 / slower;
  const dbBytes = await dirSize(path.join(dataDir, 'pg')).catch(() => 0);
  console.log(`bench:search  ${CHUNKS} chunks (${CHUNKS / CHUNKS_PER_DOC} documents), ${QUERIES} CISI questions per mode, limit 10`);
  console.log(`  node ${process.version}, db ${config.db.driver}, vectors ${config.vectors.driver} , ${os.cpus().length} cores; corpus build ${Math.round(buildSeconds)} s, upkeep ${upkeepSeconds.toFixed(1)} s (analyzed ${upkeep.analyzed.join(' ') || 'none'}, vacuumed ${upkeep.vacuumed.join(' ') || 'none'}${upkeep.autovacuum ? ', autovacuum on' : ''}), pg dir ${Math.round(dbBytes / 2 ** 20)} MB`);
  for (const m of modes) console.log(`  ${m.padEnd(8)} p50 ${p[m].p50.toFixed(2).padStart(8)} ms   p95 ${p[m].p95.toFixed(2).padStart(8)} ms   hits/query ${(hitsSeen[m]! / QUERIES).toFixed(1)}`);
  if (scaled) console.log(`  in memory at ${scale}×: ${scaled.chunks} chunks, ~${scaled.mb} MB, built in ${scaled.build_s} s; summing and top ${config.search.candidates}: p50 ${scaled.top_p50_ms} ms, p95 ${scaled.top_p95_ms} ms (at 1×: ${scaled.here_top_p50_ms} / ${scaled.here_top_p95_ms} ms)`);
  if (held) console.log(`  lexical postings in memory: ${held.chunkCount} chunks, ~${Math.round(held.bytes / 2 ** 20)} MB, built in ${heldSeconds.toFixed(1)} s; top ${config.search.candidates} identical to the SQL leg's in ${identical} of ${sqlMs.length} queries (SQL leg alone: p50 ${r2(pct(sqlMs, 50))} ms, p95 ${r2(pct(sqlMs, 95))} ms)`);
  else console.log(`  lexical postings in memory: not held (SEARCH_LEXICAL_MEMORY_MB=${config.search.lexicalMemoryBytes / 2 ** 20}); the lexical leg read SQL`);
  console.log(`  hybrid p95 / slower leg p95 = ${ratio.toFixed(3)} (goal ≤ ${goal.toFixed(3)} = 1.2 + 5 ms / ${slower} ms)`);
  console.log(`  hybrid p95 / (lexical p95 + dense p95) = ${(p.hybrid.p95 / (p.lexical.p95 + p.dense.p95)).toFixed(3)} (1.0 = the legs ran one after the other)`);
  await lexicalIndex.close();
  await stores.close();
  if (!reuse) await rm(dataDir, { recursive: true, force: true });
  console.log(
    JSON.stringify({
      bench: 'search',
      ratio: Math.round(ratio * 1000) / 1000,
      goal: Math.round(goal * 1000) / 1000,
      lower_is_better: true,
      chunks: CHUNKS,
      queries_per_mode: QUERIES,
      lexical_p50_ms: p.lexical.p50,
      lexical_p95_ms: p.lexical.p95,
      // issue 13's goal for the lexical leg at 100k chunks
      lexical_p95_goal_ms: 50,
      lexical_in_memory_scaled: scaled && { scale, ...scaled },
      lexical_in_memory: held ? { chunks: held.chunkCount, mb: Math.round(held.bytes / 2 ** 20), build_s: Math.round(heldSeconds * 10) / 10, identical_to_sql: sqlMs.length ? identical / sqlMs.length : null, sql_p50_ms: sqlMs.length ? r2(pct(sqlMs, 50)) : null, sql_p95_ms: sqlMs.length ? r2(pct(sqlMs, 95)) : null } : null,
      modes,
      load_avg: os.loadavg().map((x) => Math.round(x * 100) / 100),
      dense_p50_ms: p.dense.p50,
      dense_p95_ms: p.dense.p95,
      hybrid_p50_ms: p.hybrid.p50,
      hybrid_p95_ms: p.hybrid.p95,
      db: config.db.driver,
      vectors: config.vectors.driver,
      node: process.version,
      cores: os.cpus().length,
    }),
  );
}

async function dirSize(dir: string): Promise<number> {
  const { readdir } = await import('node:fs/promises');
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
