import { inflateSync, constants as zlibConstants } from 'node:zlib';
import { appError, RagmeshError } from '../errors.ts';
import { DirectoryOutOfWindow, readZipDirectory } from './zip.ts';
import { DEFAULT_LIMITS, type DocumentKind } from './types.ts';

/**
 * Screening of an upload as its bytes pass by, before any row or job exists: what a file
 * holds that no job should ever open. One pass, nothing held but a small state and a tail
 * window, so it costs the upload no second read:
 *
 * - PDF: a byte-level lexer (comments, strings and stream data skipped, `#xx` in names
 *   decoded, compressed object streams inflated and lexed too) looks for `/Encrypt`
 *   (ENCRYPTED_PDF), `/JavaScript`, `/JS`, `/Launch`, `/EmbeddedFile(s)`, `/RichMedia`
 *   (ACTIVE_CONTENT), and a zip's local header between objects (POLYGLOT).
 * - DOCX: the zip's central directory, read from the tail window: declared sizes over
 *   the unpack limit, entries expanding past 200× (over 2 MB), entries holding more
 *   compressed bytes than they declare unpacked (a lying header) or too many entries
 *   (ARCHIVE_BOMB); names climbing out of the archive or encrypted entries
 *   (UNSAFE_ARCHIVE); macros or ActiveX (ACTIVE_CONTENT); a PDF header in its first
 *   kilobyte (POLYGLOT).
 * - Any file: a zip's end record or a PDF's end marker in the last 64 KiB of an image,
 *   or HTML before a PDF's header (POLYGLOT).
 *
 * It is a screen, not a parser: what it misses still meets the extractor's own limits at
 * job time (ARCHIVE_BOMB, UNREADABLE_FILE), and the extractor runs no script anyway.
 */
export interface ScreenLimits {
  /** The extractor's limit on a DOCX's unpacked size (EXTRACT limits, 200 MiB). */
  maxUnpackedBytes: number;
}

/** Office XML compresses 5–20×; far beyond that, on something big, is a bomb (as lib/extract/docx.ts). */
const BOMB_RATIO = 200;
const BOMB_MIN_BYTES = 2 * 1024 * 1024;
const MAX_ZIP_ENTRIES = 10_000;
/** The zip tail kept: the central directory of any real document fits (about 70 bytes per entry). */
const ZIP_TAIL_BYTES = 1024 * 1024 + 65_557;
const TAIL_BYTES = 64 * 1024;
/** A compressed object stream larger than this is not inflated for screening (the job's own limits still apply). */
const MAX_OBJECT_STREAM_BYTES = 8 * 1024 * 1024;
const MAX_OBJECT_STREAM_INFLATED = 64 * 1024 * 1024;

const ACTIVE_NAMES = new Set(['JavaScript', 'JS', 'Launch', 'EmbeddedFile', 'EmbeddedFiles', 'RichMedia']);

type Mode = 'pending' | 'pdf' | 'zip' | 'image' | 'other';

export class UploadScreen {
  private mode: Mode = 'pending';
  private readonly first: Buffer[] = [];
  private firstLength = 0;
  private size = 0;
  private pdf: PdfScanner | null = null;
  private readonly tail: Buffer[] = [];
  private tailLength = 0;
  private tailLimit = TAIL_BYTES;

  constructor(private readonly limits: ScreenLimits = { maxUnpackedBytes: DEFAULT_LIMITS.maxUnpackedBytes }) {}

  push(chunk: Buffer): void {
    this.size += chunk.length;
    this.keepTail(chunk);
    if (this.mode === 'pending') {
      this.first.push(chunk);
      this.firstLength += chunk.length;
      if (this.firstLength < 1024) return;
      this.decide();
      return;
    }
    this.pdf?.push(chunk);
  }

  /** After the last byte: the refusal, or null for a file the screen lets through. */
  verdict(): RagmeshError | null {
    if (this.mode === 'pending') this.decide();
    const head = Buffer.concat(this.first);
    const tail = Buffer.concat(this.tail);
    if (this.mode === 'pdf') {
      const at = head.subarray(0, 1024).indexOf('%PDF-');
      if (at > 0 && /<(?:html|script|svg|body|iframe|!doctype)\b/i.test(head.toString('latin1', 0, at))) {
        return polyglot('HTML before its PDF header');
      }
      this.pdf!.finish();
      return this.pdf!.found ?? (tail.includes(ZIP_END) ? polyglot('a PDF with a zip archive inside') : null);
    }
    if (this.mode === 'zip') {
      if (head.subarray(0, 1024).includes('%PDF-')) return polyglot('a zip archive with a PDF header in its first kilobyte');
      return this.zipVerdict(tail);
    }
    if (this.mode === 'image') {
      if (tail.includes(ZIP_END)) return polyglot('an image with a zip archive appended');
      if (tail.includes('%%EOF')) return polyglot('an image with a PDF appended');
    }
    return null;
  }

  private decide(): void {
    const head = Buffer.concat(this.first);
    if (head.subarray(0, 1024).includes('%PDF-')) {
      this.mode = 'pdf';
      this.pdf = new PdfScanner(false);
      this.pdf.push(head);
    } else if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) {
      this.mode = 'zip';
      this.tailLimit = ZIP_TAIL_BYTES;
    } else if (
      head.subarray(0, 8).equals(PNG) ||
      (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) ||
      (head.length >= 4 && (head.readUInt32BE(0) === 0x49492a00 || head.readUInt32BE(0) === 0x4d4d002a))
    ) {
      this.mode = 'image';
    } else {
      this.mode = 'other';
    }
    // The head stays for the verdict (the first kilobytes); later chunks are not kept.
  }

  private keepTail(chunk: Buffer): void {
    this.tail.push(chunk);
    this.tailLength += chunk.length;
    while (this.tail.length > 1 && this.tailLength - this.tail[0]!.length >= this.tailLimit) this.tailLength -= this.tail.shift()!.length;
  }

  private zipVerdict(tail: Buffer): RagmeshError | null {
    const base = this.size - tail.length;
    let entries;
    try {
      entries = readZipDirectory(tail, { maxUnpackedBytes: this.limits.maxUnpackedBytes, maxRatio: BOMB_RATIO, ratioFloorBytes: BOMB_MIN_BYTES }, base);
    } catch (err) {
      if (err instanceof RagmeshError && err.type === 'ARCHIVE_BOMB') return err;
      // A directory beyond the tail window holds more entries than any document; damage is the job's to report.
      if (err instanceof DirectoryOutOfWindow) return bomb(`the archive's directory is larger than ${ZIP_TAIL_BYTES} bytes`);
      return null;
    }
    if (entries.length > MAX_ZIP_ENTRIES) return bomb(`the archive holds ${entries.length} entries (more than ${MAX_ZIP_ENTRIES})`);
    for (const entry of entries) {
      const name = entry.name;
      if (name.startsWith('/') || name.includes('\\') || /^[A-Za-z]:/.test(name) || name.split('/').includes('..')) {
        return appError('UNSAFE_ARCHIVE', `The archive entry ${JSON.stringify(name.slice(0, 100))} points outside the archive`);
      }
      if (entry.encrypted) return appError('UNSAFE_ARCHIVE', `The archive entry ${JSON.stringify(name.slice(0, 100))} is encrypted`);
      // Deflate never grows data by more than 5 bytes per 16 KiB block and a few bytes of framing.
      const most = entry.method === 0 ? entry.size : entry.size + 5 * Math.ceil(entry.size / 16_383) + 64;
      if ((entry.method === 0 || entry.method === 8) && entry.compressedSize > most) {
        return bomb(`the archive entry ${JSON.stringify(name.slice(0, 100))} holds ${entry.compressedSize} compressed bytes but declares ${entry.size} unpacked (a lying header)`);
      }
      if (/(^|\/)vbaProject\.bin$/i.test(name) || /^word\/activeX\//i.test(name)) {
        return appError('ACTIVE_CONTENT', `The document holds ${/vba/i.test(name) ? 'macros' : 'ActiveX controls'} (${name.slice(0, 100)})`);
      }
    }
    return null;
  }
}

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const ZIP_END = Buffer.from([0x50, 0x4b, 0x05, 0x06]);

function polyglot(what: string): RagmeshError {
  return appError('POLYGLOT', `The file is two formats at once: ${what}`);
}

function bomb(what: string): RagmeshError {
  return appError('ARCHIVE_BOMB', `${what[0]!.toUpperCase()}${what.slice(1)}: refused as an archive bomb`);
}

const enum S {
  Normal,
  Comment,
  Str,
  Hex,
  Name,
  Word,
  Stream,
}

const ENDSTREAM = Buffer.from('endstream');

/**
 * The PDF lexer of the screen: fed chunk by chunk, it tracks just enough syntax to see
 * names where they are names (not inside strings, comments or stream data).
 */
class PdfScanner {
  found: RagmeshError | null = null;
  private state = S.Normal;
  private depth = 0;
  private escape = false;
  private lt = false;
  private last4 = 0;
  private name: number[] = [];
  private word = '';
  /** Names since the last `obj`: whether the stream that follows is a compressed object stream. */
  private names = new Set<string>();
  private carry = Buffer.alloc(0);
  private collected: Buffer[] | null = null;
  private collectedLength = 0;

  constructor(private readonly nested: boolean) {}

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.found) {
      if (this.state === S.Stream) {
        i = this.inStream(chunk, i);
        continue;
      }
      const b = chunk[i]!;
      switch (this.state) {
        case S.Comment:
          if (b === 0x0a || b === 0x0d) this.state = S.Normal;
          i++;
          continue;
        case S.Str:
          if (this.escape) this.escape = false;
          else if (b === 0x5c) this.escape = true;
          else if (b === 0x28) this.depth++;
          else if (b === 0x29 && --this.depth === 0) this.state = S.Normal;
          i++;
          continue;
        case S.Hex:
          if (b === 0x3e) this.state = S.Normal;
          i++;
          continue;
        case S.Name:
          if (isRegular(b)) {
            if (this.name.length < 128) this.name.push(b);
            this.last4 = ((this.last4 << 8) | b) >>> 0;
            i++;
            continue;
          }
          this.endName();
          continue; // the delimiter is read again as Normal
        case S.Word:
          if (isLetter(b)) {
            if (this.word.length < 16) this.word += String.fromCharCode(b);
            this.last4 = ((this.last4 << 8) | b) >>> 0;
            i++;
            continue;
          }
          this.endWord();
          continue;
        default:
          break;
      }
      // Normal
      this.last4 = ((this.last4 << 8) | b) >>> 0;
      if (this.last4 === 0x504b0304) {
        this.found = polyglot('a PDF with a zip archive inside');
        return;
      }
      if (this.lt) {
        this.lt = false;
        if (b === 0x3c) {
          i++;
          continue;
        }
        this.state = S.Hex;
        continue;
      }
      if (b === 0x25) this.state = S.Comment;
      else if (b === 0x28) {
        this.state = S.Str;
        this.depth = 1;
      } else if (b === 0x3c) this.lt = true;
      else if (b === 0x2f) {
        this.state = S.Name;
        this.name = [];
      } else if (isLetter(b)) {
        this.state = S.Word;
        this.word = String.fromCharCode(b);
      }
      i++;
    }
  }

  /** The end of the file ends a name or keyword too. */
  finish(): void {
    if (this.state === S.Name) this.endName();
    else if (this.state === S.Word) this.endWord();
  }

  private endName(): void {
    this.state = S.Normal;
    const name = decodeName(this.name);
    this.names.add(name);
    if (name === 'Encrypt') this.found = appError('ENCRYPTED_PDF', 'The PDF is encrypted: upload it without a password or restrictions');
    else if (ACTIVE_NAMES.has(name)) this.found = appError('ACTIVE_CONTENT', `The PDF holds active content (/${name})`);
  }

  private endWord(): void {
    this.state = S.Normal;
    if (this.word === 'obj') this.names = new Set();
    else if (this.word === 'stream') {
      this.state = S.Stream;
      this.carry = Buffer.alloc(0);
      const objectStream = !this.nested && this.names.has('ObjStm') && this.names.has('FlateDecode');
      this.collected = objectStream ? [] : null;
      this.collectedLength = 0;
    }
  }

  /** Stream data is skipped up to `endstream`; an object stream's bytes are kept, inflated and lexed. */
  private inStream(chunk: Buffer, from: number): number {
    const piece = chunk.subarray(from);
    const window = this.carry.length ? Buffer.concat([this.carry, piece]) : piece;
    const at = window.indexOf(ENDSTREAM);
    const dataEnd = at >= 0 ? at : window.length;
    if (this.collected) {
      // Only the new bytes are collected (the carry was counted with the chunk before).
      const fresh = window.subarray(this.carry.length, Math.max(this.carry.length, dataEnd));
      if (this.collectedLength + fresh.length > MAX_OBJECT_STREAM_BYTES) this.collected = null;
      else {
        this.collected.push(fresh);
        this.collectedLength += fresh.length;
      }
    }
    if (at < 0) {
      this.carry = Buffer.from(window.subarray(Math.max(0, window.length - ENDSTREAM.length + 1)));
      return chunk.length;
    }
    if (this.collected) {
      // The bytes before the endstream that were in the carry belong to the stream too; a trailing EOL does not matter to inflate.
      const data = Buffer.concat(this.collected);
      this.lexObjectStream(data.subarray(data[0] === 0x0d && data[1] === 0x0a ? 2 : data[0] === 0x0a ? 1 : 0));
      this.collected = null;
    }
    this.state = S.Normal;
    this.names = new Set();
    return from + (at - this.carry.length) + ENDSTREAM.length;
  }

  private lexObjectStream(data: Buffer): void {
    let inflated: Buffer;
    try {
      inflated = inflateSync(data, { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: MAX_OBJECT_STREAM_INFLATED });
    } catch {
      return; // damaged or too large to screen: the job's extractor decides
    }
    const inner = new PdfScanner(true);
    inner.push(inflated);
    if (inner.found && inner.found.type !== 'POLYGLOT') this.found = inner.found;
  }
}

/** Not whitespace and not a PDF delimiter. */
function isRegular(b: number): boolean {
  return !(b === 0x00 || b === 0x09 || b === 0x0a || b === 0x0c || b === 0x0d || b === 0x20 || b === 0x28 || b === 0x29 || b === 0x3c || b === 0x3e || b === 0x5b || b === 0x5d || b === 0x7b || b === 0x7d || b === 0x2f || b === 0x25);
}

function isLetter(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

/** A name's bytes with `#xx` escapes decoded (`/Java#53cript` is `/JavaScript`). */
function decodeName(bytes: number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x23 && i + 2 < bytes.length) {
      const hex = String.fromCharCode(bytes[i + 1] ?? 0, bytes[i + 2] ?? 0);
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        out += String.fromCharCode(parseInt(hex, 16));
        i += 2;
        continue;
      }
    }
    out += String.fromCharCode(b);
  }
  return out;
}

/** What a declaration (a file name's extension or a content type) says the file is. */
type Family = 'pdf' | 'docx' | 'image' | 'text' | 'executable';

const EXTENSION_FAMILY: Record<string, Family> = {
  pdf: 'pdf',
  docx: 'docx', docm: 'docx', dotx: 'docx',
  png: 'image', jpg: 'image', jpeg: 'image', jpe: 'image', tif: 'image', tiff: 'image',
  txt: 'text', text: 'text', md: 'text', markdown: 'text', mdown: 'text', mkd: 'text', mkdn: 'text', html: 'text', htm: 'text', xhtml: 'text', csv: 'text', tsv: 'text', log: 'text',
  exe: 'executable', dll: 'executable', scr: 'executable', com: 'executable', msi: 'executable', pif: 'executable', cpl: 'executable', jar: 'executable', apk: 'executable', bat: 'executable', cmd: 'executable', vbs: 'executable', ps1: 'executable', app: 'executable', dmg: 'executable', deb: 'executable', rpm: 'executable', so: 'executable', dylib: 'executable', elf: 'executable',
};

const MIME_FAMILY: Record<string, Family> = {
  'application/pdf': 'pdf', 'application/x-pdf': 'pdf',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx', 'application/vnd.ms-word.document.macroenabled.12': 'docx', 'application/zip': 'docx', 'application/x-zip-compressed': 'docx',
  'image/png': 'image', 'image/jpeg': 'image', 'image/pjpeg': 'image', 'image/tiff': 'image',
  // text/plain declares nothing: it is what a multipart part without a content type reads as.
  'text/markdown': 'text', 'text/x-markdown': 'text', 'text/html': 'text', 'application/xhtml+xml': 'text', 'text/csv': 'text',
  'application/x-msdownload': 'executable', 'application/x-dosexec': 'executable', 'application/x-executable': 'executable', 'application/vnd.microsoft.portable-executable': 'executable', 'application/x-sharedlib': 'executable', 'application/x-mach-binary': 'executable', 'application/java-archive': 'executable', 'application/x-msi': 'executable',
};

const KIND_FAMILY: Record<DocumentKind, Family> = { pdf: 'pdf', docx: 'docx', image: 'image', html: 'text', markdown: 'text', text: 'text' };

/**
 * Whether the file's declared type (its name's extension, the content type its client
 * sent) names something else than its bytes are: 415 TYPE_MISMATCH. Declarations of no
 * type ragmesh knows (application/octet-stream, text/plain, no extension) declare nothing; the
 * image types count as one (a JPEG named .png is only mislabelled), and so do the text
 * kinds (HTML, Markdown, plain text).
 */
export function declaredTypeProblem(kind: DocumentKind, declared: { filename?: string | null; contentType?: string | null }): RagmeshError | null {
  const sniffed = KIND_FAMILY[kind];
  const ext = /\.([A-Za-z0-9]+)$/.exec(declared.filename ?? '')?.[1]?.toLowerCase();
  const mime = (declared.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  for (const [what, family] of [
    [`the name ${JSON.stringify((declared.filename ?? '').slice(0, 100))}`, ext ? EXTENSION_FAMILY[ext] : undefined],
    [`the content type ${mime}`, mime ? MIME_FAMILY[mime] : undefined],
  ] as const) {
    if (family === 'executable') return appError('TYPE_MISMATCH', `The upload declares an executable (${what})`);
    if (family && family !== sniffed) return appError('TYPE_MISMATCH', `The file's bytes are ${kind === 'image' ? 'an image' : kind === 'docx' ? 'a DOCX document' : kind === 'pdf' ? 'a PDF' : 'text'}, but ${what} says otherwise`);
  }
  return null;
}
