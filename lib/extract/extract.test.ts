import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chunkDocument } from '../chunking/index.ts';
import { docx, docxBomb, encodeText, scannedPdf, textImage, textPdf } from '../../test/fixtures/documents.ts';
import { startOcr } from '../../test/support/ocr.ts';
import { extractDocument, sniffType, type DocumentKind, type OcrFunction } from './index.ts';
import { detectLanguage, normalizeText } from './normalize.ts';
import { decodeText } from './text.ts';

const noOcr: OcrFunction = async () => {
  throw new Error('this document should not need OCR');
};

/** Extract then chunk, the way the pipeline does. */
async function ingestLike(bytes: Buffer, ocr: OcrFunction = noOcr, filename?: string) {
  const { kind } = sniffType(bytes.subarray(0, 65536), filename);
  const document = await extractDocument(bytes, { kind, ocr });
  return { kind, document, chunks: chunkDocument(document, { targetTokens: 64, overlapTokens: 8 }) };
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
  });

  it('scanned PDF: pages without a text layer are read by OCR, with their page numbers', async () => {
    const pdf = await scannedPdf([['Scanned invoice number 4512'], ['Оплата по счёту до пятницы']]);
    const { document, chunks } = await ingestLike(pdf, ocr.ocr);
    assert.deepEqual(document.ocrPages, [1, 2]);
    assert.match(chunks.find((c) => c.page === 1)!.text, /Scanned invoice number 4512/);
    assert.match(chunks.find((c) => c.page === 2)!.text, /Оплата по сч[её]ту до пятницы/);
  });

  it('PNG of text: read by OCR', async () => {
    const png = await textImage(['Quarterly report for the board']);
    const { kind, chunks } = await ingestLike(png, ocr.ocr, 'scan.pdf' /* a lying extension */);
    assert.equal(kind, 'image');
    assert.match(chunks[0]!.text, /Quarterly report for the board/);
  });

  it('DOCX: paragraphs and headings from styles', async () => {
    const file = docx([
      { text: 'Employee handbook', style: 'Heading1' },
      { text: 'Vacation & leave', style: '2' },
      { text: 'Every employee gets twenty-eight days of vacation per year.' },
      { text: 'Отпуск согласуется с руководителем за две недели.' },
    ], 'Handbook');
    const { kind, document, chunks } = await ingestLike(file);
    assert.equal(kind, 'docx');
    assert.equal(document.title, 'Handbook');
    assert.deepEqual(document.pages[0]!.headings.map((h) => [h.text, h.level]), [['Employee handbook', 1], ['Vacation & leave', 2]]);
    const text = chunks.map((c) => c.text).join('\n');
    assert.match(text, /twenty-eight days of vacation/);
    assert.match(text, /Отпуск согласуется с руководителем/);
    assert.equal(chunks.find((c) => c.text.includes('twenty-eight'))?.heading, 'Vacation & leave');
  });

  it('HTML: article text and headings kept, scripts, styles and navigation dropped', async () => {
    const html = `<!doctype html><html><head><title>Policy &amp; rules</title><style>body{color:red}</style><script>var secret = "do not index";</script></head>
      <body><nav><a href="/">Home</a> | <a href="/x">Menu item</a></nav><header>Site header</header>
      <main><h1>Travel policy</h1><p>Economy class for flights under six hours.</p><p>Hotels up to &euro;150 a night.</p></main>
      <footer>Copyright footer</footer></body></html>`;
    const { kind, document, chunks } = await ingestLike(Buffer.from(html));
    assert.equal(kind, 'html');
    assert.equal(document.title, 'Policy & rules');
    const text = chunks.map((c) => c.text).join('\n');
    assert.match(text, /Economy class for flights under six hours\./);
    assert.match(text, /Hotels up to €150 a night\./);
    for (const noise of ['do not index', 'color:red', 'Menu item', 'Site header', 'Copyright footer']) assert.doesNotMatch(text, new RegExp(noise));
    assert.equal(chunks[0]!.heading, 'Travel policy');
  });

  it('Markdown: headings, no markup', async () => {
    const md = '# Onboarding\n\nRead the [security guide](https://intra/sec) **first**.\n\n## Laptops\n\n- Laptops are encrypted.\n- Lost laptops are reported within `24h`.';
    const { kind, chunks } = await ingestLike(Buffer.from(md), noOcr, 'onboarding.md');
    assert.equal(kind, 'markdown');
    const text = chunks.map((c) => c.text).join('\n');
    assert.match(text, /Read the security guide first\./);
    assert.match(text, /Lost laptops are reported within 24h\./);
    assert.equal(chunks.at(-1)!.heading, 'Laptops');
  });

  it('plain text in Windows-1251, KOI8-R and UTF-16 is decoded to the same Russian text', async () => {
    const text = 'Настоящий договор вступает в силу с момента подписания обеими сторонами и действует один год.';
    for (const [bytes, encoding] of [
      [encodeText(text, 'windows-1251'), 'windows-1251'],
      [encodeText(text, 'koi8-r'), 'koi8-r'],
      [encodeText(text, 'utf16le', true), 'utf-16le'],
      [encodeText(text, 'utf16be', true), 'utf-16be'],
      [encodeText(text, 'utf16le'), 'utf16le'],
      [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), 'utf-8'],
    ] as const) {
      assert.equal(decodeText(bytes).encoding, encoding);
      const { kind, chunks } = await ingestLike(bytes);
      assert.equal(kind, 'text', encoding);
      assert.equal(chunks[0]!.text, text, encoding);
      assert.equal(chunks[0]!.lang, 'ru');
    }
  });
});

describe('hostile files', () => {
  const failsWith = async (bytes: Buffer, kind: DocumentKind, status: number, code: string) =>
    assert.rejects(() => extractDocument(bytes, { kind, ocr: noOcr }), { code: status, type: code });

  it('a truncated PDF is a 422 UNREADABLE_FILE', async () => {
    const pdf = await textPdf([['Page one'], ['Page two']]);
    await failsWith(pdf.subarray(0, Math.floor(pdf.length / 3)), 'pdf', 422, 'UNREADABLE_FILE');
  });

  it('a DOCX zip bomb is refused before it is inflated', async () => {
    const bomb = docxBomb(20);
    assert.ok(bomb.length < 100_000, `bomb is ${bomb.length} bytes`);
    const before = process.memoryUsage().arrayBuffers;
    await failsWith(bomb, 'docx', 413, 'ARCHIVE_BOMB');
    assert.ok(process.memoryUsage().arrayBuffers - before < 10 * 1024 * 1024, 'nothing big was allocated');
  });

  it('a damaged zip is a 422', async () => {
    const file = docx([{ text: 'x' }]);
    await failsWith(Buffer.concat([file.subarray(0, 60), Buffer.alloc(200, 7)]), 'docx', 422, 'UNREADABLE_FILE');
  });

  it('sniffing: empty, executables, other zips and binary garbage are refused; names never decide', () => {
    assert.throws(() => sniffType(Buffer.alloc(0), 'a.txt'), { code: 400, type: 'EMPTY_FILE' });
    assert.throws(() => sniffType(Buffer.from('MZ\x90\x00\x03\x00\x00\x00\x04\x00'), 'notes.txt'), { code: 415, type: 'UNSUPPORTED_TYPE' });
    assert.throws(() => sniffType(Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 8, 0, ...Buffer.from('photos/cat.jpg')]), 'a.docx'), { code: 415 });
    assert.throws(() => sniffType(Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7919) % 256)), 'data.txt'), { code: 415 });
    assert.equal(sniffType(Buffer.from('%PDF-1.7\n...'), 'report.txt').kind, 'pdf');
    assert.equal(sniffType(Buffer.from('# Title\n\ntext'), 'notes.md').kind, 'markdown');
    assert.equal(sniffType(Buffer.from('# Title\n\ntext'), 'notes.txt').kind, 'text');
    assert.equal(sniffType(Buffer.from('<!DOCTYPE html><html><body>x</body></html>'), 'page.txt').kind, 'html');
  });
});

describe('normalization and language', () => {
  it('joins words hyphenated across lines, keeps real hyphens, drops control characters, NFC', () => {
    assert.equal(normalizeText('инфор-\nмация и кто-то\nещё'), 'информация и кто-то ещё');
    assert.equal(normalizeText('exam-\n  ple of e-mail'), 'example of e-mail');
    assert.equal(normalizeText('a\u0000b\u0007c'), 'a b c');
    assert.equal(normalizeText('e\u0301'), '\u00e9');
    assert.equal(normalizeText('one\n\n\n\ntwo  three'), 'one\n\ntwo three');
  });

  it('tells Russian from English, and leaves others to the simple config', () => {
    assert.equal(detectLanguage('Договор вступает в силу с момента подписания'), 'ru');
    assert.equal(detectLanguage('The contract takes effect when it is signed'), 'en');
    assert.equal(detectLanguage('Der Vertrag tritt mit der Unterzeichnung durch beide Parteien in Kraft'), 'simple');
    assert.equal(detectLanguage('12345 — 67'), 'simple');
    assert.equal(detectLanguage('Отчёт по проекту Apollo за Q3: все задачи выполнены'), 'ru');
  });
});

describe('chunkDocument', () => {
  const page = (text: string, number: number | null = null) => ({ page: number, text, headings: [] });
  const doc = (pages: ReturnType<typeof page>[]) => ({ kind: 'text' as const, mime: 'text/plain', title: null, pages, ocrPages: [], warnings: [] });

  it('never cuts a word, overlaps consecutive chunks, and is deterministic', () => {
    const words = Array.from({ length: 400 }, (_, i) => `word${i}`);
    const text = words.join(' ');
    const chunks = chunkDocument(doc([page(text)]), { targetTokens: 50, overlapTokens: 10 });
    assert.ok(chunks.length > 5);
    for (const c of chunks) for (const w of c.text.split(' ')) assert.ok(words.includes(w), `cut word: ${w}`);
    for (let i = 1; i < chunks.length; i++) {
      const previous = chunks[i - 1]!.text.split(' ');
      assert.ok(chunks[i]!.text.startsWith(previous.at(-1)!) || chunks[i]!.text.includes(previous.at(-1)!), 'overlap');
    }
    assert.ok(chunks.every((c) => c.tokenCount <= 50));
    assert.deepEqual(chunkDocument(doc([page(text)]), { targetTokens: 50, overlapTokens: 10 }), chunks);
    assert.deepEqual(new Set(words), new Set(chunks.flatMap((c) => c.text.split(' '))), 'nothing lost');
  });

  it('keeps each chunk on one page', () => {
    const chunks = chunkDocument(doc([page('first page text', 1), page('second page text', 2)]), { targetTokens: 500, overlapTokens: 50 });
    assert.deepEqual(chunks.map((c) => [c.page, c.text]), [[1, 'first page text'], [2, 'second page text']]);
  });
});
