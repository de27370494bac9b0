/**
 * bench:retrieval — retrieval quality of the lexical leg, the dense leg and hybrid
 * search on CISI (../shared/datasets/cisi), ingested through the real api, in one run.
 *
 *   ratio              = lexical nDCG@10 / the dataset README's BM25 nDCG@10 (0.349)   goal ≥ 0.95
 *   hybrid_vs_best_leg = hybrid nDCG@10 / the better single leg's nDCG@10             goal ≥ 1.00
 *
 * An embedded node (PGlite, pgvector, the bundled starter embedding model served by the
 * real emb service) boots in a temporary DATA_DIR; every abstract is uploaded as a text
 * file with `POST /api/v1/documents` and ingested by the real pipeline (chunking,
 * language detection, embedding, indexing); then each judged question is asked through
 * `POST /api/v1/search` in each mode with limit 100. Chunk hits become a document
 * ranking by first occurrence. Metrics over the 76 judged questions: nDCG@10 (binary
 * gains), MAP (average precision over the top 100, divided by all relevant documents)
 * and recall@100.
 *
 * The questions are CISI's prose: the double quotes in five of them are quotation
 * marks, not phrase operators, so they are removed before asking (a quoted phrase
 * would otherwise be required, which is what a user typing quotes means).
 * BENCH_DATASET=xquad-en asks the 1,190 xquad-en questions of its 240 paragraphs
 * instead (no published reference: ratio null). The lexical leg is asked once the
 * tenant's postings are held in the api's memory; SEARCH_LEXICAL_MEMORY_MB=0 asks the
 * SQL leg (docs/search.md), to compare.
 * Also reported: hybrid at equal RRF weight, to show why the starter model's default
 * dense weight is lower (docs/search.md).
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { signAccessToken } from '../lib/auth/jwt.ts';
import { loadConfig } from '../lib/config/env.ts';
import { createLogger } from '../lib/logging.ts';
import { bootNode } from '../boot.ts';
import type { SearchResult } from '../lib/search/types.ts';
import { tempDir } from '../test/support/services.ts';
import { datasetDir, waitForHeldPostings } from './support.ts';

/** BENCH_DATASET: cisi (default) or xquad-en (questions judged against the paragraph they were written on). */
const DATASET = process.env.BENCH_DATASET ?? 'cisi';
const DATA = datasetDir(DATASET);
/** The CISI README's BM25 figure; no reference is published for xquad-en. */
const BM25_REFERENCE_NDCG10 = DATASET === 'cisi' ? 0.349 : null;
const UPLOAD_CONCURRENCY = 8;

interface Doc {
  id: string;
  title: string;
  text: string;
}

const readJsonl = async <T>(file: string): Promise<T[]> =>
  (await readFile(path.join(DATA, file), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as T);

const TENANT = DATASET.replace(/[^A-Za-z0-9]/g, '');

async function main(): Promise<void> {
  const docs = await readJsonl<Doc>('docs.jsonl');
  const queries = await readJsonl<{ id: string; text: string }>('queries.jsonl');
  const qrels = await readJsonl<{ query_id: string; doc_id: string }>('qrels.jsonl');
  const relevant = new Map<string, Set<string>>();
  for (const r of qrels) (relevant.get(r.query_id) ?? relevant.set(r.query_id, new Set()).get(r.query_id)!).add(r.doc_id);
  const judged = queries.filter((q) => relevant.has(q.id));

  const dir = await tempDir('ragmesh-bench-retrieval-');
  // 1,460 uploads and 76 × 3 searches by one user: the per-user rate limits are not what is measured.
  const env = {
    DATA_DIR: dir.value,
    PORT: '0',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_USER: 'upload=0,search=0,read=0',
    RATE_LIMIT_PER_TENANT: 'upload=0,search=0,read=0',
    // SEARCH_LEXICAL_MEMORY_MB=0: the lexical leg from SQL, to compare with postings held in memory.
    ...(process.env.SEARCH_LEXICAL_MEMORY_MB && { SEARCH_LEXICAL_MEMORY_MB: process.env.SEARCH_LEXICAL_MEMORY_MB }),
  };
  const config = loadConfig(env);
  const node = await bootNode(config, createLogger('warn'));
  const base = `http://127.0.0.1:${node.httpPort}`;
  const token = await signAccessToken({ tenantId: TENANT, userId: 'bench', roles: ['editor'] }, node.runtime.jwtSecret, { issuer: config.auth.issuer, ttlSeconds: 86_400 });
  const auth = { Authorization: `Bearer ${token}` };

  try {
    // --- ingest through the api ------------------------------------------------------
    const ingestStarted = performance.now();
    const docOf = new Map<string, string>(); // ragmesh document id → CISI id
    const jobs: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: UPLOAD_CONCURRENCY }, async () => {
        while (next < docs.length) {
          const doc = docs[next++]!;
          const form = new FormData();
          form.append('source_id', `cisi-${doc.id}`);
          form.append('file', new Blob([doc.text], { type: 'text/plain' }), `cisi-${doc.id}.txt`);
          const res = await fetch(`${base}/api/v1/documents`, { method: 'POST', headers: auth, body: form });
          const body = (await res.json()) as { document: { id: string }; job: { id: string } | null; duplicate: boolean };
          if (res.status !== 202 && res.status !== 200) throw new Error(`upload of CISI ${doc.id} answered ${res.status}: ${JSON.stringify(body)}`);
          docOf.set(body.document.id, doc.id);
          if (body.job) jobs.push(body.job.id);
        }
      }),
    );
    const uploadSeconds = (performance.now() - ingestStarted) / 1000;
    const failed: string[] = [];
    for (const jobId of jobs) {
      for (;;) {
        const res = await fetch(`${base}/api/v1/jobs/${jobId}`, { headers: auth });
        const job = (await res.json()) as { status: string; error?: string; job?: { status: string } };
        const status = job.status ?? job.job?.status;
        if (status === 'ready') break;
        if (status === 'failed' || status === 'canceled') {
          failed.push(`${jobId}: ${status} ${job.error ?? ''}`);
          break;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const ingestSeconds = (performance.now() - ingestStarted) / 1000;
    if (failed.length) console.error(`${failed.length} ingest jobs did not finish: ${failed.slice(0, 3).join('; ')}`);
    const { knex } = await node.runtime.stores.db();
    const chunkCount = Number((await knex('chunks').where({ tenant_id: TENANT }).count({ n: '*' }))[0]!.n);
    const langs = (await knex('chunks').where({ tenant_id: TENANT }).select('lang').count({ n: '*' }).groupBy('lang')) as Array<{ lang: string; n: string | number }>;

    // --- ask -------------------------------------------------------------------------
    const ask = async (query: string, body: Record<string, unknown>): Promise<{ ranking: string[]; result: SearchResult }> => {
      const res = await fetch(`${base}/api/v1/search`, {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ query: query.replaceAll('"', ' '), limit: 100, ...body }),
      });
      const result = (await res.json()) as SearchResult;
      if (res.status !== 200) throw new Error(`search answered ${res.status}: ${JSON.stringify(result)}`);
      if (result.degraded) throw new Error(`search degraded: ${JSON.stringify(result.degraded)}`);
      const ranking: string[] = [];
      for (const hit of result.hits) {
        const cisiId = docOf.get(hit.documentId);
        if (cisiId && !ranking.includes(cisiId)) ranking.push(cisiId);
      }
      return { ranking, result };
    };
    // The first search starts building the tenant's postings in the api's memory (SQL
    // answers meanwhile, the same ranking): asked once they are held, as a serving api has them.
    const memory = config.search.lexicalMemoryBytes > 0;
    if (memory) {
      await ask(judged[0]!.text, { mode: 'lexical' });
      if ((await waitForHeldPostings(base, 300_000)) === null) throw new Error('the lexical postings were not held in memory within 5 minutes');
    }
    const runs = {
      lexical: { mode: 'lexical' },
      dense: { mode: 'dense' },
      hybrid: { mode: 'hybrid' },
      hybrid_equal_weight: { mode: 'hybrid', weights: { lexical: 1, dense: 1 } },
      // BENCH_DENSE_WEIGHTS=0.1,0.2 adds a hybrid run per weight (to choose a default).
      ...Object.fromEntries(
        (process.env.BENCH_DENSE_WEIGHTS ?? '').split(',').filter(Boolean).map((w) => [`hybrid_dense_${w}`, { mode: 'hybrid', weights: { lexical: 1, dense: Number(w) } }]),
      ),
    } as Record<string, Record<string, unknown>>;
    const metrics: Record<string, { ndcg10: number; map: number; recall100: number; p50ms: number }> = {};
    let denseWeight = 0;
    for (const [name, body] of Object.entries(runs)) {
      let ndcg = 0;
      let ap = 0;
      let recall = 0;
      const times: number[] = [];
      for (const q of judged) {
        const rel = relevant.get(q.id)!;
        const started = performance.now();
        const { ranking, result } = await ask(q.text, body);
        times.push(performance.now() - started);
        if (name === 'hybrid') denseWeight = result.fusion?.weights.dense ?? NaN;
        ndcg += ndcgAt(ranking, rel, 10);
        ap += averagePrecision(ranking.slice(0, 100), rel);
        recall += ranking.slice(0, 100).filter((d) => rel.has(d)).length / rel.size;
      }
      times.sort((a, b) => a - b);
      metrics[name] = { ndcg10: ndcg / judged.length, map: ap / judged.length, recall100: recall / judged.length, p50ms: times[Math.floor(times.length / 2)]! };
    }

    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    const best = Math.max(metrics.lexical!.ndcg10, metrics.dense!.ndcg10);
    console.log(`bench:retrieval  ${DATASET}: ${docs.length} documents → ${chunkCount} chunks (${langs.map((l) => `${l.lang} ${l.n}`).join(', ')}), ${judged.length} judged questions`);
    console.log(`  node ${process.version}, embedded profile (PGlite + pgvector), dense model: starter hashed n-grams; ingest via the api: upload ${uploadSeconds.toFixed(1)} s, ready after ${ingestSeconds.toFixed(1)} s, ${failed.length} failed`);
    console.log('  run                  nDCG@10    MAP   recall@100   p50 ms');
    for (const [name, m] of Object.entries(metrics)) {
      console.log(`  ${name.padEnd(20)} ${m.ndcg10.toFixed(3).padStart(7)} ${m.map.toFixed(3).padStart(6)} ${m.recall100.toFixed(3).padStart(12)} ${m.p50ms.toFixed(1).padStart(8)}`);
    }
    if (BM25_REFERENCE_NDCG10) console.log(`  README BM25 reference: nDCG@10 ${BM25_REFERENCE_NDCG10}, MAP 0.190`);
    console.log(`  lexical leg from ${memory ? 'postings held in memory' : 'SQL (SEARCH_LEXICAL_MEMORY_MB=0)'}`);
    console.log(`  lexical / reference = ${BM25_REFERENCE_NDCG10 ? (metrics.lexical!.ndcg10 / BM25_REFERENCE_NDCG10).toFixed(3) : 'n/a'} (goal ≥ 0.95); hybrid (dense weight ${denseWeight}) / best leg = ${(metrics.hybrid!.ndcg10 / best).toFixed(3)} (goal ≥ 1.00)`);
    console.log(
      JSON.stringify({
        bench: 'retrieval',
        ratio: BM25_REFERENCE_NDCG10 ? r3(metrics.lexical!.ndcg10 / BM25_REFERENCE_NDCG10) : null,
        dataset: DATASET,
        lexical_from: memory ? 'memory' : 'sql',
        goal: 0.95,
        hybrid_vs_best_leg: r3(metrics.hybrid!.ndcg10 / best),
        hybrid_vs_best_leg_goal: 1,
        dense_weight: denseWeight,
        ...Object.fromEntries(Object.entries(metrics).flatMap(([name, m]) => [[`${name}_ndcg10`, r3(m.ndcg10)], [`${name}_map`, r3(m.map)], [`${name}_recall100`, r3(m.recall100)]])),
        reference_bm25_ndcg10: BM25_REFERENCE_NDCG10,
        chunks: chunkCount,
        failed_jobs: failed.length,
        node: process.version,
        cores: os.cpus().length,
      }),
    );
  } finally {
    await node.stop();
    await dir.dispose();
  }
}

function ndcgAt(ranking: string[], relevant: Set<string>, k: number): number {
  let dcg = 0;
  ranking.slice(0, k).forEach((d, i) => {
    if (relevant.has(d)) dcg += 1 / Math.log2(i + 2);
  });
  let ideal = 0;
  for (let i = 0; i < Math.min(k, relevant.size); i++) ideal += 1 / Math.log2(i + 2);
  return ideal ? dcg / ideal : 0;
}

function averagePrecision(ranking: string[], relevant: Set<string>): number {
  let hits = 0;
  let sum = 0;
  ranking.forEach((d, i) => {
    if (relevant.has(d)) sum += ++hits / (i + 1);
  });
  return relevant.size ? sum / relevant.size : 0;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
