import { appError } from '../errors.ts';

/** Longer questions are refused rather than cut: a cut question silently searches for something else. */
export const QUERY_MAX_CHARS = 4000;
/** Distinct words scored per query; each one costs a join per candidate chunk. */
export const QUERY_MAX_WORDS = 512;

/**
 * A search question as the user wrote it, split into what the lexical leg needs:
 * plain words (any of them may match; repeats kept, BM25 counts them), "quoted
 * phrases" (each must occur as a phrase) and -excluded words or "-phrases".
 * The text is only ever passed to PostgreSQL as bound values of to_tsvector /
 * phraseto_tsquery / plainto_tsquery: no part of it is parsed as tsquery syntax.
 */
export interface ParsedQuery {
  /** The question for the dense leg: the text without operators. */
  text: string;
  /** Every positive word (phrase words included), in order, repeats kept. */
  words: string[];
  phrases: string[];
  excluded: string[];
}

const QUOTES: Record<string, string> = { '"': '"', '«': '»', '“': '”', '„': '“' };
const WORD = /[\p{L}\p{N}]/u;

export function parseQuery(raw: unknown): ParsedQuery {
  if (typeof raw !== 'string') throw appError('EMPTY_QUERY', 'query must be a string');
  if (raw.length > QUERY_MAX_CHARS) {
    throw appError('QUERY_TOO_LONG', `query is ${raw.length} characters; at most ${QUERY_MAX_CHARS} are accepted`);
  }
  // NFC so «договора» typed with combining marks meets the indexed (NFC) text; control
  // characters and NUL (which PostgreSQL refuses in text) become spaces.
  const input = raw.normalize('NFC').replace(/[\u0000-\u001f\u007f\ue000-\uf8ff]/g, ' ');
  const words: string[] = [];
  const phrases: string[] = [];
  const excluded: string[] = [];
  const textParts: string[] = [];

  let i = 0;
  while (i < input.length) {
    const ch = input[i]!;
    if (isSpace(ch)) {
      i++;
      continue;
    }
    const negated = ch === '-' && i + 1 < input.length && !isSpace(input[i + 1]!);
    const start = negated ? i + 1 : i;
    const open = input[start]!;
    const close = QUOTES[open];
    let token: string;
    let phrase = false;
    if (close) {
      const end = input.indexOf(close, start + 1);
      token = input.slice(start + 1, end === -1 ? input.length : end);
      i = end === -1 ? input.length : end + 1;
      phrase = true;
    } else {
      let end = start;
      while (end < input.length && !isSpace(input[end]!)) end++;
      token = input.slice(start, end);
      i = end;
    }
    const tokenWords = splitWords(token);
    if (tokenWords.length === 0) continue;
    if (negated) {
      excluded.push(tokenWords.join(' '));
      continue;
    }
    textParts.push(phrase ? tokenWords.join(' ') : token);
    words.push(...tokenWords);
    if (phrase && tokenWords.length > 1) phrases.push(tokenWords.join(' '));
  }

  if (words.length === 0) {
    throw appError(
      'EMPTY_QUERY',
      excluded.length > 0 ? 'query has only excluded words; add at least one word to look for' : 'query has no words to look for',
    );
  }
  if (new Set(words.map((w) => w.toLowerCase())).size > QUERY_MAX_WORDS) {
    throw appError('QUERY_TOO_LONG', `query has more than ${QUERY_MAX_WORDS} distinct words`);
  }
  return { text: textParts.join(' '), words, phrases, excluded };
}

/** `/\s/u` on one character, without a regular expression for the common ASCII ones (it ran per character). */
function isSpace(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 128) return c === 32 || (c >= 9 && c <= 13);
  return /\s/u.test(ch);
}

/** Runs of letters and digits (with inner - ' . _ kept, like "e-mail", "don't", "3.5"). */
function splitWords(token: string): string[] {
  const out: string[] = [];
  for (const m of token.matchAll(/[\p{L}\p{N}][\p{L}\p{N}\p{M}'’._-]*/gu)) {
    const word = m[0].replace(/['’._-]+$/u, '');
    if (WORD.test(word)) out.push(word);
  }
  return out;
}
