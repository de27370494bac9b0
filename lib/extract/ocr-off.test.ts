import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chunkDocument } from '../chunking/index.ts';
import { loadConfig } from '../config/env.ts';
import { scannedPdf, textImage, textPdf } from '../../test/fixtures/documents.ts';
import { extractDocument, sniffType } from './index.ts';

/** OCR turned off for a deployment (OCR_ENABLED=false, issue 9): pages without a text layer are marked, not read. */
describe('extraction with OCR off', () => {
  it('OCR_ENABLED: on by default, false turns it off, anything else is refused', () => {
    assert.equal(loadConfig({}).models.ocrEnabled, true);
    assert.equal(loadConfig({ OCR_ENABLED: 'false' }).models.ocrEnabled, false);
    assert.throws(() => loadConfig({ OCR_ENABLED: 'sometimes' }), /OCR_ENABLED/);
  });

  it('a scanned PDF page is kept without text and listed in pagesWithoutText; pages with a text layer are read as usual', async () => {
    const text = await textPdf([['A page with a real text layer, about the delivery schedule.']]);
    const plain = await extractDocument(text, { kind: 'pdf', ocr: null });
    assert.deepEqual(plain.pagesWithoutText, []);
    assert.match(plain.pages[0]!.text, /delivery schedule/);

    const scan = await scannedPdf([['Scanned invoice number 4512'], ['Second scanned page']]);
    const document = await extractDocument(scan, { kind: 'pdf', ocr: null });
    assert.deepEqual(document.pagesWithoutText, [1, 2]);
    assert.deepEqual(document.ocrPages, []);
    assert.ok(document.warnings.some((w) => /page 1: no text layer, and OCR is off/.test(w)), document.warnings.join('; '));
    assert.equal(chunkDocument(document, { targetTokens: 64, overlapTokens: 8 }).length, 0, 'nothing to index from a scan without OCR');
  });

  it('an image has no text layer: its page is marked, OCR is not asked', async () => {
    const png = await textImage(['Quarterly report for the board']);
    const { kind, mime } = sniffType(png.subarray(0, 65536), 'scan.png');
    const document = await extractDocument(png, { kind, mime, ocr: null });
    assert.equal(kind, 'image');
    assert.deepEqual(document.pagesWithoutText, [1]);
    assert.deepEqual(document.pages, []);
  });
});
