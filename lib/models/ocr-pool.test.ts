import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { textImage } from '../../test/fixtures/documents.ts';
import { startOcrRuntime } from '../../test/support/ocr.ts';
import type { OcrRuntime } from './ocr-pool.ts';
import { characterSimilarity, repairMixedWords, scriptCensus, scriptOf } from './ocr-script.ts';

const words = (s: string) => s.toLowerCase().replace(/[^\p{L}\p{N} ]/gu, '').split(/\s+/).filter(Boolean);

describe('OCR pool (tesseract.js, eng+rus traineddata verified as an ocr model)', () => {
  let ocr: OcrRuntime;
  let close: () => Promise<void>;

  before(async () => {
    ({ runtime: ocr, close } = await startOcrRuntime(4));
  });
  after(() => close());

  it('reads a generated English line', async () => {
    const text = 'The quick brown fox jumps over 13 lazy dogs.';
    const pool = await ocr.ensure(async () => null);
    const result = await pool.recognize(await textImage([text]));
    assert.deepEqual(words(result.text), words(text));
    assert.ok(result.confidence > 70, `confidence ${result.confidence}`);
    assert.equal(result.version, 'test');
  });

  it('reads a generated Russian line', async () => {
    const text = 'Съешь же ещё этих мягких французских булок, да выпей чаю.';
    const pool = await ocr.ensure(async () => null);
    const result = await pool.recognize(await textImage([text]));
    assert.deepEqual(words(result.text), words(text));
    assert.ok(result.confidence > 70, `confidence ${result.confidence}`);
  });

  it('reads whole English and Russian pages without a word mixing scripts', async (t) => {
    const pool = await ocr.ensure(async () => null);
    const pages = {
      latin: [
        'Generic tools or specific ones: the choice depends on the data.',
        'Each record is encoded with ASN.1 and stored for 30 days or more,',
        'after which a generic cleaner removes it from the archive server.',
        'Operators configure retention per tenant; the default is correct',
        'for most deployments and rarely needs to be changed at all.',
      ],
      cyrillic: [
        'Договор поставки вступает в силу с момента подписания сторонами.',
        'Оплата производится в течение десяти рабочих дней после приёмки,',
        'а споры рассматриваются в арбитражном суде по месту нахождения',
        'поставщика. Все приложения являются неотъемлемой частью договора',
        'и хранятся в архиве не менее пяти лет с даты его расторжения.',
      ],
    } as const;
    for (const [script, lines] of Object.entries(pages)) {
      const result = await pool.recognize(await textImage([...lines], 22));
      const census = scriptCensus(result.text);
      const similarity = characterSimilarity(result.text, lines.join('\n'));
      t.diagnostic(`${script} page: ${census.latin} Latin, ${census.cyrillic} Cyrillic, ${census.mixed} mixed words; character similarity to the text ${similarity.toFixed(3)}`);
      assert.equal(census.mixed, 0, result.text);
      assert.equal(script === 'latin' ? census.cyrillic : census.latin, 0, result.text);
      assert.ok(similarity > 0.9, `similarity ${similarity}: ${result.text}`);
    }
  });

  it('maps look-alike letters of a mixed-script word to the script of the rest of it', () => {
    assert.equal(repairMixedWords('the gеnеric tооl and договoр', 'latin'), 'the generic tool and договор');
    assert.equal(scriptOf('ог'), 'cyrillic');
    assert.equal(scriptOf('gеneric'), 'mixed');
    assert.deepEqual(scriptCensus('one two three четыре'), { latin: 3, cyrillic: 1, mixed: 0, dominant: null });
    assert.equal(scriptCensus('one two three four five six seven eight nine десять').dominant, 'latin');
    assert.equal(characterSimilarity('abcd', 'abce'), 0.75);
  });

  it('answers a broken image with a 400, not a crash', async () => {
    const pool = await ocr.ensure(async () => null);
    await assert.rejects(pool.recognize(Buffer.from('definitely not an image')), (err: Error & { code?: number }) => err.code === 400);
  });
});
