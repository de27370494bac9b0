import type { FtConfig } from '../repositories/search.ts';
import { escapeHtml } from './snippet.ts';

/**
 * Headlines (the marked excerpt of a hit) made in the process instead of by `ts_headline`.
 *
 * Why: `ts_headline` parses each shown hit's whole text again with PostgreSQL's parser,
 * which on the embedded profile runs in WebAssembly on the node's one thread: 1.7 ms of
 * a lexical search's ~7 (docs/search.md), and 1.5–2.2 ms of PostgreSQL's CPU on the mesh.
 * Here the text is split into words in JavaScript, and only the words that could stem to
 * a query lexeme (same first two letters) are asked for their lexemes, which PostgreSQL
 * gives once per word and configuration (`to_tsvector`, the same parser, dictionaries and
 * stemmer that indexed the chunk) and this process remembers.
 *
 * What differs from `ts_headline`, knowingly: a hyphenated compound is marked by its
 * parts; a word whose stem does not start with the word's first two letters (English
 * `dying` → `die`) is not marked; fragments are chosen for the most distinct query
 * lexemes, then the most matches. Headlines are for display: the ranking never reads them.
 */

export interface HeadlineOptions {
  /** Words in one fragment, at most. */
  maxWords: number;
  /** Words in one fragment, at least (when the text has them). */
  minWords: number;
  /** Fragments in one headline, at most. */
  maxFragments: number;
  /** Words of context kept before a fragment's first match. */
  context: number;
  delimiter: string;
}

/** The same shape as the `ts_headline` options used before (MaxWords=32, MinWords=12, MaxFragments=2). */
export const HEADLINE_OPTIONS: HeadlineOptions = { maxWords: 32, minWords: 12, maxFragments: 2, context: 6, delimiter: ' … ' };

/** Each word's lexemes in a configuration, as `to_tsvector(config, word)` gives them (none for a stop word). */
export type Lexize = (words: Array<{ config: FtConfig; word: string }>) => Promise<Array<readonly string[]>>;

/**
 * PostgreSQL's tokens, near enough to mark them: runs of letters (with their combining
 * marks) and digits, joined by dots, @, slashes and underscores into one token, as its
 * parser keeps an e-mail, a host, a version or a path whole ("gnu" does not match
 * "gnu.org"); the database gives such a token's lexemes like any word's.
 */
const WORD = /[\p{L}\p{N}][\p{L}\p{M}\p{N}]*(?:[.@/_][\p{L}\p{N}][\p{L}\p{M}\p{N}]*)*/gu;

/**
 * Lexemes of words, per configuration, asked of the database once and then remembered.
 * A configuration's dictionaries do not change while the process runs; the bound only
 * keeps memory flat (past it, that configuration's words are forgotten and asked again):
 * 200k words of ~13 letters took 31 MB of heap, so 50k a configuration is ~8 MB.
 */
export class LexemeCache {
  private readonly byConfig = new Map<FtConfig, Map<string, readonly string[]>>();

  constructor(
    private readonly lexize: Lexize,
    private readonly maxWordsPerConfig = 50_000,
  ) {}

  /**
   * Lexemes of every (config, word) asked, from memory or one database call for the rest.
   * The answer is this call's own copy: another call that meanwhile fills the memory past
   * its bound (and so clears it) cannot take a word from under it — the statistics of a
   * search are made from these.
   */
  async resolve(wanted: Map<FtConfig, Set<string>>): Promise<(config: FtConfig, word: string) => readonly string[]> {
    const found = new Map<FtConfig, Map<string, readonly string[]>>();
    const missing: Array<{ config: FtConfig; word: string }> = [];
    for (const [config, words] of wanted) {
      const known = this.known(config);
      const answer = new Map<string, readonly string[]>();
      found.set(config, answer);
      for (const word of words) {
        const lexemes = known.get(word);
        if (lexemes) answer.set(word, lexemes);
        else missing.push({ config, word });
      }
    }
    if (missing.length) {
      const lexemes = await this.lexize(missing);
      missing.forEach(({ config, word }, i) => {
        const got = lexemes[i] ?? [];
        found.get(config)!.set(word, got);
        const known = this.known(config);
        if (known.size >= this.maxWordsPerConfig) known.clear();
        known.set(word, got);
      });
    }
    return (config, word) => found.get(config)?.get(word) ?? [];
  }

  private known(config: FtConfig): Map<string, readonly string[]> {
    let known = this.byConfig.get(config);
    if (!known) this.byConfig.set(config, (known = new Map()));
    return known;
  }
}

export interface HeadlineInput {
  text: string;
  config: FtConfig;
}

/** A text's tokens (word offsets) and, of those that could match, their lowercase form. */
interface Tokens {
  starts: number[];
  ends: number[];
  /** Token indices that share their first two letters with a query lexeme, and those tokens lowercased. */
  candidates: number[];
  lowered: string[];
}

/** Query lexemes' first letters, as numbers: two letters (or one, for a one-letter lexeme). */
function prefixKey(first: number, second: number): number {
  return first * 0x10000 + second;
}

function tokenize(text: string, prefixes: Set<number>): Tokens {
  const lower = text.toLowerCase();
  // Offsets in the lowercased text are the text's own unless lowercasing changed a length (İ).
  const aligned = lower.length === text.length;
  const tokens: Tokens = { starts: [], ends: [], candidates: [], lowered: [] };
  WORD.lastIndex = 0;
  for (let m = WORD.exec(text); m; m = WORD.exec(text)) {
    const start = m.index;
    const end = start + m[0].length;
    const index = tokens.starts.push(start) - 1;
    tokens.ends.push(end);
    const word = aligned ? null : m[0].toLowerCase();
    const source = word ?? lower;
    const at = word ? 0 : start;
    const first = source.charCodeAt(at);
    const second = end - start > 1 ? source.charCodeAt(at + 1) : 0;
    if (prefixes.has(prefixKey(first, second)) || prefixes.has(prefixKey(first, 0))) {
      tokens.candidates.push(index);
      tokens.lowered.push(word ?? lower.slice(start, end));
    }
  }
  return tokens;
}

/**
 * Headlines of texts for a query's lexemes (per configuration), as HTML: each text's best
 * fragments, escaped, with <mark>…</mark> around the words whose lexemes the query has; or
 * null when none of its words match.
 */
export async function headlines(
  inputs: HeadlineInput[],
  queryLexemes: Partial<Record<FtConfig, string[]>>,
  cache: LexemeCache,
  options: HeadlineOptions = HEADLINE_OPTIONS,
): Promise<Array<string | null>> {
  const prefixes = new Map<FtConfig, Set<number>>();
  /** Per configuration: each query lexeme's number (its index), for the fragments' bookkeeping. */
  const lexemeIds = new Map<FtConfig, Map<string, number>>();
  for (const [config, lexemes] of Object.entries(queryLexemes) as Array<[FtConfig, string[]]>) {
    if (!lexemes?.length) continue;
    lexemeIds.set(config, new Map(lexemes.map((l, i) => [l, i])));
    // A one-letter lexeme is keyed by its letter alone (second 0), and matches any token starting with it.
    prefixes.set(config, new Set(lexemes.map((l) => prefixKey(l.charCodeAt(0), l.length > 1 ? l.charCodeAt(1) : 0))));
  }
  const tokenized: Array<Tokens | null> = [];
  const wanted = new Map<FtConfig, Set<string>>();
  for (const { text, config } of inputs) {
    const prefixSet = prefixes.get(config);
    if (!prefixSet) {
      tokenized.push(null);
      continue;
    }
    const tokens = tokenize(text, prefixSet);
    if (tokens.lowered.length) {
      let set = wanted.get(config);
      if (!set) wanted.set(config, (set = new Set()));
      for (const word of tokens.lowered) set.add(word);
    }
    tokenized.push(tokens);
  }
  const lexemesOf = wanted.size ? await cache.resolve(wanted) : () => [];
  // Per configuration: the query lexeme a word stands for (-1: none), worked out once a call.
  const matchOf = new Map<FtConfig, Map<string, number>>();
  const match = (config: FtConfig, word: string): number => {
    let memo = matchOf.get(config);
    if (!memo) matchOf.set(config, (memo = new Map()));
    let id = memo.get(word);
    if (id === undefined) {
      const ids = lexemeIds.get(config)!;
      id = -1;
      for (const lexeme of lexemesOf(config, word)) {
        const found = ids.get(lexeme);
        if (found !== undefined) {
          id = found;
          break;
        }
      }
      memo.set(word, id);
    }
    return id;
  };
  return inputs.map(({ text, config }, i) => {
    const tokens = tokenized[i];
    if (!tokens) return null;
    // The matching tokens, in order, with the query lexeme each stands for.
    const hits: Hit[] = [];
    for (let k = 0; k < tokens.candidates.length; k++) {
      const lexeme = match(config, tokens.lowered[k]!);
      if (lexeme >= 0) hits.push({ index: tokens.candidates[k]!, lexeme });
    }
    if (hits.length === 0) return null;
    const lexemeCount = lexemeIds.get(config)!.size;
    return fragments(tokens.starts.length, hits, lexemeCount, options)
      .map(([from, to]) => markHtml(text, tokens, hits, from, to))
      .join(escapeHtml(options.delimiter));
  });
}

interface Hit {
  /** The token's index. */
  index: number;
  /** The query lexeme's number. */
  lexeme: number;
}

/** Up to `maxFragments` token ranges [from, to), in text order: each the window with the most new query lexemes, then the most matches. */
function fragments(n: number, hits: Hit[], lexemeCount: number, options: HeadlineOptions): Array<[number, number]> {
  // A text that fits one fragment is shown whole.
  if (n <= options.maxWords) return [[0, n]];
  const chosen: Array<[number, number]> = [];
  const covered = new Uint8Array(lexemeCount);
  // The window a lexeme was last counted in (a fresh number per window: no clearing).
  const countedIn = new Int32Array(lexemeCount).fill(-1);
  let window = 0;
  for (let f = 0; f < options.maxFragments; f++) {
    let best: { range: [number, number]; score: number; first: number; last: number } | null = null;
    // `hits` are in text order: a window's hits are a run of them, found from the run's first.
    let runStart = 0;
    for (let h = 0; h < hits.length; h++) {
      const { index } = hits[h]!;
      let inside = false;
      for (const [a, b] of chosen) if (index >= a && index < b) inside = true;
      if (inside) continue;
      let from = Math.max(0, Math.min(index - options.context, n - options.minWords));
      // Never inside a fragment already chosen, and stopping at the next one.
      for (const [a, b] of chosen) if (from >= a && from < b) from = b;
      let to = Math.min(n, from + options.maxWords);
      for (const [a] of chosen) if (a >= from && a < to) to = a;
      while (hits[runStart]!.index < from) runStart++;
      let last = index;
      let matches = 0;
      let fresh = 0;
      window++;
      let k = runStart;
      for (; k < hits.length && hits[k]!.index < to; k++) {
        const hit = hits[k]!;
        matches++;
        last = hit.index;
        if (countedIn[hit.lexeme] !== window) {
          countedIn[hit.lexeme] = window;
          if (!covered[hit.lexeme]) fresh++;
        }
      }
      to = Math.min(to, Math.max(from + options.minWords, last + 1 + options.context));
      const score = fresh * 1_000 + matches;
      if (!best || score > best.score) best = { range: [from, to], score, first: runStart, last: k };
    }
    if (!best) break;
    chosen.push(best.range);
    for (let k = best.first; k < best.last; k++) covered[hits[k]!.lexeme] = 1;
  }
  return chosen.sort((a, b) => a[0] - b[0]);
}

/** Plain text as HTML, its whitespace folded to single spaces. */
function plainHtml(text: string): string {
  return escapeHtml(text.replace(/\s+/g, ' '));
}

/** Tokens [from, to) as HTML, the matching ones in <mark>; from the text's start or to its end when the range reaches them. */
function markHtml(text: string, tokens: Tokens, hits: Hit[], from: number, to: number): string {
  let out = '';
  let at = from === 0 ? 0 : tokens.starts[from]!;
  for (const { index } of hits) {
    if (index < from) continue;
    if (index >= to) break;
    const start = tokens.starts[index]!;
    const end = tokens.ends[index]!;
    out += `${plainHtml(text.slice(at, start))}<mark>${escapeHtml(text.slice(start, end))}</mark>`;
    at = end;
  }
  out += plainHtml(text.slice(at, to === tokens.starts.length ? text.length : tokens.ends[to - 1]!));
  return out.trim();
}
