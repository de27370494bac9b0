import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { docx, docxBomb, lyingDocxBomb, textImage, textPdf } from '../../test/fixtures/documents.ts';
import {
  attachmentPdf,
  docxPdfPolyglot,
  encryptedEntryDocx,
  encryptedPdf,
  htmlPdfPolyglot,
  innocentPdf,
  launchPdf,
  macroDocx,
  manyEntriesDocx,
  obfuscatedScriptPdf,
  pdfZipPolyglot,
  pngZipPolyglot,
  scriptedPdf,
  zipSlipDocx,
} from '../../test/fixtures/hostile-files.ts';
import { declaredTypeProblem, UploadScreen } from './screen.ts';

/** The screen's verdict on `bytes` fed in chunks of `chunk` bytes (1 = byte by byte: every boundary). */
function screen(bytes: Buffer, chunk = 64 * 1024): string | null {
  const s = new UploadScreen();
  for (let at = 0; at < bytes.length; at += chunk) s.push(bytes.subarray(at, at + chunk));
  return s.verdict()?.type ?? null;
}

describe('upload screen (lib/extract/screen.ts)', () => {
  it('lets clean files of every kind through, whatever the chunking', async () => {
    const clean: Array<[string, Buffer]> = [
      ['text PDF (object streams)', await textPdf([['A clean report.'], ['Page two.']])],
      ['PDF naming /JavaScript only in strings, comments and stream data', innocentPdf()],
      ['DOCX', docx([{ text: 'A clean letter.' }])],
      ['PNG', await textImage(['clean'])],
      ['text', Buffer.from('plain words\n'.repeat(1000))],
    ];
    for (const [what, bytes] of clean) {
      for (const chunk of [1, 7, 1000, 64 * 1024]) assert.equal(screen(bytes, chunk), null, `${what}, chunks of ${chunk}`);
    }
  });

  it('refuses encrypted and active PDFs, also where the names hide in compressed object streams or #xx escapes', async () => {
    const cases: Array<[string, Buffer, string]> = [
      ['encrypted', encryptedPdf(), 'ENCRYPTED_PDF'],
      ['JavaScript in a compressed object stream', await scriptedPdf(), 'ACTIVE_CONTENT'],
      ['an attached file', await attachmentPdf(), 'ACTIVE_CONTENT'],
      ['/Java#53cript', obfuscatedScriptPdf(), 'ACTIVE_CONTENT'],
      ['a launch action', launchPdf(), 'ACTIVE_CONTENT'],
    ];
    for (const [what, bytes, code] of cases) {
      for (const chunk of [1, 13, 64 * 1024]) assert.equal(screen(bytes, chunk), code, `${what}, chunks of ${chunk}`);
    }
    assert.ok(!(await scriptedPdf()).includes('/JavaScript'), 'the scripted fixture hides its action in a compressed stream');
  });

  it('refuses polyglots', async () => {
    assert.equal(screen(await pdfZipPolyglot()), 'POLYGLOT');
    assert.equal(screen(docxPdfPolyglot()), 'POLYGLOT');
    assert.equal(screen(await htmlPdfPolyglot()), 'POLYGLOT');
    assert.equal(screen(pngZipPolyglot(await textImage(['gifar'])), 1000), 'POLYGLOT');
  });

  it('refuses zip bombs (declared, lying, many entries) and unsafe archives before inflating anything', () => {
    assert.equal(screen(docxBomb(5)), 'ARCHIVE_BOMB');
    assert.equal(screen(lyingDocxBomb(5)), 'ARCHIVE_BOMB');
    assert.equal(screen(manyEntriesDocx()), 'ARCHIVE_BOMB');
    assert.equal(screen(zipSlipDocx()), 'UNSAFE_ARCHIVE');
    assert.equal(screen(encryptedEntryDocx()), 'UNSAFE_ARCHIVE');
    assert.equal(screen(macroDocx()), 'ACTIVE_CONTENT');
  });

  it('compares the declared type with the sniffed one: families, not exact types; executables never', () => {
    assert.equal(declaredTypeProblem('pdf', { filename: 'report.pdf', contentType: 'application/pdf' }), null);
    assert.equal(declaredTypeProblem('pdf', { filename: 'report', contentType: 'application/octet-stream' }), null);
    assert.equal(declaredTypeProblem('pdf', { filename: 'report.pdf', contentType: 'text/plain' }), null, 'text/plain is what a part without a type reads as');
    assert.equal(declaredTypeProblem('image', { filename: 'photo.png', contentType: 'image/jpeg' }), null, 'one image type for another is mislabelled, not hostile');
    assert.equal(declaredTypeProblem('html', { filename: 'page.md', contentType: 'text/html' }), null);
    assert.equal(declaredTypeProblem('docx', { filename: 'letter.docx', contentType: 'application/zip' }), null);
    assert.equal(declaredTypeProblem('pdf', { filename: 'letter.docx' })?.type, 'TYPE_MISMATCH');
    assert.equal(declaredTypeProblem('text', { filename: 'notes.txt', contentType: 'image/png' })?.type, 'TYPE_MISMATCH');
    assert.equal(declaredTypeProblem('html', { filename: 'scan.pdf' })?.type, 'TYPE_MISMATCH');
    assert.equal(declaredTypeProblem('text', { filename: 'invoice.pdf.exe' })?.type, 'TYPE_MISMATCH');
    assert.equal(declaredTypeProblem('text', { filename: 'x', contentType: 'application/x-msdownload' })?.type, 'TYPE_MISMATCH');
  });
});
