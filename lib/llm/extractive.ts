import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { approximateTokens } from '../chunking/index.ts';
import { isStopword } from '../extract/normalize.ts';
import type { GenerateEvent, GenerateRequest, LlmBackend, LlmSource } from './types.ts';

export const NO_MODEL_ANSWER =
  'No generative model is configured in this ragmesh, so it answers only from your documents. Ask with your documents as sources (RAG), or ask an administrator to configure an LLM backend.';
export const NOT_FOUND_ANSWER = 'Your documents do not answer this question.';

/** At most this many sentences make an answer: a grounded summary, not a dump of the sources. */
const MAX_SENTENCES = 4;

/**
 * The offline default: no weights, no invention. The answer is the sentences of the
 * retrieved chunks that best match the question (question words weighted by how rare
 * they are among the candidates; words compared by their first five letters, so
 * «договора» meets «договор»), each followed by its citation marker, streamed word by
 * word like a model's tokens.
 */
export class ExtractiveBackend implements LlmBackend {
  readonly name = 'extractive';
  readonly version = 'extractive-1';

  async *generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
    const question = [...request.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    const promptTokens = request.messages.reduce((sum, m) => sum + approximateTokens(m.content), 0) + request.sources.reduce((sum, s) => sum + approximateTokens(s.text), 0);
    const picked = request.grounded || request.sources.length > 0 ? pickSentences(question, request.sources) : null;
    const answer = picked === null ? NO_MODEL_ANSWER : picked.length === 0 ? NOT_FOUND_ANSWER : picked.map((s) => `${s.text} [${s.n}]`).join(' ');
    const citations = [...new Set((picked ?? []).map((s) => s.n))].sort((a, b) => a - b);

    let completionTokens = 0;
    for (const piece of answer.match(/\S+\s*/g) ?? []) {
      if (request.signal.aborted) return;
      const tokens = approximateTokens(piece);
      if (completionTokens + tokens > request.maxTokens) {
        yield { type: 'done', usage: { promptTokens, completionTokens }, citations, finishReason: 'length' };
        return;
      }
      completionTokens += tokens;
      yield { type: 'token', text: piece };
      // Let other requests and the transport run between tokens, as a model's stream does.
      await yieldToLoop();
    }
    yield { type: 'done', usage: { promptTokens, completionTokens }, citations, finishReason: 'stop' };
  }
}

const stem = (word: string) => (word.length > 5 ? word.slice(0, 5) : word);
const termsOf = (text: string) =>
  (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => w.length > 1 && !isStopword(w)).map(stem);

function pickSentences(question: string, sources: LlmSource[]): Array<{ n: number; text: string }> {
  const wanted = new Set(termsOf(question));
  if (wanted.size === 0) return [];
  const sentences = sources.flatMap((source) =>
    (source.text.match(/[^.!?…]+(?:[.!?…]+|$)/gu) ?? [])
      .map((text) => text.replace(/\s+/g, ' ').trim())
      .filter((text) => text.length > 2)
      .map((text, position) => ({ n: source.n, text, position, terms: new Set(termsOf(text)) })),
  );
  const df = new Map<string, number>();
  for (const s of sentences) for (const t of s.terms) if (wanted.has(t)) df.set(t, (df.get(t) ?? 0) + 1);
  const scored = sentences
    .map((s) => ({ ...s, score: [...wanted].reduce((sum, t) => sum + (s.terms.has(t) ? Math.log(1 + sentences.length / df.get(t)!) : 0), 0) }))
    .filter((s) => s.score > 0)
    .sort((a, b) => b.score - a.score || a.n - b.n || a.position - b.position)
    .slice(0, MAX_SENTENCES);
  // Read in source order, as the sources were ranked.
  return scored.sort((a, b) => a.n - b.n || a.position - b.position).map(({ n, text }) => ({ n, text }));
}
