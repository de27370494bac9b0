import { appError, RagmeshError } from '../errors.ts';
import { assemblePage } from './blocks.ts';
import { extractDocx } from './docx.ts';
import { abortable, throwIfAborted } from './errors.ts';
import { extractHtml } from './html.ts';
import { imagePages } from './image.ts';
import { extractMarkdown } from './markdown.ts';
import { extractPdf } from './pdf.ts';
import { decodeText } from './text.ts';
import { DEFAULT_LIMITS, type ExtractedDocument, type ExtractedPage, type ExtractOptions } from './types.ts';

export type { DocumentKind, ExtractedDocument, ExtractedPage, ExtractLimits, ExtractOptions, Heading, OcrFunction } from './types.ts';
export { DEFAULT_LIMITS } from './types.ts';
export { sniffType } from './sniff.ts';
export { detectLanguage } from './language.ts';
export { normalizeText } from './normalize.ts';

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
 * input is a 4xx RagmeshError (UNREADABLE_FILE 422, ARCHIVE_BOMB / TOO_MANY_PAGES /
 * IMAGE_TOO_LARGE 413), never a crash. An aborted signal makes it reject with the
 * signal's reason between pages, and at once while it waits for OCR.
 */
export async function extractDocument(bytes: Buffer, options: ExtractOptions): Promise<ExtractedDocument> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const base = { kind: options.kind, mime: options.mime ?? MIMES[options.kind], ocrPages: [] as number[], pagesWithoutText: [] as number[], warnings: [] as string[] };
  throwIfAborted(options.signal);
  let document: ExtractedDocument;
  switch (options.kind) {
    case 'pdf': {
      const pdf = await extractPdf(bytes, options, limits);
      document = { ...base, ...pdf };
      break;
    }
    case 'docx':
      document = { ...base, ...extractDocx(bytes, limits, options.signal) };
      break;
    case 'html': {
      const { text, encoding } = decodeText(bytes, htmlCharset(bytes));
      document = { ...base, ...extractHtml(text) };
      if (encoding !== 'utf-8') document.warnings.push(`decoded as ${encoding}`);
      break;
    }
    case 'markdown':
    case 'text': {
      const { text, encoding } = decodeText(bytes);
      document =
        options.kind === 'markdown'
          ? { ...base, ...extractMarkdown(text) }
          : { ...base, title: null, pages: [assemblePage(text.split(/\n[ \t\f\v\r]*\n/).map((p) => ({ text: p })), null)] };
      if (encoding !== 'utf-8') document.warnings.push(`decoded as ${encoding}`);
      break;
    }
    case 'image': {
      const pictures = imagePages(bytes, limits.maxPages, options.signal);
      const pages: ExtractedPage[] = [];
      const ocrPages: number[] = [];
      const pagesWithoutText: number[] = [];
      const warnings: string[] = [];
      for (const [i, picture] of pictures.entries()) {
        throwIfAborted(options.signal);
        if (!options.ocr) {
          // OCR is off for this deployment: an image has no text layer, so its pages are marked, not read.
          pagesWithoutText.push(picture.page ?? 1);
          warnings.push(`${picture.page ? `page ${picture.page}: ` : ''}an image without a text layer, and OCR is off`);
          options.onProgress?.(i + 1, pictures.length);
          continue;
        }
        const result = await abortable(options.ocr(picture.load(), picture.page), options.signal);
        ocrPages.push(picture.page ?? 1);
        pages.push(assemblePage(result.text.split(/\n\s*\n/).map((text) => ({ text })), picture.page));
        if (result.confidence < 50) warnings.push(`${picture.page ? `page ${picture.page}: ` : ''}OCR confidence ${Math.round(result.confidence)}`);
        options.onProgress?.(i + 1, pictures.length);
      }
      document = { ...base, mime: options.mime ?? imageMime(bytes), title: null, pages, ocrPages, pagesWithoutText, warnings };
      break;
    }
    default:
      throw appError('UNSUPPORTED_TYPE', `Unknown document kind ${String(options.kind)}`);
  }
  options.onProgress?.(1, 1);
  return capText(document, limits.maxTextChars);
}

function imageMime(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return 'image/jpeg';
  if (bytes[0] === 0x49 || bytes[0] === 0x4d) return 'image/tiff';
  return 'image/png';
}

/** The charset an HTML page declares in its first bytes (meta charset, http-equiv, or an XML declaration). */
function htmlCharset(bytes: Buffer): string | undefined {
  const head = bytes.toString('latin1', 0, Math.min(bytes.length, 2048));
  return /<meta[^>]+charset\s*=\s*["']?\s*([\w:.-]+)/i.exec(head)?.[1] ?? /<\?xml[^>]+encoding\s*=\s*["']([\w:.-]+)/i.exec(head)?.[1];
}

/** Text past the limit is cut at a paragraph break (or a space), with a warning. */
function capText(document: ExtractedDocument, maxChars: number): ExtractedDocument {
  let total = 0;
  const pages: ExtractedPage[] = [];
  for (const page of document.pages) {
    if (total + page.text.length > maxChars) {
      const room = Math.max(0, maxChars - total);
      let cut = page.text.lastIndexOf('\n\n', room);
      if (cut < room / 2) cut = page.text.lastIndexOf(' ', room);
      if (cut < 0) cut = room;
      const text = page.text.slice(0, cut).trimEnd();
      if (text) pages.push({ ...page, text, headings: page.headings.filter((h) => h.offset < text.length) });
      document.warnings.push(`text cut at ${maxChars} characters`);
      break;
    }
    total += page.text.length;
    pages.push(page);
  }
  return { ...document, pages };
}
