import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ExtractedDocument } from '../extract/types.ts';
import { analysisMarkdown, buildAnalysis, countTables, detectLanguage, extractiveSummary, keyTerms } from './analysis.ts';
import { extractEntities } from './entities.ts';

const texts = (list: Array<{ text: string }>) => list.map((e) => e.text);

describe('named entities by rules', () => {
  it('finds people, organisations, places, dates and amounts in English', () => {
    const e = extractEntities('On 5 March 2024 Mr John Smith of Acme Corp met Dr. Anna Lee in London. The contract is worth $12,500 and was signed on 2024-03-07 at the University of Oxford.');
    assert.deepEqual(texts(e.people).sort(), ['Anna Lee', 'John Smith']);
    assert.ok(texts(e.organisations).includes('Acme Corp'));
    assert.ok(texts(e.organisations).includes('University of Oxford'));
    assert.ok(texts(e.places).includes('London'));
    assert.deepEqual(texts(e.dates).sort(), ['2024-03-07', '5 March 2024']);
    assert.deepEqual(texts(e.amounts), ['$12,500']);
  });

  it('finds them in Russian, with inflected names and written dates', () => {
    const e = extractEntities('Договор заключён 12 апреля 2023 г. между ООО «Ромашка» и Иваном Петровичем Сидоровым в Москве. Сумма договора 150 000 рублей. Подписал И. И. Иванов, г. Казань, 01.02.2023.');
    assert.deepEqual(texts(e.people).sort(), ['И. И. Иванов', 'Иваном Петровичем Сидоровым']);
    assert.deepEqual(texts(e.organisations), ['ООО «Ромашка»']);
    assert.deepEqual(texts(e.places).sort(), ['Казань', 'Москве']);
    assert.ok(texts(e.dates).includes('01.02.2023'));
    assert.ok(texts(e.dates).some((d) => d.startsWith('12 апреля 2023')));
    assert.deepEqual(texts(e.amounts), ['150 000 рублей']);
  });

  it('does not take sentence starts for places or people', () => {
    const e = extractEntities('The report was written in March. This is all.');
    assert.deepEqual(e.places, []);
    assert.deepEqual(e.people, []);
  });
});

describe('analysis', () => {
  const doc: ExtractedDocument = {
    kind: 'pdf',
    mime: 'application/pdf',
    title: 'Lease',
    ocrPages: [3],
    warnings: [],
    pages: [
      { page: 1, text: 'Introduction\n\nThis lease is made between the landlord and the tenant of the flat.', headings: [{ offset: 0, text: 'Introduction', level: 1 }] },
      { page: 2, text: 'Payment terms\n\nThe tenant pays the rent of the flat before the fifth day of each month. Late rent carries a fee.', headings: [{ offset: 0, text: 'Payment terms', level: 2 }] },
      { page: 3, text: 'Item | Price | Qty\nDesk | 10 | 2\nChair | 5 | 4\n\nThe end.', headings: [] },
    ],
  };

  it('holds an outline with pages, counts, OCR share, language and a summary', () => {
    const a = buildAnalysis({ documentId: 'd1', version: 2, extracted: doc, terms: { lexemes: [], df: new Map(), corpusSize: 0 }, now: new Date(0) });
    assert.deepEqual(a.outline, [
      { level: 1, text: 'Introduction', page: 1 },
      { level: 2, text: 'Payment terms', page: 2 },
    ]);
    assert.equal(a.counts.pages, 3);
    assert.equal(a.counts.tables, 1);
    assert.ok(a.counts.words > 30);
    assert.equal(a.ocrShare, 0.333);
    assert.equal(a.language, 'en');
    assert.equal(a.summary.method, 'extractive');
    assert.match(a.summary.text, /tenant pays the rent/);
    const md = analysisMarkdown(a);
    assert.match(md, /- Introduction \(p\. 1\)/);
    assert.match(md, /  - Payment terms \(p\. 2\)/);
  });

  it('ranks key terms by tf-idf against the corpus', () => {
    const terms = keyTerms('rent rent rent flat flat tenant the', {
      lexemes: [{ term: 'rent', tf: 3 }, { term: 'flat', tf: 2 }, { term: 'tenant', tf: 1 }],
      // "rent" is everywhere in the corpus; "flat" is rare.
      df: new Map([['rent', 100], ['flat', 1], ['tenant', 50]]),
      corpusSize: 100,
    });
    assert.deepEqual(terms.map((t) => t.term), ['flat', 'rent', 'tenant']);
    // Shown as the word the document uses, not the stem.
    const stemmed = keyTerms('Payments and payment', { lexemes: [{ term: 'payment', tf: 2 }], df: new Map(), corpusSize: 1 });
    assert.equal(stemmed[0]!.term, 'payment');
    assert.equal(keyTerms('every day', { lexemes: [{ term: 'everi', tf: 1 }], df: new Map(), corpusSize: 1 })[0]!.term, 'every');
  });

  it('tells Russian from English and counts tables only where cells line up', () => {
    assert.equal(detectLanguage('Арендатор вносит плату'), 'ru');
    assert.equal(detectLanguage('The tenant pays'), 'en');
    assert.equal(countTables('a | b\nplain line'), 0);
    assert.equal(extractiveSummary(''), '');
  });
});
