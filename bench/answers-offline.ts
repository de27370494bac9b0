/**
 * bench:answers-offline — re-scores the extractive answer selection on the hits a
 * bench:answers run kept with BENCH_DUMP, without booting a node: what a change to
 * lib/llm/extractive.ts or sentences.ts does, in seconds, on a shared machine.
 *
 *   BENCH_DATASETS=… BENCH_QUESTIONS=1190 BENCH_DUMP=/tmp/xquad-hits.json npm run bench:answers
 *   BENCH_DUMP=/tmp/xquad-hits.json npm run bench:answers-offline
 *
 * With a dump of all 1,190 questions it reports two splits: `bench` (the 200 questions
 * bench:answers asks by default, spread evenly) and `held_out` (the other 990). Tune on
 * held_out; bench is the check. Same measures as bench:answers (answers are what
 * ExtractiveBackend would stream for the same sources: sentence + citation marker).
 */
import { readFile } from 'node:fs/promises';
import { NOT_FOUND_ANSWER, pickSentences } from '../lib/llm/extractive.ts';

const fold = (text: string) => ` ${text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim()} `;
const contains = (text: string, golds: string[]) => golds.some((g) => fold(text).includes(fold(g)));
const wordCount = (text: string) => (text.replace(/\[\d+\]/g, ' ').match(/[\p{L}\p{N}]+(?:[.,'’-][\p{L}\p{N}]+)*/gu) ?? []).length;

async function main(): Promise<void> {
  const file = process.env.BENCH_DUMP;
  if (!file) throw new Error('BENCH_DUMP=<file> written by bench:answers is required');
  const dump = JSON.parse(await readFile(file, 'utf8')) as Array<{ question: string; answers: string[]; hits: string[] }>;
  const benchQuestions = Math.min(200, dump.length);
  const inBench = new Set(Array.from({ length: benchQuestions }, (_, i) => Math.floor(i * (dump.length / benchQuestions))));
  const splits = dump.length > benchQuestions ? ['bench', 'held_out'] : ['bench'];
  for (const split of splits) {
    const rows = dump.filter((_, i) => inBench.has(i) === (split === 'bench'));
    let answerHits = 0;
    let bestHitHits = 0;
    let words = 0;
    let sentences = 0;
    for (const row of rows) {
      const sources = row.hits.map((text, i) => ({ n: i + 1, chunkId: `c${i}`, documentId: `d${i}`, title: null, page: null, text }));
      const picked = pickSentences(row.question, sources);
      const answer = picked.length ? picked.map((s) => `${s.text} [${s.n}]`).join(' ') : NOT_FOUND_ANSWER;
      if (contains(answer.replace(/\[\d+\]/g, ' '), row.answers)) answerHits++;
      if (contains(row.hits[0] ?? '', row.answers)) bestHitHits++;
      words += wordCount(answer);
      sentences += picked.length;
    }
    const n = rows.length;
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    console.log(
      JSON.stringify({
        bench: 'answers-offline',
        split,
        ratio: r3(answerHits / bestHitHits),
        words_per_answer: Math.round((words / n) * 10) / 10,
        sentences_per_answer: Math.round((sentences / n) * 100) / 100,
        answer_containment: r3(answerHits / n),
        best_hit_containment: r3(bestHitHits / n),
        questions: n,
      }),
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
