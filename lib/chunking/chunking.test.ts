import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { ExtractedDocument, ExtractedPage } from '../extract/types.ts';
import { approximateTokens, chunkDocument } from './index.ts';

const page = (text: string, number: number | null = null, headings: ExtractedPage['headings'] = []): ExtractedPage => ({ page: number, text, headings });
const doc = (pages: ExtractedPage[]): ExtractedDocument => ({ kind: 'text', mime: 'text/plain', title: null, pages, ocrPages: [], warnings: [] });
/** A page text with headings at the start of the given paragraphs. */
function withHeadings(paragraphs: Array<string | { heading: string }>, number: number | null = null): ExtractedPage {
  const headings: ExtractedPage['headings'] = [];
  let offset = 0;
  const parts = paragraphs.map((p) => {
    const text = typeof p === 'string' ? p : p.heading;
    if (typeof p !== 'string') headings.push({ offset, text, level: 2 });
    offset += text.length + 2;
    return text;
  });
  return page(parts.join('\n\n'), number, headings);
}
const sentence = (i: number) => `Sentence number ${i} tells about clause ${i} of the agreement.`;

describe('chunkDocument', () => {
  it('never cuts a word, overlaps consecutive chunks, loses nothing, and is deterministic', () => {
    const words = Array.from({ length: 400 }, (_, i) => `word${i}`);
    const text = words.join(' ');
    const chunks = chunkDocument(doc([page(text)]), { targetTokens: 50, overlapTokens: 10 });
    assert.ok(chunks.length > 5);
    for (const c of chunks) {
      assert.ok(text.includes(c.text), 'a chunk is a slice of the page');
      for (const w of c.text.split(' ')) assert.ok(words.includes(w), `cut word: ${w}`);
      assert.ok(c.tokenCount <= 50);
    }
    for (let i = 1; i < chunks.length; i++) {
      const lastWord = chunks[i - 1]!.text.split(' ').at(-1)!;
      assert.ok(chunks[i]!.text.split(' ').includes(lastWord), `chunk ${i} repeats the end of chunk ${i - 1}`);
    }
    assert.deepEqual(new Set(words), new Set(chunks.flatMap((c) => c.text.split(' '))), 'nothing lost');
    assert.deepEqual(chunkDocument(doc([page(text)]), { targetTokens: 50, overlapTokens: 10 }), chunks);
    assert.deepEqual(chunks.map((c) => c.ord), chunks.map((_, i) => i));
    for (const c of chunks) assert.equal(c.contentHash, createHash('sha256').update(c.text).digest('hex'));
  });

  it('keeps each chunk on one page, with that page number', () => {
    const chunks = chunkDocument(doc([page('first page text', 1), page('second page text', 2)]), { targetTokens: 500, overlapTokens: 50 });
    assert.deepEqual(chunks.map((c) => [c.page, c.text]), [[1, 'first page text'], [2, 'second page text']]);
  });

  it('cuts between paragraphs when it can', () => {
    const paragraphs = Array.from({ length: 12 }, (_, p) => `${sentence(p * 2)} ${sentence(p * 2 + 1)}`);
    const chunks = chunkDocument(doc([page(paragraphs.join('\n\n'))]), { targetTokens: 60, overlapTokens: 0 });
    assert.ok(chunks.length >= 4);
    for (const c of chunks) {
      assert.ok(paragraphs.some((p) => c.text.startsWith(p)), `starts at a paragraph: ${c.text.slice(0, 40)}`);
      assert.ok(paragraphs.some((p) => c.text.endsWith(p)), `ends at a paragraph: ${c.text.slice(-40)}`);
    }
  });

  it('cuts a long paragraph between sentences, keeping the text exactly (no spaces added inside "3.14" or "www.example.com")', () => {
    const text = Array.from({ length: 30 }, (_, i) => `${sentence(i)} Version 3.14.${i} is at www.example.com/v${i}, e.g. for tests.`).join(' ');
    const chunks = chunkDocument(doc([page(text)]), { targetTokens: 80, overlapTokens: 12 });
    assert.ok(chunks.length > 3);
    for (const c of chunks) {
      assert.ok(text.includes(c.text), 'a slice of the source');
      const at = text.indexOf(c.text);
      assert.ok(at === 0 || text[at - 1] === ' ', 'starts at a word');
      assert.ok(c.tokenCount <= 80);
    }
    for (const c of chunks) assert.match(c.text, /(agreement|tests)\.$/, 'ends at a sentence end');
  });

  it('carries the heading a chunk starts under, across pages, never ends on a heading, and does not overlap across sections', () => {
    const body = (topic: string, n: number) => Array.from({ length: n }, (_, i) => `The ${topic} rule ${i} applies to every party of the lease.`).join(' ');
    const pages = [
      withHeadings([{ heading: 'Payments' }, body('payment', 6), { heading: 'Deposits' }, body('deposit', 6)], 1),
      withHeadings([body('deposit', 3), { heading: 'Termination' }, body('termination', 3)], 2),
    ];
    const chunks = chunkDocument(doc(pages), { targetTokens: 60, overlapTokens: 20 });
    for (const c of chunks) {
      const expected = c.text.match(/The (payment|deposit|termination) rule/)?.[1];
      assert.equal(c.heading, { payment: 'Payments', deposit: 'Deposits', termination: 'Termination' }[expected!], c.text);
      assert.ok(!/(Payments|Deposits|Termination)$/.test(c.text), `ends on a heading: ${c.text}`);
      if (/^(Deposits|Termination)/.test(c.text)) assert.ok(!/payment rule|deposit rule \d+ applies[\s\S]*Termination/.test(c.text.split('\n\n')[0]!), 'no overlap from the previous section');
    }
    assert.equal(chunks.find((c) => c.page === 2)!.heading, 'Deposits', 'a page continuing a section keeps its heading');
    assert.ok(chunks.some((c) => c.text.startsWith('Deposits\n\nThe deposit rule 0')), 'a section starts a chunk');
  });

  it('stays within the budget with a tokenizer that is not additive (special tokens per call)', () => {
    const bert = (text: string) => approximateTokens(text) + 2;
    const text = Array.from({ length: 50 }, (_, i) => sentence(i)).join(' ');
    const chunks = chunkDocument(doc([page(text)]), { targetTokens: 40, overlapTokens: 10, countTokens: bert });
    assert.ok(chunks.length > 5);
    for (const c of chunks) {
      assert.ok(c.tokenCount <= 40, `${c.tokenCount} tokens`);
      assert.equal(c.tokenCount, bert(c.text));
    }
  });

  it('cuts a "word" longer than a whole chunk (base64, a URL), and only such a word', () => {
    const blob = 'QUJD'.repeat(500);
    const text = `Attachment follows: ${blob} end of attachment.`;
    const chunks = chunkDocument(doc([page(text)]), { targetTokens: 64, overlapTokens: 8 });
    assert.ok(chunks.every((c) => c.tokenCount <= 64));
    assert.ok(chunks[0]!.text.startsWith('Attachment follows:'));
    assert.ok(chunks.at(-1)!.text.endsWith('end of attachment.'));
    assert.ok(chunks.some((c) => c.text.startsWith('QUJD') && c.text.length > 50));
  });

  it('detects the language of each chunk, the document deciding short ones', () => {
    const chunks = chunkDocument(
      doc([
        page('Арендатор обязуется вносить плату до пятого числа каждого месяца. Плата вносится на счёт арендодателя, указанный в договоре, и считается внесённой с момента её зачисления.', 1),
        page('The tenant pays the rent before the fifth day of every month.', 2),
        page('Il contratto entra in vigore alla data della firma di entrambe le parti.', 3),
        page('Приложение 3', 4),
        page('§ 12', 5),
      ]),
      { targetTokens: 100, overlapTokens: 10 },
    );
    assert.deepEqual(chunks.map((c) => [c.page, c.lang]), [[1, 'ru'], [2, 'en'], [3, 'simple'], [4, 'ru'], [5, 'ru']]);
  });

  it('skips pages with nothing to index and handles an empty document', () => {
    assert.deepEqual(chunkDocument(doc([]), { targetTokens: 100, overlapTokens: 10 }), []);
    assert.deepEqual(chunkDocument(doc([page('', 1), page('— • —', 2)]), { targetTokens: 100, overlapTokens: 10 }), []);
  });
});
