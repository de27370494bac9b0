/**
 * bench:answers — how often the offline extractive answer holds the answer, and how
 * long it is, on xquad-en (../shared/datasets/xquad-en: 240 paragraphs, 1,190
 * questions with gold answer spans), ingested through the api.
 *
 * An embedded node boots in a temporary DATA_DIR; every paragraph is uploaded as a text
 * file with `POST /api/v1/documents` and ingested by the real pipeline. BENCH_QUESTIONS
 * (200) questions, spread evenly over the set, are asked through
 * `POST /v1/chat/completions` (model `ragmesh`: retrieval + the extractive backend),
 * and through `POST /api/v1/search` with the same limit RAG uses (6): its best hit is
 * what the answer is compared with.
 *
 *   answer_containment = answers holding a gold span (case and punctuation folded)
 *   best_hit_containment = best hits holding one
 *   ratio = answer_containment / best_hit_containment      goal ≥ 0.90
 *   words_per_answer (citation markers not counted)          goal ≤ 30
 */
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { signAccessToken } from '../lib/auth/jwt.ts';
import { loadConfig } from '../lib/config/env.ts';
import { createLogger } from '../lib/logging.ts';
import { bootNode } from '../boot.ts';
import type { SearchResult } from '../lib/search/types.ts';
import { tempDir } from '../test/support/services.ts';
import { datasetDir } from './support.ts';

const XQUAD = datasetDir('xquad-en');
const QUESTIONS = Number(process.env.BENCH_QUESTIONS ?? 200);
const UPLOAD_CONCURRENCY = 2;
const RAG_TOP_K = 6;

const readJsonl = async <T>(file: string): Promise<T[]> =>
  (await readFile(path.join(XQUAD, file), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as T);

/** Lower case, punctuation to spaces, one space between words: "Kawann Short." ≈ "kawann short". */
const fold = (text: string) => ` ${text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim()} `;
const contains = (text: string, golds: string[]) => golds.some((g) => fold(text).includes(fold(g)));
const wordCount = (text: string) => (text.replace(/\[\d+\]/g, ' ').match(/[\p{L}\p{N}]+(?:[.,'’-][\p{L}\p{N}]+)*/gu) ?? []).length;

/**
 * fetch, once more after a connection reset: on a loaded machine a kept-alive socket
 * the server is closing gets reused now and then. Every request here is safe to repeat.
 */
async function fetchRetry(url: string, init?: RequestInit): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(url, init);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

async function main(): Promise<void> {
  const docs = await readJsonl<{ id: string; title: string; text: string }>('docs.jsonl');
  const queries = await readJsonl<{ id: string; text: string; answers: string[] }>('queries.jsonl');
  const step = queries.length / Math.min(QUESTIONS, queries.length);
  const asked = Array.from({ length: Math.min(QUESTIONS, queries.length) }, (_, i) => queries[Math.floor(i * step)]!);

  const dir = await tempDir('ragmesh-bench-answers-');
  // The bench asks as fast as answers come: the per-user/tenant limits of the routes it
  // uses are off (0 = unlimited), or BENCH_QUESTIONS past 300 would meet 429s.
  const unlimited = 'read=0,search=0,upload=0,openai=0';
  const env = { DATA_DIR: dir.value, PORT: '0', LOG_LEVEL: 'warn', RATE_LIMIT_PER_USER: unlimited, RATE_LIMIT_PER_TENANT: unlimited };
  const config = loadConfig(env);
  const node = await bootNode(config, createLogger('warn'));
  const base = `http://127.0.0.1:${node.httpPort}`;
  const token = await signAccessToken({ tenantId: 'xquad', userId: 'bench', roles: ['editor'] }, node.runtime.jwtSecret, { issuer: config.auth.issuer, ttlSeconds: 86_400 });
  const auth = { Authorization: `Bearer ${token}` };
  try {
    const started = performance.now();
    const jobs: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: UPLOAD_CONCURRENCY }, async () => {
        while (next < docs.length) {
          const doc = docs[next++]!;
          const form = new FormData();
          form.append('source_id', `xquad-${doc.id}`);
          form.append('file', new Blob([doc.text], { type: 'text/plain' }), `${doc.id}.txt`);
          // A repeated upload is a duplicate (same source_id), not a second copy.
          const res = await fetchRetry(`${base}/api/v1/documents`, { method: 'POST', headers: auth, body: form });
          const body = (await res.json()) as { job: { id: string } | null };
          if (res.status !== 202 && res.status !== 200) throw new Error(`upload of ${doc.id} answered ${res.status}: ${JSON.stringify(body)}`);
          if (body.job) jobs.push(body.job.id);
        }
      }),
    );
    let failed = 0;
    for (const jobId of jobs) {
      for (;;) {
        const job = (await (await fetchRetry(`${base}/api/v1/jobs/${jobId}`, { headers: auth })).json()) as { status: string };
        if (job.status === 'ready') break;
        if (job.status === 'failed' || job.status === 'canceled') {
          failed++;
          break;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    console.log(`ingested ${docs.length} paragraphs in ${((performance.now() - started) / 1000).toFixed(1)} s (${failed} failed)`);

    let answerHits = 0;
    let bestHitHits = 0;
    let answerWords = 0;
    let bestHitWords = 0;
    let notFound = 0;
    const misses: string[] = [];
    // BENCH_DUMP=file.json keeps each question with its hits: bench:answers-offline re-scores them.
    const dump: Array<{ question: string; answers: string[]; hits: string[] }> = [];
    for (const q of asked) {
      const search = await fetchRetry(`${base}/api/v1/search`, {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ query: q.text, limit: RAG_TOP_K }),
      });
      const result = (await search.json()) as SearchResult;
      if (search.status !== 200) throw new Error(`search answered ${search.status}: ${JSON.stringify(result)}`);
      const best = result.hits[0]?.text ?? '';
      dump.push({ question: q.text, answers: q.answers, hits: result.hits.map((h) => h.text) });
      const completion = await fetchRetry(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'ragmesh', messages: [{ role: 'user', content: q.text }] }),
      });
      const body = (await completion.json()) as { choices: Array<{ message: { content: string } }> };
      if (completion.status !== 200) throw new Error(`chat completion answered ${completion.status}: ${JSON.stringify(body)}`);
      const content = body.choices[0]!.message.content;
      if (content.startsWith('Your documents do not answer')) notFound++;
      const hit = contains(content.replace(/\[\d+\]/g, ' '), q.answers);
      if (hit) answerHits++;
      else if (contains(best, q.answers) && misses.length < 8) misses.push(`Q: ${q.text}\n   gold: ${q.answers.join(' | ')}\n   A: ${content}`);
      if (contains(best, q.answers)) bestHitHits++;
      answerWords += wordCount(content);
      bestHitWords += wordCount(best);
    }
    const n = asked.length;
    if (process.env.BENCH_DUMP) await writeFile(process.env.BENCH_DUMP, JSON.stringify(dump));
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    console.log(`misses where the best hit held the answer (first ${misses.length}):\n  ${misses.join('\n  ')}`);
    const ratio = r3(answerHits / n / (bestHitHits / n));
    const words = Math.round((answerWords / n) * 10) / 10;
    console.log(`answers hold a gold span ${((100 * answerHits) / n).toFixed(1)} % in ${words} words; best hits ${((100 * bestHitHits) / n).toFixed(1)} % in ${(bestHitWords / n).toFixed(1)} words`);
    console.log(
      JSON.stringify({
        bench: 'answers',
        ratio,
        goal: 0.9,
        words_per_answer: words,
        words_goal: 30,
        met: ratio >= 0.9 && words <= 30,
        answer_containment: r3(answerHits / n),
        best_hit_containment: r3(bestHitHits / n),
        best_hit_words: Math.round((bestHitWords / n) * 10) / 10,
        not_found_answers: notFound,
        questions: n,
        paragraphs: docs.length,
        failed_jobs: failed,
        backend: 'extractive',
        node: process.version,
        cores: os.availableParallelism(),
      }),
    );
  } finally {
    await node.stop();
    await dir.dispose();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
