import { createHash } from 'node:crypto';
import { detectLanguage } from '../extract/normalize.ts';
import type { ExtractedDocument, Heading } from '../extract/types.ts';
import type { ChunkLang } from '../repositories/chunks.ts';

export interface Chunk {
  ord: number;
  text: string;
  page: number | null;
  heading: string | null;
  lang: ChunkLang;
  contentHash: string;
  tokenCount: number;
}

export interface ChunkOptions {
  targetTokens: number;
  overlapTokens: number;
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

interface Unit {
  text: string;
  tokens: number;
  heading: string | null;
  /** A paragraph starts here: joined with a blank line, not a space. */
  paragraphStart: boolean;
}

/**
 * Cuts a document into chunks of about `targetTokens`: whole paragraphs when they fit,
 * else whole sentences, else runs of whole words — never a word cut in two. A chunk
 * stays on one page (citations name one page) and carries the heading it sits under;
 * consecutive chunks of a page share about `overlapTokens` of text. Deterministic.
 */
export function chunkDocument(document: ExtractedDocument, options: ChunkOptions): Chunk[] {
  const count = options.countTokens ?? approximateTokens;
  const target = Math.max(8, options.targetTokens);
  const overlap = Math.min(Math.max(0, options.overlapTokens), Math.floor(target / 2));
  const chunks: Chunk[] = [];
  let heading: string | null = null;

  for (const page of document.pages) {
    const units: Unit[] = [];
    let offset = 0;
    for (const paragraph of page.text.split('\n\n')) {
      heading = headingAt(page.headings, offset) ?? heading;
      const isHeading = page.headings.some((h) => h.offset === offset);
      offset += paragraph.length + 2;
      if (!paragraph.trim()) continue;
      const pieces = count(paragraph) <= target ? [paragraph] : splitLong(paragraph, target, count);
      pieces.forEach((text, i) => units.push({ text, tokens: count(text), heading: isHeading ? text : heading, paragraphStart: i === 0 }));
    }

    let current: Unit[] = [];
    let tokens = 0;
    const emit = () => {
      const body = current.filter((u) => u.text.trim());
      if (body.length === 0) return;
      const text = body.map((u, i) => (i > 0 && u.paragraphStart ? `\n\n${u.text}` : i > 0 ? ` ${u.text}` : u.text)).join('');
      chunks.push({
        ord: chunks.length,
        text,
        page: page.page,
        heading: body[body.length - 1]!.heading,
        lang: detectLanguage(text),
        contentHash: createHash('sha256').update(text).digest('hex'),
        tokenCount: count(text),
      });
    };
    for (const unit of units) {
      if (tokens > 0 && tokens + unit.tokens > target) {
        emit();
        // Carry the tail of the previous chunk over, as long as it fits the overlap.
        const carried: Unit[] = [];
        let carriedTokens = 0;
        for (let i = current.length - 1; i >= 0; i--) {
          const u = current[i]!;
          if (carriedTokens + u.tokens > overlap) break;
          carried.unshift(u);
          carriedTokens += u.tokens;
        }
        // The last sentence alone is longer than the overlap: carry its last words.
        const last = current[current.length - 1];
        if (carried.length === 0 && overlap > 0 && last) {
          const words = last.text.split(' ');
          const tail: string[] = [];
          while (words.length > 1 && count([words[words.length - 1], ...tail].join(' ')) <= overlap) tail.unshift(words.pop()!);
          if (tail.length > 0) {
            const text = tail.join(' ');
            carried.push({ text, tokens: count(text), heading: last.heading, paragraphStart: false });
            carriedTokens = carried[0]!.tokens;
          }
        }
        current = carried;
        tokens = carriedTokens;
      }
      current.push(unit);
      tokens += unit.tokens;
    }
    emit();
  }
  return chunks;
}

function headingAt(headings: Heading[], offset: number): string | null {
  let found: string | null = null;
  for (const h of headings) if (h.offset <= offset) found = h.text;
  return found;
}

/** A paragraph too long for one chunk: sentences, and a sentence too long: runs of words. */
function splitLong(paragraph: string, target: number, count: (t: string) => number): string[] {
  const sentences = paragraph.match(/[^.!?…]+(?:[.!?…]+["»”)\]]*|$)\s*/gu)?.map((s) => s.trim()).filter(Boolean) ?? [paragraph];
  const out: string[] = [];
  for (const sentence of sentences) {
    if (count(sentence) <= target) {
      out.push(sentence);
      continue;
    }
    // Pieces of about a third of a chunk, so overlap and packing have room to work.
    const words = sentence.split(/\s+/);
    let run: string[] = [];
    let runTokens = 0;
    const limit = Math.max(4, Math.floor(target / 3));
    for (const word of words) {
      const t = count(word);
      if (runTokens > 0 && runTokens + t > limit) {
        out.push(run.join(' '));
        run = [];
        runTokens = 0;
      }
      run.push(word);
      runTokens += t;
    }
    if (run.length) out.push(run.join(' '));
  }
  return out;
}
