import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chunkDocument } from '../chunking/index.ts';
import {
  docx,
  docxBomb,
  encodeText,
  exeBytes,
  garbage,
  layoutPdf,
  lyingDocxBomb,
  scannedPdf,
  scannedPdfVariant,
  textGray,
  textImage,
  textPdf,
  tiff,
} from '../../test/fixtures/documents.ts';
import { startOcr } from '../../test/support/ocr.ts';
import { extractDocument, sniffType, type DocumentKind, type OcrFunction } from './index.ts';
import { decodeText } from './text.ts';
import jpeg from 'jpeg-js';
import iconv from 'iconv-lite';
import { strToU8, zipSync } from 'fflate';

const noOcr: OcrFunction = async () => {
  throw new Error('this document should not need OCR');
};

/** Sniff, extract, chunk: what the pipeline does with an upload. */
async function ingestLike(bytes: Buffer, ocr: OcrFunction = noOcr, filename?: string, targetTokens = 64) {
  const { kind, mime } = sniffType(bytes.subarray(0, 65536), filename);
  const document = await extractDocument(bytes, { kind, mime, ocr });
  return { kind, document, chunks: chunkDocument(document, { targetTokens, overlapTokens: 8 }) };
}

const flat = (s: string) => s.replace(/\s+/g, ' ');

describe('extract + chunk, every format, with files the test makes', () => {
  let ocr: { ocr: OcrFunction; close(): Promise<void> };
  before(async () => {
    ocr = await startOcr();
  });
  after(() => ocr.close());

  it('PDF with a text layer: text per page, right page numbers, Russian hyphenation joined', async () => {
    const pdf = await textPdf(
      [
        ['Договор аренды № 17', 'Арендатор обязуется вносить плату до пятого числа.', 'Сведения об инфор-', 'мации хранятся у сторон.'],
        ['Page two: the warranty covers defects for twelve months.'],
        ['Page three: termination needs thirty days notice.'],
      ],
      'Lease',
    );
    const { kind, document, chunks } = await ingestLike(pdf);
    assert.equal(kind, 'pdf');
    assert.equal(document.title, 'Lease');
    assert.deepEqual(document.pages.map((p) => p.page), [1, 2, 3]);
    assert.match(flat(document.pages[0]!.text), /Арендатор обязуется вносить плату до пятого числа\./);
    assert.match(document.pages[0]!.text, /информации хранятся/);
    const warranty = chunks.find((c) => c.text.includes('warranty covers defects'));
    assert.equal(warranty?.page, 2);
    assert.equal(warranty?.lang, 'en');
    assert.equal(chunks.find((c) => c.text.includes('thirty days notice'))?.page, 3);
    assert.equal(chunks.find((c) => c.text.includes('Арендатор'))?.lang, 'ru');
    assert.deepEqual(document.ocrPages, []);
  });

  it('PDF layout: headings from type size, paragraphs from spacing, running headers and page numbers dropped', async () => {
    const pages = [1, 2, 3].map((n) => [
      { text: `Chapter ${n}. Terms of the lease`, size: 18 },
      { text: 'Payment schedule', size: 14, gapBefore: 6 },
      { text: 'The tenant pays the rent before the fifth day of each month. Late pay-', gapBefore: 4 },
      { text: 'ments carry a penalty of one percent per day.' },
      { text: `Deposits on page ${n} are returned within thirty days.`, gapBefore: 11 },
      { text: 'Interest is not paid on them.' },
    ]);
    const pdf = await layoutPdf(pages, { runningHeader: 'ACME Corp — Lease agreement 2024', pageNumbers: true });
    const { document, chunks } = await ingestLike(pdf, noOcr, 'lease.pdf', 40);
    assert.equal(document.title, 'Chapter 1. Terms of the lease');
    for (const page of document.pages) {
      assert.deepEqual(page.text.split('\n\n'), [
        `Chapter ${page.page}. Terms of the lease`,
        'Payment schedule',
        'The tenant pays the rent before the fifth day of each month. Late payments carry a penalty of one percent per day.',
        `Deposits on page ${page.page} are returned within thirty days. Interest is not paid on them.`,
      ]);
      assert.deepEqual(page.headings.map((h) => [h.text, h.level]), [[`Chapter ${page.page}. Terms of the lease`, 1], ['Payment schedule', 2]]);
    }
    assert.ok(!chunks.some((c) => c.text.includes('ACME')), 'running header dropped');
    const deposits = chunks.find((c) => c.text.includes('Deposits on page 2'))!;
    assert.equal(deposits.page, 2);
    assert.equal(deposits.heading, 'Payment schedule');
  });

  it('scanned PDF: pages without a text layer are read by OCR, with their page numbers', async () => {
    const pdf = await scannedPdf([['Scanned invoice number 4512'], ['Оплата по счёту до пятницы']]);
    const { document, chunks } = await ingestLike(pdf, ocr.ocr);
    assert.deepEqual(document.ocrPages, [1, 2]);
    assert.match(chunks.find((c) => c.page === 1)!.text, /Scanned invoice number 4512/);
    assert.match(chunks.find((c) => c.page === 2)!.text, /Оплата по сч[её]ту до пятницы/);
  });

  it('scanned PDF pages stored as bilevel images, stencil masks, JPEG, rotated by /Rotate, or in strips', async () => {
    for (const variant of ['bilevel', 'mask', 'jpeg', 'rotated', 'strips'] as const) {
      const pdf = await scannedPdfVariant(['Scanned invoice number 4512', 'Оплата по счёту до пятницы'], variant);
      const seen: Array<number | null> = [];
      const { document } = await ingestLike(pdf, (png, page) => (seen.push(page), ocr.ocr(png, page)));
      assert.deepEqual(seen, [1], variant);
      assert.deepEqual(document.ocrPages, [1], variant);
      assert.match(document.pages[0]!.text, /Scanned invoice number 4512/, variant);
      assert.match(document.pages[0]!.text, /Оплата по сч[её]ту до пятницы/, variant);
    }
  });

  it('images: a PNG named .pdf is an image; JPEG; a multi-page TIFF keeps its page numbers', async () => {
    const png = await textImage(['Quarterly report for the board']);
    const fromPng = await ingestLike(png, ocr.ocr, 'scan.pdf' /* a lying extension */);
    assert.equal(fromPng.kind, 'image');
    assert.equal(fromPng.document.mime, 'image/png');
    assert.match(fromPng.chunks[0]!.text, /Quarterly report for the board/);

    const { gray, width, height } = await textGray(['Delivery note seventeen']);
    const rgba = Buffer.alloc(width * height * 4, 255);
    for (let i = 0; i < gray.length; i++) rgba.fill(gray[i]!, i * 4, i * 4 + 3);
    const jpg = Buffer.from(jpeg.encode({ data: rgba, width, height }, 90).data);
    const fromJpeg = await ingestLike(jpg, ocr.ocr, 'note.txt');
    assert.equal(fromJpeg.document.mime, 'image/jpeg');
    assert.match(fromJpeg.chunks[0]!.text, /Delivery note seventeen/);

    const fax = tiff([await textGray(['First page of the fax']), await textGray(['Вторая страница факса'])]);
    const fromTiff = await ingestLike(fax, ocr.ocr, 'fax.tif');
    assert.equal(fromTiff.kind, 'image');
    assert.deepEqual(fromTiff.document.ocrPages, [1, 2]);
    assert.equal(fromTiff.chunks.find((c) => c.text.includes('First page of the fax'))?.page, 1);
    assert.equal(fromTiff.chunks.find((c) => c.text.includes('Вторая страница факса'))?.page, 2);
  });

  it('DOCX: paragraphs and headings from styles; text boxes kept, tracked deletions dropped', async () => {
    const file = docx(
      [
        { text: 'Employee handbook', style: 'Heading1' },
        { text: 'Vacation & leave', style: '2' },
        { text: 'Every employee gets twenty-eight days of vacation per year.' },
        { text: 'Отпуск согласуется с руководителем за две недели.' },
      ],
      'Handbook',
      '<w:p><w:r><w:t>Outer </w:t></w:r><w:r><w:pict><w:txbxContent><w:p><w:r><w:t>Boxed note about parking.</w:t></w:r></w:p></w:txbxContent></w:pict></w:r><w:r><w:t>text continues.</w:t></w:r></w:p>' +
        '<w:p><w:r><w:t xml:space="preserve">Kept </w:t></w:r><w:del><w:r><w:delText>removed words</w:delText></w:r></w:del><w:r><w:t>sentence.</w:t></w:r></w:p>',
    );
    const { kind, document, chunks } = await ingestLike(file);
    assert.equal(kind, 'docx');
    assert.equal(document.title, 'Handbook');
    assert.deepEqual(document.pages[0]!.headings.map((h) => [h.text, h.level]), [['Employee handbook', 1], ['Vacation & leave', 2]]);
    const text = chunks.map((c) => c.text).join('\n');
    assert.match(text, /twenty-eight days of vacation/);
    assert.match(text, /Отпуск согласуется с руководителем/);
    assert.match(text, /Boxed note about parking\./);
    assert.match(text, /Outer text continues\./);
    assert.match(text, /Kept sentence\./);
    assert.doesNotMatch(text, /removed words/);
    assert.equal(chunks.find((c) => c.text.includes('twenty-eight'))?.heading, 'Vacation & leave');
  });

  it('HTML: article text and headings kept; scripts, styles, navigation, site header/footer, sidebars dropped; entities decoded', async () => {
    const html = `<!doctype html><html><head><title>Policy &amp; rules</title><style>body{color:red}</style><script>var secret = "do not index";</script></head>
      <body class="has-sidebar"><nav><a href="/">Home</a> | <a href="/x">Menu item</a></nav><header>Site header</header>
      <div class="cookie-banner">We use cookies</div>
      <main><article><header><h1>Travel policy</h1></header><p>Economy class for flights under six hours.</p><p>Hotels up to &euro;150 a night &mdash; breakfast&nbsp;included.</p></article>
      <div id="sidebar-right">Popular posts</div><div role="complementary">Related links</div></main>
      <footer>Copyright footer</footer></body></html>`;
    const { kind, document, chunks } = await ingestLike(Buffer.from(html));
    assert.equal(kind, 'html');
    assert.equal(document.title, 'Policy & rules');
    const text = chunks.map((c) => c.text).join('\n');
    assert.match(text, /Economy class for flights under six hours\./);
    assert.match(text, /Hotels up to €150 a night — breakfast included\./);
    for (const noise of ['do not index', 'color:red', 'Menu item', 'Site header', 'Copyright footer', 'cookies', 'Popular posts', 'Related links']) assert.doesNotMatch(text, new RegExp(noise));
    assert.equal(chunks[0]!.heading, 'Travel policy');
    assert.deepEqual(document.pages[0]!.headings.map((h) => h.text), ['Travel policy']);
  });

  it('HTML in Windows-1251, declared by a meta tag', async () => {
    const html = '<html><head><meta charset="windows-1251"><title>Политика</title></head><body><p>Командировочные расходы возмещаются в течение недели.</p></body></html>';
    const { document, chunks } = await ingestLike(iconv.encode(html, 'windows-1251'));
    assert.equal(document.title, 'Политика');
    assert.equal(chunks[0]!.text, 'Командировочные расходы возмещаются в течение недели.');
    assert.equal(chunks[0]!.lang, 'ru');
  });

  it('Markdown: ATX and setext headings, front matter, no markup', async () => {
    const md = [
      '---',
      'title: Onboarding guide',
      'tags: [hr]',
      '---',
      '# Onboarding',
      '',
      'Read the [security guide](https://intra/sec) **first**. <!-- internal note -->',
      '',
      'Laptops',
      '-------',
      '',
      '- Laptops are encrypted.',
      '- Lost laptops are reported within `24h`.',
      '',
      '| Item | Owner |',
      '| --- | --- |',
      '| Badge | Security |',
    ].join('\n');
    const { kind, document, chunks } = await ingestLike(Buffer.from(md), noOcr, 'onboarding.md', 16);
    assert.equal(kind, 'markdown');
    assert.equal(document.title, 'Onboarding guide');
    assert.deepEqual(document.pages[0]!.headings.map((h) => [h.text, h.level]), [['Onboarding', 1], ['Laptops', 2]]);
    const text = chunks.map((c) => c.text).join('\n');
    assert.match(text, /Read the security guide first\./);
    assert.match(text, /Lost laptops are reported within 24h\./);
    assert.match(text, /Badge Security/);
    for (const noise of ['tags:', 'internal note', '---', '**', '](']) assert.ok(!text.includes(noise), noise);
    assert.equal(chunks.find((c) => c.text.includes('Lost laptops'))!.heading, 'Laptops');
    assert.equal(chunks.find((c) => c.text.includes('security guide'))!.heading, 'Onboarding');
  });

  it('plain text in Windows-1251, KOI8-R, UTF-16 (BOM or not) and UTF-8 with BOM is decoded to the same Russian text', async () => {
    const text = 'Настоящий договор вступает в силу с момента подписания обеими сторонами и действует один год.';
    for (const [bytes, encoding] of [
      [encodeText(text, 'windows-1251'), 'windows-1251'],
      [encodeText(text, 'koi8-r'), 'koi8-r'],
      [encodeText(text, 'utf16le', true), 'utf-16le'],
      [encodeText(text, 'utf16be', true), 'utf-16be'],
      [encodeText(text, 'utf16le'), 'utf16le'],
      [encodeText(text, 'utf16be'), 'utf16be'],
      [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), 'utf-8'],
    ] as const) {
      assert.equal(decodeText(bytes).encoding, encoding);
      const { kind, chunks } = await ingestLike(bytes, noOcr, 'contract.txt');
      assert.equal(kind, 'text', encoding);
      assert.equal(chunks[0]!.text, text, encoding);
      assert.equal(chunks[0]!.lang, 'ru');
    }
    // Western European text in Windows-1252 is not mistaken for Cyrillic.
    const western = 'Le café est fermé le lundi. Die Größe ändert sich nicht.';
    assert.deepEqual(decodeText(iconv.encode(western, 'windows-1252')), { text: western, encoding: 'windows-1252' });
  });

  it('the caller’s buffer is left intact (pdf.js would detach a buffer handed to it whole)', async () => {
    const pdf = await textPdf([['Bytes stay usable after extraction.']]);
    const copy = Buffer.from(pdf);
    await extractDocument(pdf, { kind: 'pdf', ocr: noOcr });
    assert.equal(pdf.length, copy.length);
    assert.ok(pdf.equals(copy));
  });

  it('a 100-page text PDF extracts with progress per page (its speed is bench:extract\'s)', async () => {
    const pages = Array.from({ length: 100 }, (_, p) => Array.from({ length: 40 }, (_, l) => `Page ${p + 1} line ${l}: the quick brown fox jumps over the lazy dog, и съешь ещё этих мягких булок.`));
    const pdf = await textPdf(pages);
    const progress: number[] = [];
    const document = await extractDocument(pdf, { kind: 'pdf', ocr: noOcr, onProgress: (done, total) => total === 100 && progress.push(done) });
    const chunks = chunkDocument(document, { targetTokens: 256, overlapTokens: 32 });
    assert.equal(document.pages.length, 100);
    assert.deepEqual(progress, Array.from({ length: 100 }, (_, i) => i + 1));
    assert.ok(chunks.every((c) => c.text.includes(`Page ${c.page} `)), 'every chunk is on its own page');
  });
});

describe('cancel and limits', () => {
  // The OCR call never settles: only the abort can end the extraction (the timeout guards a hang, it measures nothing).
  it('an abort during OCR rejects at once with the abort reason', { timeout: 30_000 }, async () => {
    const pdf = await scannedPdf([['Page one'], ['Page two']]);
    const controller = new AbortController();
    let calls = 0;
    const stuckOcr: OcrFunction = () => {
      calls++;
      setTimeout(() => controller.abort(new Error('canceled by the user')), 50);
      return new Promise(() => undefined); // an OCR call that would take forever
    };
    await assert.rejects(extractDocument(pdf, { kind: 'pdf', ocr: stuckOcr, signal: controller.signal }), /canceled by the user/);
    assert.equal(calls, 1);
  });

  it('an abort between pages stops before the next page', async () => {
    const pdf = await textPdf(Array.from({ length: 20 }, (_, i) => [`Page ${i + 1} has enough text for a text layer.`]));
    const controller = new AbortController();
    const seen: number[] = [];
    await assert.rejects(
      extractDocument(pdf, { kind: 'pdf', ocr: noOcr, signal: controller.signal, onProgress: (done) => (seen.push(done), done === 3 && controller.abort(new Error('stop'))) }),
      /stop/,
    );
    assert.deepEqual(seen, [1, 2, 3]);
  });

  it('maxPages, maxTextChars and image sizes are enforced', async () => {
    const pdf = await textPdf([['one page of text here'], ['two pages of text here'], ['three pages of text']]);
    await assert.rejects(extractDocument(pdf, { kind: 'pdf', ocr: noOcr, limits: { maxPages: 2 } }), { code: 413, type: 'TOO_MANY_PAGES' });
    const fax = tiff([await textGray(['a']), await textGray(['b']), await textGray(['c'])]);
    await assert.rejects(extractDocument(fax, { kind: 'image', ocr: noOcr, limits: { maxPages: 2 } }), { code: 413, type: 'TOO_MANY_PAGES' });

    const long = Buffer.from(Array.from({ length: 200 }, (_, i) => `Paragraph ${i} says something.`).join('\n\n'));
    const cut = await extractDocument(long, { kind: 'text', ocr: noOcr, limits: { maxTextChars: 1000 } });
    assert.ok(cut.pages[0]!.text.length <= 1000);
    assert.match(cut.pages[0]!.text, /Paragraph \d+ says something\.$/, 'cut at a paragraph');
    assert.ok(cut.warnings.some((w) => /cut at 1000/.test(w)));

    // A PNG header claiming 50 000 × 50 000 pixels: refused before OCR would allocate 2.5 GB.
    const png = await textImage(['x']);
    png.writeUInt32BE(50_000, 16);
    png.writeUInt32BE(50_000, 20);
    await assert.rejects(extractDocument(png, { kind: 'image', ocr: noOcr }), { code: 413, type: 'IMAGE_TOO_LARGE' });
  });
});

describe('hostile files', () => {
  const failsWith = async (bytes: Buffer, kind: DocumentKind, status: number, code: string) =>
    assert.rejects(() => extractDocument(bytes, { kind, ocr: noOcr }), { code: status, type: code });

  it('a truncated PDF, and garbage behind a PDF header, are 422 UNREADABLE_FILE', async () => {
    const pdf = await textPdf([['Page one'], ['Page two']]);
    await failsWith(pdf.subarray(0, Math.floor(pdf.length / 3)), 'pdf', 422, 'UNREADABLE_FILE');
    await failsWith(Buffer.concat([Buffer.from('%PDF-1.7\n'), garbage(50_000)]), 'pdf', 422, 'UNREADABLE_FILE');
  });

  it('a DOCX zip bomb is refused before it is inflated', async () => {
    const bomb = docxBomb(20);
    assert.ok(bomb.length < 100_000, `bomb is ${bomb.length} bytes`);
    const before = process.memoryUsage().arrayBuffers;
    await failsWith(bomb, 'docx', 413, 'ARCHIVE_BOMB');
    assert.ok(process.memoryUsage().arrayBuffers - before < 10 * 1024 * 1024, 'nothing big was allocated');
  });

  it('a DOCX bomb whose headers lie about the size is stopped at the declared size', async () => {
    const bomb = lyingDocxBomb(50);
    const before = process.memoryUsage().arrayBuffers;
    await failsWith(bomb, 'docx', 413, 'ARCHIVE_BOMB');
    assert.ok(process.memoryUsage().arrayBuffers - before < 40 * 1024 * 1024, 'inflating stopped near the declared size');
  });

  it('a damaged zip, or a zip without a document, is a 422', async () => {
    const file = docx([{ text: 'x' }]);
    await failsWith(Buffer.concat([file.subarray(0, 60), Buffer.alloc(200, 7)]), 'docx', 422, 'UNREADABLE_FILE');
    await failsWith(file.subarray(0, file.length - 30), 'docx', 422, 'UNREADABLE_FILE');
    await failsWith(Buffer.from(zipSync({ 'word/other.xml': strToU8('<x/>') })), 'docx', 422, 'UNREADABLE_FILE');
  });

  it('sniffing: empty, executables, other zips, GIF and binary garbage are refused; names never decide the type', () => {
    assert.throws(() => sniffType(Buffer.alloc(0), 'a.txt'), { code: 400, type: 'EMPTY_FILE' });
    assert.throws(() => sniffType(exeBytes(), 'notes.txt'), { code: 415, type: 'UNSUPPORTED_TYPE' });
    assert.throws(() => sniffType(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), 'report.pdf'), { code: 415, type: 'UNSUPPORTED_TYPE' });
    assert.throws(() => sniffType(Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 8, 0, ...Buffer.from('photos/cat.jpg')]), 'a.docx'), { code: 415 });
    assert.throws(() => sniffType(Buffer.from('GIF89a\x01\x00\x01\x00'), 'scan.png'), { code: 415 });
    assert.throws(() => sniffType(garbage(2000), 'data.txt'), { code: 415 });
    assert.throws(() => sniffType(garbage(2000), 'data.pdf'), { code: 415 });
    assert.equal(sniffType(Buffer.from('%PDF-1.7\n...'), 'report.txt').kind, 'pdf');
    assert.equal(sniffType(docx([{ text: 'x' }]), 'report.pdf').kind, 'docx');
    assert.equal(sniffType(Buffer.from('# Title\n\ntext'), 'notes.md').kind, 'markdown');
    assert.equal(sniffType(Buffer.from('# Title\n\ntext'), 'notes.txt').kind, 'text');
    assert.equal(sniffType(Buffer.from('# Title\n\ntext'), '../../x').kind, 'text');
    assert.equal(sniffType(Buffer.from('<!DOCTYPE html><html><body>x</body></html>'), 'page.txt').kind, 'html');
    assert.equal(sniffType(Buffer.from('<?xml version="1.0"?>\n<!DOCTYPE html>\n<html><body>x</body></html>')).kind, 'html');
    assert.equal(sniffType(Buffer.from('Use <div> and <p> tags for layout.\n'), 'readme.md').kind, 'markdown');
    assert.equal(sniffType(Buffer.from('<p>Hello</p>')).kind, 'html');
    assert.equal(sniffType(encodeText('<!DOCTYPE html><html><body>Привет</body></html>', 'utf16le', true)).kind, 'html');
    assert.equal(sniffType(encodeText('Привет, мир', 'windows-1251'), 'a.txt').kind, 'text');
  });
});
