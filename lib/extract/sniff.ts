import iconv from 'iconv-lite';
import { appError, RagmeshError } from '../errors.ts';
import { utf16WithoutBom } from './text.ts';
import type { DocumentKind } from './types.ts';

const starts = (head: Buffer, bytes: number[], at = 0) => bytes.every((b, i) => head[at + i] === b);

/**
 * The type of a file from its first bytes, never from its name or the client's word.
 * The name may only choose between two text kinds (Markdown or plain text).
 * Throws 400 EMPTY_FILE or 415 UNSUPPORTED_TYPE.
 */
export function sniffType(head: Buffer, filename?: string): { kind: DocumentKind; mime: string } {
  if (head.length === 0) throw appError('EMPTY_FILE', 'The file is empty');
  // %PDF- (readers accept it anywhere in the first kilobyte, after junk some generators leave).
  const pdfAt = head.subarray(0, 1024).indexOf('%PDF-');
  if (pdfAt === 0 || (pdfAt > 0 && !binaryReason(head.subarray(0, pdfAt)))) return { kind: 'pdf', mime: 'application/pdf' };
  if (starts(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return { kind: 'image', mime: 'image/png' };
  if (starts(head, [0xff, 0xd8, 0xff])) return { kind: 'image', mime: 'image/jpeg' };
  if (starts(head, [0x49, 0x49, 0x2a, 0x00]) || starts(head, [0x4d, 0x4d, 0x00, 0x2a])) return { kind: 'image', mime: 'image/tiff' };
  if (starts(head, [0x50, 0x4b, 0x03, 0x04])) {
    // A DOCX is a zip whose entries include word/document.xml; names sit in plain text in the local headers.
    if (head.includes('word/document.xml') || (head.includes('[Content_Types].xml') && head.includes('word/'))) {
      return { kind: 'docx', mime: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document' };
    }
    throw unsupported('a zip archive that is not a DOCX document');
  }
  const binary = binaryReason(head);
  if (binary) throw unsupported(binary);
  const text = headText(head).replace(/^\uFEFF/, '').trimStart().toLowerCase();
  const ext = /\.([a-z0-9]+)$/i.exec(filename ?? '')?.[1]?.toLowerCase();
  // A page that says it is HTML is; tags somewhere near the top only suggest it, and a
  // name saying Markdown or plain text wins over a suggestion (a README quoting <div>).
  const declaredHtml = /^(?:<\?xml[^>]*>\s*)?(?:<!--[\s\S]*?-->\s*)*<(?:!doctype\s+html|html[\s>])/.test(text);
  const looksHtml = /<(head|body|div|p|h[1-6]|table|article|section|span|a\s+href)[\s>]/.test(text.slice(0, 1024));
  if (declaredHtml) return { kind: 'html', mime: 'text/html' };
  if (ext && MARKDOWN_EXTENSIONS.has(ext)) return { kind: 'markdown', mime: 'text/markdown' };
  if (looksHtml && !(ext && PLAIN_EXTENSIONS.has(ext))) return { kind: 'html', mime: 'text/html' };
  return { kind: 'text', mime: 'text/plain' };
}

const MARKDOWN_EXTENSIONS = new Set(['md', 'markdown', 'mdown', 'mkd', 'mkdn']);
const PLAIN_EXTENSIONS = new Set(['txt', 'text', 'log', 'csv', 'tsv']);

/** The first kilobytes as text, whatever their encoding: enough to see tags. */
function headText(head: Buffer): string {
  const sample = head.subarray(0, 4096);
  if (starts(sample, [0xff, 0xfe])) return iconv.decode(sample.subarray(2), 'utf16le');
  if (starts(sample, [0xfe, 0xff])) return iconv.decode(sample.subarray(2), 'utf16be');
  const utf16 = utf16WithoutBom(sample);
  if (utf16) return iconv.decode(sample, utf16);
  return sample.toString('latin1').replace(/^\xEF\xBB\xBF/, '');
}

function unsupported(what: string): RagmeshError {
  return appError('UNSUPPORTED_TYPE', `Unsupported file type: ${what}. Send PDF, DOCX, HTML, Markdown, plain text, PNG, JPEG or TIFF.`);
}

/** Why the bytes are not text, or null if they could be (UTF-16 is recognised by its BOM or its byte pattern). */
function binaryReason(head: Buffer): string | null {
  if (starts(head, [0x4d, 0x5a])) return 'an executable';
  if (starts(head, [0x7f, 0x45, 0x4c, 0x46])) return 'an executable';
  if (starts(head, [0x47, 0x49, 0x46, 0x38])) return 'a GIF image';
  if (starts(head, [0x1f, 0x8b])) return 'a gzip archive';
  if (starts(head, [0xd0, 0xcf, 0x11, 0xe0])) return 'a legacy Office document (save it as DOCX or PDF)';
  if (starts(head, [0xff, 0xfe]) || starts(head, [0xfe, 0xff]) || utf16WithoutBom(head)) return null; // UTF-16
  const sample = head.subarray(0, Math.min(head.length, 8192));
  let nul = 0;
  let control = 0;
  for (const b of sample) {
    if (b === 0) nul++;
    else if (b < 0x09 || (b > 0x0d && b < 0x20 && b !== 0x1b)) control++;
  }
  if (nul > 0 || control > sample.length / 100) return 'binary data';
  return null;
}
