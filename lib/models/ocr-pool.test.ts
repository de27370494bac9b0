import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { textImage } from '../../test/fixtures/documents.ts';
import { startOcrRuntime } from '../../test/support/ocr.ts';
import type { OcrRuntime } from './ocr-pool.ts';

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

  it('answers a broken image with a 400, not a crash', async () => {
    const pool = await ocr.ensure(async () => null);
    await assert.rejects(pool.recognize(Buffer.from('definitely not an image')), (err: Error & { code?: number }) => err.code === 400);
  });
});
