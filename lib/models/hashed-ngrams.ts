import type { HashedNgramEmbedSpec } from './manifest.ts';
import { l2normalize, type Encoded, type TextKind } from './onnx-embedder.ts';

/**
 * The starter embedder of the embedded default: no weights, no download, any script.
 * Each word contributes itself and its character n-grams (with word-boundary marks),
 * hashed with a sign into a fixed-width vector ("feature hashing"), weighted by
 * 1 + log(count), then L2-normalized. Cosine similarity between two texts is then a
 * smoothed measure of shared words and word pieces, so inflected forms match
 * ("документ", "документы", "документов" share most n-grams; so do "retrieve" and
 * "retrieval"). It is lexical, not semantic: synonyms and paraphrases with no shared
 * letters do not match. docs/models.md records its measured retrieval quality.
 */

export interface HashedNgramConfig {
  /** Smallest and largest character n-gram. */
  minN: number;
  maxN: number;
  /** Weight of the whole-word feature relative to one n-gram. */
  wordWeight: number;
  seed: number;
  /** Drop common English and Russian function words (there is no corpus IDF to do it). */
  stopwords: boolean;
}

export const DEFAULT_NGRAM_CONFIG: HashedNgramConfig = { minN: 4, maxN: 5, wordWeight: 2, seed: 0x9e3779b1, stopwords: true };

// With no corpus statistics (no IDF), frequent function words would dominate every
// vector; these short lists remove most of that mass.
const STOPWORDS = new Set(
  (
    'a about above after again against all am an and any are as at be because been before being below between both but by can could did do does doing ' +
    'down during each few for from further had has have having he her here hers him his how i if in into is it its itself just me more most my no nor ' +
    'not now of off on once only or other our ours out over own same she should so some such than that the their theirs them then there these they ' +
    'this those through to too under until up very was we were what when where which while who whom why will with would you your yours also may ' +
    'и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от меня еще нет о из ему теперь когда ' +
    'даже ну вдруг ли если уже или ни быть был него до вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где есть надо ней для мы ' +
    'тебя их чем была сам чтоб без будто чего раз тоже себе под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой ' +
    'тем чтобы нее сейчас были куда зачем всех никогда можно при наконец два об другой хоть после над больше тот через эти нас про всего них какая ' +
    'много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда конечно всю между это также'
  ).split(' '),
);

const WORD = /[\p{L}\p{N}]+/gu;

export class HashedNgramEncoder {
  constructor(
    readonly spec: HashedNgramEmbedSpec,
    private readonly config: HashedNgramConfig,
  ) {
    if (config.minN < 1 || config.maxN < config.minN) throw new Error('hashed-ngrams: need 1 ≤ minN ≤ maxN');
  }

  /** "Tokens" here are words; maxTokens caps how many words of a text count. */
  encode(text: string, kind: TextKind): Encoded & { words: string[] } {
    const prefix = kind === 'query' ? this.spec.queryPrefix : this.spec.passagePrefix;
    const normalized = (prefix + text).normalize('NFKC').toLowerCase().replaceAll('ё', 'е');
    const all = normalized.match(WORD) ?? [];
    const words = (this.config.stopwords ? all.filter((w) => !STOPWORDS.has(w)) : all).slice(0, this.spec.maxTokens);
    return { ids: words.map((_, i) => i), typeIds: [], words };
  }

  embed(encoded: Encoded & { words: string[] }): Float32Array {
    const counts = new Map<number, number>();
    const add = (feature: string, weight: number) => {
      const h = fnv1a(feature, this.config.seed);
      counts.set(h, (counts.get(h) ?? 0) + weight);
    };
    for (const word of encoded.words) {
      add(`w:${word}`, this.config.wordWeight);
      const marked = `<${word}>`;
      for (let n = this.config.minN; n <= this.config.maxN; n++) {
        for (let i = 0; i + n <= marked.length; i++) add(marked.slice(i, i + n), 1);
      }
    }
    const dim = this.spec.dimension;
    const v = new Float32Array(dim);
    for (const [h, count] of counts) {
      // Sublinear weighting: a word repeated ten times should not drown the rest.
      const weight = 1 + Math.log(count);
      v[h % dim]! += h & 0x80000000 ? -weight : weight;
    }
    return l2normalize(v);
  }
}

/** 32-bit FNV-1a over UTF-16 code units; the top bit doubles as the feature's sign. */
function fnv1a(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche so that nearby strings spread over all buckets.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}
