import { createHash } from 'node:crypto';
import { detectLanguage, type TextLanguage } from '../extract/language.ts';
import type { ExtractedDocument, ExtractedPage } from '../extract/types.ts';

export interface Chunk {
  ord: number;
  /** A contiguous slice of one page's extracted text (paragraph breaks kept). */
  text: string;
  page: number | null;
  /** The heading the chunk's own text starts under (or is), for citations. */
  heading: string | null;
  lang: TextLanguage;
  contentHash: string;
  tokenCount: number;
}

export interface ChunkOptions {
  targetTokens: number;
  overlapTokens: number;
  /** The embedding model's tokenizer, when the caller has it; a fast approximation otherwise. */
  countTokens?: (text: string) => number;
}

/**
 * Subword tokenizers (WordPiece, SentencePiece) cut long words into pieces; counting
 * letter runs in pieces of at most six, plus each punctuation mark, lands within a few
 * percent of multilingual tokenizers on Russian and English prose.
 */
export function approximateTokens(text: string): number {
  return (text.match(/[\p{L}\p{N}]{1,6}|[^\s\p{L}\p{N}]/gu) ?? []).length;
}

/** What a chunk boundary before a unit breaks: the higher, the better a place to cut. */
const WORDS = 1;
const SENTENCE = 2;
const PARAGRAPH = 3;
const SECTION = 4;

interface Unit {
  start: number;
  end: number;
  tokens: number;
  /** The boundary just before this unit. */
  strength: number;
  isHeading: boolean;
}

/**
 * Cuts a document into chunks of at most `targetTokens` (by `countTokens`): it fills a
 * chunk, then cuts at the strongest boundary in its second half — a heading, else a
 * paragraph, else a sentence, else between words; never inside a word (only a "word"
 * longer than a whole chunk, a URL or base64 run, is cut). A chunk stays on one page,
 * never ends on a heading, and carries the heading its text starts under. Consecutive chunks of
 * a section share up to `overlapTokens` of text (whole sentences when they fit, else
 * whole words). Each chunk is a slice of its page's text. Deterministic.
 */
export function chunkDocument(document: ExtractedDocument, options: ChunkOptions): Chunk[] {
  const count = options.countTokens ?? approximateTokens;
  const target = Math.max(8, Math.floor(options.targetTokens));
  const overlap = Math.min(Math.max(0, Math.floor(options.overlapTokens)), Math.floor(target / 2));
  const documentLang = detectLanguage(document.pages.map((p) => p.text.slice(0, 4000)).join('\n\n').slice(0, 20_000));
  const chunks: Chunk[] = [];
  let heading: string | null = null;
  for (const page of document.pages) {
    heading = chunkPage(page, { count, target, overlap, documentLang }, heading, chunks);
  }
  return chunks;
}

interface PageContext {
  count: (text: string) => number;
  target: number;
  overlap: number;
  documentLang: TextLanguage;
}

/** Appends the page's chunks; returns the heading in force at the page's end. */
function chunkPage(page: ExtractedPage, context: PageContext, headingBefore: string | null, out: Chunk[]): string | null {
  const { count, target, overlap } = context;
  const text = page.text;
  const headings = [...(page.headings ?? [])].sort((a, b) => a.offset - b.offset);
  const units = segment(text, new Set(headings.map((h) => h.offset)), context);
  let h = 0;
  let heading = headingBefore;
  const headingAt = (offset: number) => {
    while (h < headings.length && headings[h]!.offset <= offset) heading = headings[h++]!.text;
    return heading;
  };

  let i = 0;
  let carry: { start: number; tokens: number } | null = null;
  while (i < units.length) {
    if (carry && carry.tokens + units[i]!.tokens > target) carry = null;
    let tokens = carry?.tokens ?? 0;
    let j = i;
    while (j < units.length && (j === i || tokens + units[j]!.tokens <= target)) tokens += units[j++]!.tokens;
    let cut = j;
    if (j < units.length) cut = bestCut(units, i, j, carry?.tokens ?? 0, target);
    // A heading belongs with the text under it, in the next chunk.
    while (cut - 1 > i && units[cut - 1]!.isHeading) cut--;

    let start = carry?.start ?? units[i]!.start;
    let end = units[cut - 1]!.end;
    let slice = text.slice(start, end);
    let tokenCount = count(slice);
    // A tokenizer need not be additive over pieces: if the whole is over, shed the overlap, then units.
    while (tokenCount > target && (start < units[i]!.start || cut - 1 > i)) {
      if (start < units[i]!.start) start = units[i]!.start;
      else end = units[--cut - 1]!.end;
      slice = text.slice(start, end);
      tokenCount = count(slice);
    }
    if (/[\p{L}\p{N}]/u.test(slice)) {
      // A chunk opening with headings ("Chapter 2", "2.1 Payments") is under the last of them.
      let first = i;
      while (first + 1 < cut && units[first]!.isHeading) first++;
      out.push({
        ord: out.length,
        text: slice,
        page: page.page,
        heading: headingAt(units[first]!.start),
        lang: detectLanguage(slice, context.documentLang),
        contentHash: createHash('sha256').update(slice).digest('hex'),
        tokenCount,
      });
    }
    carry = cut < units.length && overlap > 0 && units[cut]!.strength < SECTION ? overlapTail(text, units, i, cut, overlap, count) : null;
    i = cut;
  }
  headingAt(text.length);
  return heading;
}

/**
 * Where to end a chunk holding units i..j-1 when unit j does not fit: the strongest
 * boundary that leaves the chunk at least half full (a section break: a third), the
 * latest of equals.
 */
function bestCut(units: Unit[], i: number, j: number, carried: number, target: number): number {
  let best = j;
  let bestStrength = units[j]!.strength;
  let filled = carried;
  for (let k = i + 1; k < j; k++) {
    filled += units[k - 1]!.tokens;
    const strength = units[k]!.strength;
    const enough = filled >= target * (strength === SECTION ? 1 / 3 : 1 / 2);
    if (enough && strength > bestStrength) {
      best = k;
      bestStrength = strength;
    }
  }
  // Latest of the strongest: look again from the end for the same strength.
  if (best !== j) {
    for (let k = j - 1; k > best; k--) {
      if (units[k]!.strength === bestStrength) return k;
    }
  }
  return best;
}

/** The end of the chunk just cut, to repeat at the start of the next: whole units when they fit, else whole words. */
function overlapTail(text: string, units: Unit[], i: number, cut: number, overlap: number, count: (t: string) => number): { start: number; tokens: number } | null {
  let k = cut;
  let tokens = 0;
  while (k - 1 > i && !units[k - 1]!.isHeading && tokens + units[k - 1]!.tokens <= overlap) tokens += units[--k]!.tokens;
  if (k < cut) return { start: units[k]!.start, tokens: count(text.slice(units[k]!.start, units[cut - 1]!.end)) };
  // The last unit alone is longer than the overlap: its last words.
  const last = units[cut - 1]!;
  const starts = wordStarts(text, last.start, last.end);
  let lo = 1;
  let hi = starts.length - 1;
  let found = -1;
  // The fewest leading words to drop so the rest fits (binary search over word starts).
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (count(text.slice(starts[mid]!, last.end)) <= overlap) {
      found = mid;
      hi = mid - 1;
    } else lo = mid + 1;
  }
  if (found < 0) return null;
  return { start: starts[found]!, tokens: count(text.slice(starts[found]!, last.end)) };
}

function wordStarts(text: string, start: number, end: number): number[] {
  const starts: number[] = [];
  const re = /\S+/g;
  re.lastIndex = start;
  for (let m = re.exec(text); m && m.index < end; m = re.exec(text)) starts.push(m.index);
  return starts;
}

/** A sentence ends at . ! ? … (and closing quotes or brackets) before a space and a capital, digit or opening quote. */
const SENTENCE_END = /[.!?…]+["'»”’)\]]*\s+(?=["'«“„(\[]?[\p{Lu}\p{N}])/gu;

/**
 * The page as units no bigger than a chunk: whole paragraphs when they fit, else their
 * sentences, else runs of whole words (a quarter of a chunk, so packing and overlap have
 * room), each knowing how strong the boundary before it is.
 */
function segment(text: string, headingOffsets: Set<number>, { count, target }: PageContext): Unit[] {
  const units: Unit[] = [];
  let paragraphStart = 0;
  while (paragraphStart < text.length) {
    let paragraphEnd = text.indexOf('\n\n', paragraphStart);
    if (paragraphEnd < 0) paragraphEnd = text.length;
    const isHeading = headingOffsets.has(paragraphStart);
    const strength = isHeading ? SECTION : PARAGRAPH;
    const [start, end] = trim(text, paragraphStart, paragraphEnd);
    if (start < end) {
      const tokens = count(text.slice(start, end));
      if (tokens <= target) units.push({ start, end, tokens, strength, isHeading });
      else splitParagraph(text, start, end, strength, isHeading, count, target, units);
    }
    paragraphStart = paragraphEnd + 2;
  }
  return units;
}

function splitParagraph(text: string, start: number, end: number, strength: number, isHeading: boolean, count: (t: string) => number, target: number, units: Unit[]): void {
  const sentenceStarts = [start];
  const paragraph = text.slice(start, end);
  for (const m of paragraph.matchAll(SENTENCE_END)) sentenceStarts.push(start + m.index + m[0].length);
  sentenceStarts.forEach((sentenceStart, n) => {
    const [s, e] = trim(text, sentenceStart, sentenceStarts[n + 1] ?? end);
    if (s >= e) return;
    const first = n === 0 ? strength : SENTENCE;
    const tokens = count(text.slice(s, e));
    if (tokens <= target) {
      units.push({ start: s, end: e, tokens, strength: first, isHeading });
      return;
    }
    wordRuns(text, s, e, Math.max(4, Math.floor(target / 4)), target, count).forEach((run, r) =>
      units.push({ ...run, strength: r === 0 ? first : WORDS, isHeading }),
    );
  });
}

/** Runs of whole words of at most `limit` tokens; a single word over `target` is cut by characters. */
function wordRuns(text: string, start: number, end: number, limit: number, target: number, count: (t: string) => number): Array<{ start: number; end: number; tokens: number }> {
  const words: Array<[number, number]> = [];
  const re = /\S+/g;
  re.lastIndex = start;
  for (let m = re.exec(text); m && m.index < end; m = re.exec(text)) words.push([m.index, Math.min(end, m.index + m[0].length)]);
  const runs: Array<{ start: number; end: number; tokens: number }> = [];
  let w = 0;
  while (w < words.length) {
    // The most words from w that fit the limit (binary search; at least one). Every word
    // counts at least one token, so no run holds more than `limit` words: bounding the
    // search there keeps each probe small (unbounded, one long line made this quadratic).
    let lo = w + 1;
    let hi = Math.min(words.length, w + limit);
    let fit = w + 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (count(text.slice(words[w]![0], words[mid - 1]![1])) <= limit) {
        fit = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const runStart = words[w]![0];
    const runEnd = words[fit - 1]![1];
    const tokens = count(text.slice(runStart, runEnd));
    if (tokens > target) runs.push(...cutWord(text, runStart, runEnd, target, count));
    else runs.push({ start: runStart, end: runEnd, tokens });
    w = fit;
  }
  return runs;
}

/** The only place a word is cut: one longer than a whole chunk. */
function cutWord(text: string, start: number, end: number, target: number, count: (t: string) => number): Array<{ start: number; end: number; tokens: number }> {
  const pieces: Array<{ start: number; end: number; tokens: number }> = [];
  let s = start;
  while (s < end) {
    let lo = s + 1;
    // A piece of `target` tokens spans far fewer than 32 characters a token; bounding the
    // search keeps a multi-megabyte "word" linear instead of quadratic.
    let hi = Math.min(end, s + target * 32);
    let fit = s + 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (count(text.slice(s, mid)) <= target) {
        fit = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    // Never split a surrogate pair.
    if (fit < end && /[\uDC00-\uDFFF]/.test(text[fit]!)) fit = fit - 1 > s ? fit - 1 : fit + 1;
    pieces.push({ start: s, end: fit, tokens: count(text.slice(s, fit)) });
    s = fit;
  }
  return pieces;
}

function trim(text: string, start: number, end: number): [number, number] {
  while (start < end && /\s/.test(text[start]!)) start++;
  while (end > start && /\s/.test(text[end - 1]!)) end--;
  return [start, end];
}
