import type { FtConfig } from '../repositories/search.ts';
import { MARK_END, MARK_START } from './snippet.ts';

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
 * What differs from `ts_headline`, knowingly: a hyphenated compound is marked by its parts; a word whose stem does not start with the
 * word's first two letters (English `dying` → `die`) is not marked; fragments are chosen
 * for the most distinct query lexemes, then the most matches. Headlines are for display:
 * the ranking never reads them.
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
 * keeps memory flat (past it, that configuration's words are forgotten and asked again).
 */
export class LexemeCache {
  private readonly byConfig = new Map<FtConfig, Map<string, readonly string[]>>();

  constructor(
    private readonly lexize: Lexize,
    private readonly maxWordsPerConfig = 200_000,
  ) {}

  /** Lexemes of every (config, lowercased word) asked, from memory or one database call for the rest. */
  async resolve(wanted: Map<FtConfig, Set<string>>): Promise<(config: FtConfig, word: string) => readonly string[]> {
    const missing: Array<{ config: FtConfig; word: string }> = [];
    for (const [config, words] of wanted) {
      const known = this.known(config);
      for (const word of words) if (!known.has(word)) missing.push({ config, word });
    }
    const fetched = new Map<string, readonly string[]>();
    if (missing.length) {
      const lexemes = await this.lexize(missing);
      missing.forEach(({ config, word }, i) => {
        const found = lexemes[i] ?? [];
        fetched.set(`${config}\u0000${word}`, found);
        const known = this.known(config);
        if (known.size >= this.maxWordsPerConfig) known.clear();
        known.set(word, found);
      });
    }
    return (config, word) => this.byConfig.get(config)?.get(word) ?? fetched.get(`${config}\u0000${word}`) ?? [];
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

interface Word {
  start: number;
  end: number;
  lower: string;
}

/**
 * Headlines of texts for a query's lexemes (per configuration): each text's best fragments
 * with MARK_START/MARK_END around the words whose lexemes the query has, or null when none
 * of its words match (or the text holds the marker characters itself, which could not be
 * told apart from the marks).
 */
export async function headlines(
  inputs: HeadlineInput[],
  queryLexemes: Partial<Record<FtConfig, string[]>>,
  cache: LexemeCache,
  options: HeadlineOptions = HEADLINE_OPTIONS,
): Promise<Array<string | null>> {
  const prefixes = new Map<FtConfig, Set<string>>();
  const lexemeSets = new Map<FtConfig, Set<string>>();
  for (const [config, lexemes] of Object.entries(queryLexemes) as Array<[FtConfig, string[]]>) {
    if (!lexemes?.length) continue;
    lexemeSets.set(config, new Set(lexemes));
    prefixes.set(config, new Set(lexemes.map((l) => l.slice(0, 2))));
  }
  const words: Array<Word[] | null> = [];
  const candidates = new Map<FtConfig, Set<string>>();
  for (const { text, config } of inputs) {
    const prefixSet = prefixes.get(config);
    if (!prefixSet || text.includes(MARK_START) || text.includes(MARK_END)) {
      words.push(null);
      continue;
    }
    const list: Word[] = [];
    for (const m of text.matchAll(WORD)) {
      const lower = m[0].toLowerCase();
      list.push({ start: m.index, end: m.index + m[0].length, lower });
      if (prefixSet.has(lower.slice(0, 2))) {
        let set = candidates.get(config);
        if (!set) candidates.set(config, (set = new Set()));
        set.add(lower);
      }
    }
    words.push(list);
  }
  const lexemesOf = candidates.size ? await cache.resolve(candidates) : () => [];
  return inputs.map(({ text, config }, i) => {
    const list = words[i];
    if (!list) return null;
    const wanted = lexemeSets.get(config)!;
    const prefixSet = prefixes.get(config)!;
    // Per word: the query lexeme it stands for, or null.
    const matched = list.map((w) => (prefixSet.has(w.lower.slice(0, 2)) ? (lexemesOf(config, w.lower).find((l) => wanted.has(l)) ?? null) : null));
    if (!matched.some((m) => m !== null)) return null;
    return fragments(list, matched, options)
      .map(([from, to]) => mark(text, list, matched, from, to))
      .join(options.delimiter);
  });
}

/** Up to `maxFragments` word ranges [from, to), in text order: each the window with the most new query lexemes, then the most matches. */
function fragments(list: Word[], matched: Array<string | null>, options: HeadlineOptions): Array<[number, number]> {
  const n = list.length;
  // A text that fits one fragment is shown whole.
  if (n <= options.maxWords) return [[0, n]];
  const chosen: Array<[number, number]> = [];
  const covered = new Set<string>();
  for (let f = 0; f < options.maxFragments; f++) {
    let best: { range: [number, number]; score: number; lexemes: Set<string> } | null = null;
    for (let m = 0; m < n; m++) {
      if (matched[m] === null || chosen.some(([a, b]) => m >= a && m < b)) continue;
      let from = Math.max(0, Math.min(m - options.context, n - options.minWords));
      // Never inside a fragment already chosen.
      for (const [a, b] of chosen) if (from >= a && from < b) from = b;
      let to = Math.min(n, from + options.maxWords);
      // Stop at the first fragment already chosen, and short of words after the last match.
      for (const [a] of chosen) if (a >= from && a < to) to = a;
      let last = m;
      const lexemes = new Set<string>();
      let matches = 0;
      for (let k = from; k < to; k++) {
        const lexeme = matched[k];
        if (lexeme === null || lexeme === undefined) continue;
        matches++;
        last = k;
        lexemes.add(lexeme);
      }
      to = Math.min(to, Math.max(from + options.minWords, last + 1 + options.context));
      const fresh = [...lexemes].filter((l) => !covered.has(l)).length;
      const score = fresh * 1_000 + matches;
      if (!best || score > best.score) best = { range: [from, to], score, lexemes };
    }
    if (!best) break;
    chosen.push(best.range);
    for (const l of best.lexemes) covered.add(l);
  }
  return chosen.sort((a, b) => a[0] - b[0]);
}

/** The text of words [from, to) with the matched words marked, its whitespace folded; from the text's start or to its end when the range reaches them. */
function mark(text: string, list: Word[], matched: Array<string | null>, from: number, to: number): string {
  let out = '';
  let at = from === 0 ? 0 : list[from]!.start;
  for (let k = from; k < to; k++) {
    const w = list[k]!;
    if (matched[k] === null) continue;
    out += `${text.slice(at, w.start)}${MARK_START}${text.slice(w.start, w.end)}${MARK_END}`;
    at = w.end;
  }
  out += text.slice(at, to === list.length ? text.length : list[to - 1]!.end);
  return out.replace(/\s+/g, ' ').trim();
}
