import { RagmeshError } from '../errors.ts';
import { assemblePage } from './blocks.ts';
import { extractDocx } from './docx.ts';
import { extractHtml } from './html.ts';
import { extractMarkdown } from './markdown.ts';
import { extractPdf } from './pdf.ts';
import { decodeText } from './text.ts';
import { DEFAULT_LIMITS, type ExtractedDocument, type ExtractOptions } from './types.ts';

export type { DocumentKind, ExtractedDocument, ExtractedPage, ExtractOptions, OcrFunction } from './types.ts';
export { sniffType } from './sniff.ts';

const MIMES = {
  pdf: 'application/pdf',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  html: 'text/html',
  markdown: 'text/markdown',
  text: 'text/plain',
  image: 'image/png',
} as const;

/**
 * Text of a document, page by page, normalized. Pure: bytes in, text out; OCR is the
 * caller's function (the pipeline passes the ingest service's OCR pool). Unreadable
 * input is a 4xx RagmeshError (UNREADABLE_FILE, ARCHIVE_BOMB, TOO_MANY_PAGES), never a crash.
 */
export async function extractDocument(bytes: Buffer, options: ExtractOptions): Promise<ExtractedDocument> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const base = { kind: options.kind, mime: options.mime ?? MIMES[options.kind], ocrPages: [] as number[], warnings: [] as string[] };
  if (options.signal?.aborted) throw options.signal.reason;
  let document: ExtractedDocument;
  switch (options.kind) {
    case 'pdf': {
      const pdf = await extractPdf(bytes, options, limits);
      document = { ...base, ...pdf };
      break;
    }
    case 'docx':
      document = { ...base, ...extractDocx(bytes, limits) };
      break;
    case 'html':
      document = { ...base, ...extractHtml(decodeText(bytes).text) };
      break;
    case 'markdown':
      document = { ...base, ...extractMarkdown(decodeText(bytes).text) };
      break;
    case 'text': {
      const { text } = decodeText(bytes);
      document = { ...base, title: null, pages: [assemblePage(text.split(/\n\s*\n/).map((p) => ({ text: p })), null)] };
      break;
    }
    case 'image': {
      const result = await options.ocr(bytes, null);
      document = { ...base, title: null, ocrPages: [1], pages: [assemblePage([{ text: result.text }], null)] };
      if (result.confidence < 50) document.warnings.push(`OCR confidence ${Math.round(result.confidence)}`);
      break;
    }
    default:
      throw new RagmeshError(`Unknown document kind ${String(options.kind)}`, 415, 'UNSUPPORTED_TYPE');
  }
  options.onProgress?.(1, 1);
  return capText(document, limits.maxTextChars);
}

function capText(document: ExtractedDocument, maxChars: number): ExtractedDocument {
  let total = 0;
  const pages = [];
  for (const page of document.pages) {
    if (total + page.text.length > maxChars) {
      pages.push({ ...page, text: page.text.slice(0, Math.max(0, maxChars - total)), headings: page.headings.filter((h) => h.offset < maxChars - total) });
      document.warnings.push(`text cut at ${maxChars} characters`);
      break;
    }
    total += page.text.length;
    pages.push(page);
  }
  return { ...document, pages };
}
