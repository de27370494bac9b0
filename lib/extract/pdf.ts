import { getResolvedPDFJS } from 'unpdf';
import { isRetryable } from '../errors.ts';
import { assemblePage, type Block } from './blocks.ts';
import { abortable, throwIfAborted, tooManyPages, unreadable } from './errors.ts';
import { encodeGrayPng } from './png.ts';
import type { ExtractedPage, ExtractLimits, ExtractOptions } from './types.ts';

type PdfJs = Awaited<ReturnType<typeof getResolvedPDFJS>>;
type PdfDocument = Awaited<ReturnType<PdfJs['getDocument']>['promise']>;
type PdfPage = Awaited<ReturnType<PdfDocument['getPage']>>;
type Matrix = [number, number, number, number, number, number];

/** A page with fewer readable characters than this has no real text layer (a scan with a page number, say). */
const MIN_TEXT_LAYER_CHARS = 16;
/** OCR reads best near 300 dpi; a page image is never made finer than that. */
const MAX_OCR_SCALE = 300 / 72;
const MAX_OCR_PIXELS = 40_000_000;
/** pdf.js answers an image request through a callback; a broken image must not hang the job. */
const IMAGE_TIMEOUT_MS = 10_000;

interface Line {
  text: string;
  /** Baseline, PDF user space (grows upwards). */
  y: number;
  x: number;
  size: number;
}

interface RawPage {
  number: number;
  lines: Line[];
  /** Text from OCR, when the page had no text layer. */
  ocrText?: string;
}

/**
 * Text per page from the PDF's text layer, laid out in paragraphs (vertical gaps, indents)
 * with headings (lines set larger than the body text) and without running headers,
 * footers and page numbers. A page without a text layer is a scan: its images are composed
 * into one grayscale picture of the page straight from the operator list (no rendering,
 * no native canvas) and read by the caller's OCR.
 */
export async function extractPdf(
  bytes: Buffer,
  options: ExtractOptions,
  limits: ExtractLimits,
): Promise<{ pages: ExtractedPage[]; ocrPages: number[]; pagesWithoutText: number[]; title: string | null; warnings: string[] }> {
  const pdfjs = await getResolvedPDFJS();
  // One copy, on purpose: pdf.js transfers (detaches) a buffer it is given whole and copies
  // a view of a larger one, so the caller's bytes stay usable only through a copy.
  const task = pdfjs.getDocument({
    data: new Uint8Array(bytes),
    verbosity: 0,
    disableFontFace: true,
    useSystemFonts: false,
    stopAtErrors: false,
  });
  try {
    let pdf: PdfDocument;
    try {
      pdf = await abortable(task.promise, options.signal);
    } catch (err) {
      throwIfAborted(options.signal);
      const name = (err as Error)?.name;
      if (name === 'PasswordException') throw unreadable('the PDF is protected by a password');
      throw unreadable(`the PDF cannot be parsed (${(err as Error).message})`);
    }
    if (pdf.numPages > limits.maxPages) throw tooManyPages(pdf.numPages, limits.maxPages);
    const raw: RawPage[] = [];
    const ocrPages: number[] = [];
    const pagesWithoutText: number[] = [];
    const warnings: string[] = [];
    for (let number = 1; number <= pdf.numPages; number++) {
      throwIfAborted(options.signal);
      let page: PdfPage;
      let lines: Line[];
      try {
        page = await pdf.getPage(number);
        lines = await textLines(page);
      } catch (err) {
        throw unreadable(`page ${number} cannot be read (${(err as Error).message})`);
      }
      if (readableChars(lines) < MIN_TEXT_LAYER_CHARS && !options.ocr) {
        // OCR is off for this deployment: the page keeps what little text it has, and is marked.
        pagesWithoutText.push(number);
        warnings.push(`page ${number}: no text layer, and OCR is off`);
      } else if (readableChars(lines) < MIN_TEXT_LAYER_CHARS && options.ocr) {
        const ocr = options.ocr;
        const png = await pageImage(pdfjs, page, options.signal).catch((err: unknown) => {
          throwIfAborted(options.signal);
          warnings.push(`page ${number}: its image cannot be read (${(err as Error).message})`);
          return null;
        });
        if (png) {
          throwIfAborted(options.signal);
          const result = await abortable(ocr(png, number), options.signal).catch((err: unknown) => {
            // The image's fault (OCR says retrying cannot help) costs this page only; a busy or broken OCR fails the step, to be retried.
            if (options.signal?.aborted || isRetryable(err)) throw err;
            warnings.push(`page ${number}: OCR failed (${(err as Error).message})`);
            return null;
          });
          if (result) {
            ocrPages.push(number);
            raw.push({ number, lines, ocrText: result.text });
            if (result.confidence < 50) warnings.push(`page ${number}: OCR confidence ${Math.round(result.confidence)}`);
            page.cleanup();
            options.onProgress?.(number, pdf.numPages);
            continue;
          }
        }
      }
      raw.push({ number, lines });
      page.cleanup();
      options.onProgress?.(number, pdf.numPages);
    }
    const pages = layoutPages(raw);
    const info = (await pdf.getMetadata().catch(() => null))?.info as { Title?: unknown } | undefined;
    const metaTitle = typeof info?.Title === 'string' ? info.Title.replace(/\s+/g, ' ').trim() : '';
    const firstHeading = pages[0]?.headings.find((h) => h.offset === 0)?.text ?? null;
    return { pages, ocrPages, pagesWithoutText, title: metaTitle || firstHeading, warnings };
  } finally {
    await task.destroy().catch(() => undefined);
  }
}

async function textLines(page: PdfPage): Promise<Line[]> {
  const content = await page.getTextContent();
  const lines: Line[] = [];
  let current: Line | null = null;
  for (const item of content.items) {
    if (!('str' in item)) continue;
    if (item.str) {
      const t = item.transform as number[];
      const size = Math.abs(item.height) || Math.hypot(t[2]!, t[3]!);
      if (!current) current = { text: '', y: t[5]!, x: t[4]!, size: 0 };
      // Spaces and empty runs carry no size of their own.
      if (item.str.trim()) current.size = Math.max(current.size, size);
      current.text += item.str;
    }
    if (item.hasEOL && current) {
      lines.push(current);
      current = null;
    }
  }
  if (current) lines.push(current);
  return lines.filter((line) => line.text.trim());
}

/** Characters a reader would see: not spaces, not private-use glyphs of a font without a Unicode map. */
function readableChars(lines: Line[]): number {
  let n = 0;
  for (const line of lines) n += (line.text.match(/[\p{L}\p{N}\p{P}\p{S}]/gu) ?? []).length - (line.text.match(/[\uE000-\uF8FF\uFFFD]/gu) ?? []).length;
  return n;
}

const PAGE_NUMBER = /^(?:[-–—]\s*)?(?:page|p\.|стр\.?|страница|с\.)?\s*\d{1,4}(?:\s*(?:of|из|\/)\s*\d{1,4})?(?:\s*[-–—])?$/i;

/**
 * Lines → paragraphs and headings, knowing the whole document: the body text size is the
 * size most characters are set in, and running headers and footers are the first or last
 * lines repeated on most pages.
 */
function layoutPages(raw: RawPage[]): ExtractedPage[] {
  const sizeChars = new Map<number, number>();
  for (const page of raw) {
    if (page.ocrText !== undefined) continue;
    for (const line of page.lines) {
      const size = Math.round(line.size * 2) / 2;
      sizeChars.set(size, (sizeChars.get(size) ?? 0) + line.text.length);
    }
  }
  let body = 0;
  let most = -1;
  for (const [size, chars] of sizeChars) if (chars > most || (chars === most && size < body)) [body, most] = [size, chars];
  const isHeadingLine = (line: Line) => body > 0 && line.size >= body * 1.15 && line.text.length <= 150 && /\p{L}/u.test(line.text);
  const headingSizes = [...new Set(raw.flatMap((p) => (p.ocrText === undefined ? p.lines.filter(isHeadingLine).map((l) => Math.round(l.size * 2) / 2) : [])))].sort((a, b) => b - a);
  const levelOf = (size: number) => Math.min(6, headingSizes.indexOf(Math.round(size * 2) / 2) + 1);
  const furniture = runningLines(raw);

  return raw.map((page) => {
    if (page.ocrText !== undefined) {
      return assemblePage(page.ocrText.split(/\n\s*\n/).map((text) => ({ text })), page.number);
    }
    const lines = page.lines.filter((line, i) => {
      const edge = i === 0 || i === page.lines.length - 1;
      return !(edge && (furniture.has(furnitureKey(line.text)) || PAGE_NUMBER.test(line.text.trim())));
    });
    const leading = typicalLeading(lines);
    const blocks: Block[] = [];
    let block: string[] = [];
    let blockHeading: number | undefined;
    for (const [i, line] of lines.entries()) {
      const previous = lines[i - 1];
      const heading = isHeadingLine(line) ? levelOf(line.size) : undefined;
      let breaks = !previous || heading !== blockHeading;
      if (!breaks && previous) {
        const dy = previous.y - line.y;
        const lineLeading = leading ?? line.size * 1.2;
        // Up the page (a new column), a gap wider than a line and a half, or an indented first line after a sentence.
        breaks = dy <= 0 || dy > lineLeading * 1.5 || (line.x > previous.x + line.size && /[.!?:;»"”)]$/.test(previous.text.trim()));
        if (heading && Math.abs(line.size - previous.size) > 0.5) breaks = true;
      }
      if (breaks && block.length) {
        blocks.push({ text: block.join('\n'), heading: blockHeading });
        block = [];
      }
      blockHeading = heading;
      block.push(line.text);
    }
    if (block.length) blocks.push({ text: block.join('\n'), heading: blockHeading });
    return assemblePage(blocks, page.number);
  });
}

/** The usual distance between consecutive baselines of body lines on a page. */
function typicalLeading(lines: Line[]): number | null {
  const gaps: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const dy = lines[i - 1]!.y - lines[i]!.y;
    if (dy > 0 && Math.abs(lines[i - 1]!.size - lines[i]!.size) < 0.5) gaps.push(dy);
  }
  if (gaps.length < 2) return null;
  gaps.sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)]!;
}

const furnitureKey = (text: string) => text.trim().toLowerCase().replace(/\d+/g, '#').replace(/\s+/g, ' ');

/** First or last lines that repeat (numbers aside) on at least half of the pages, three at least. */
function runningLines(raw: RawPage[]): Set<string> {
  const textPages = raw.filter((p) => p.ocrText === undefined && p.lines.length > 1);
  const found = new Set<string>();
  if (textPages.length < 3) return found;
  for (const pick of [(p: RawPage) => p.lines[0]!, (p: RawPage) => p.lines[p.lines.length - 1]!]) {
    const counts = new Map<string, number>();
    for (const page of textPages) {
      const key = furnitureKey(pick(page).text);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    for (const [key, count] of counts) if (count >= Math.max(3, textPages.length / 2) && key.length <= 200) found.add(key);
  }
  return found;
}

interface PlacedImage {
  width: number;
  height: number;
  /** 1: one bit per pixel, 1 = white; 2: RGB; 3: RGBA (pdf.js ImageKind). */
  kind: 1 | 2 | 3;
  data: Uint8Array | Uint8ClampedArray;
  /** A stencil mask: 0 bits are painted (black), 1 bits leave what is below. */
  mask: boolean;
  /** Image unit square → device pixels of the page at scale 1. */
  matrix: Matrix;
}

const multiply = (m: Matrix, n: Matrix): Matrix => [
  m[0] * n[0] + m[2] * n[1],
  m[1] * n[0] + m[3] * n[1],
  m[0] * n[2] + m[2] * n[3],
  m[1] * n[2] + m[3] * n[3],
  m[0] * n[4] + m[2] * n[5] + m[4],
  m[1] * n[4] + m[3] * n[5] + m[5],
];

/**
 * The page as a grayscale PNG, made of the images its operator list paints (each one
 * placed through its transformation matrix and the page's rotation), or null when it
 * paints none worth reading.
 */
async function pageImage(pdfjs: PdfJs, page: PdfPage, signal: AbortSignal | undefined): Promise<Buffer | null> {
  const { OPS } = pdfjs;
  const operators = await page.getOperatorList();
  const viewport = page.getViewport({ scale: 1 });
  const pageArea = viewport.width * viewport.height;
  const stack: Matrix[] = [];
  let ctm = viewport.transform.slice() as Matrix;
  let annotationDepth = 0;
  const placed: PlacedImage[] = [];
  const objectData = (id: string) =>
    new Promise<Record<string, unknown> | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), IMAGE_TIMEOUT_MS);
      const store = id.startsWith('g_') ? page.commonObjs : page.objs;
      try {
        store.get(id, (value: unknown) => {
          clearTimeout(timer);
          resolve((value as Record<string, unknown>) ?? null);
        });
      } catch {
        clearTimeout(timer);
        resolve(null);
      }
    });
  const place = (image: Record<string, unknown> | null, matrix: Matrix, mask: boolean) => {
    if (!image || annotationDepth > 0) return;
    const width = Number(image.width);
    const height = Number(image.height);
    const data = image.data as Uint8Array | undefined;
    const kind = mask ? 1 : (Number(image.kind) as 1 | 2 | 3);
    if (!data || !(width > 0) || !(height > 0) || ![1, 2, 3].includes(kind)) return;
    const expected = kind === 1 ? Math.ceil(width / 8) * height : width * height * (kind === 2 ? 3 : 4);
    if (data.length < expected) return;
    // Device area of the unit square: a logo or a bullet is not the page.
    const area = Math.abs(matrix[0] * matrix[3] - matrix[1] * matrix[2]);
    if (area < pageArea * 0.01) return;
    placed.push({ width, height, kind, data, mask, matrix });
  };

  for (let i = 0; i < operators.fnArray.length; i++) {
    const fn = operators.fnArray[i];
    const args = operators.argsArray[i] as unknown[];
    switch (fn) {
      case OPS.save:
        stack.push(ctm);
        break;
      case OPS.restore:
        ctm = stack.pop() ?? ctm;
        break;
      case OPS.transform:
        ctm = multiply(ctm, args as Matrix);
        break;
      case OPS.paintFormXObjectBegin:
        stack.push(ctm);
        if (Array.isArray(args[0]) || ArrayBuffer.isView(args[0])) ctm = multiply(ctm, Array.from(args[0] as number[]) as Matrix);
        break;
      case OPS.paintFormXObjectEnd:
        ctm = stack.pop() ?? ctm;
        break;
      case OPS.beginAnnotation:
        annotationDepth++;
        break;
      case OPS.endAnnotation:
        annotationDepth--;
        break;
      case OPS.paintImageXObject:
        place(await objectData(String(args[0])), ctm, false);
        break;
      case OPS.paintInlineImageXObject:
        place(args[0] as Record<string, unknown>, ctm, false);
        break;
      case OPS.paintImageMaskXObject: {
        const mask = args[0] as Record<string, unknown>;
        place(typeof mask.data === 'string' ? await objectData(mask.data) : mask, ctm, true);
        break;
      }
      case OPS.paintImageXObjectRepeat: {
        const image = await objectData(String(args[0]));
        const [scaleX, scaleY, positions] = [Number(args[1]), Number(args[2]), args[3] as number[]];
        for (let p = 0; p + 1 < positions.length; p += 2) place(image, multiply(ctm, [scaleX, 0, 0, scaleY, positions[p]!, positions[p + 1]!]), false);
        break;
      }
      default:
        break;
    }
  }
  throwIfAborted(signal);
  if (placed.length === 0) return null;
  return composeGray(placed, viewport.width, viewport.height);
}

/** Paints the images, in order, onto a white grayscale canvas cropped to where they are. */
function composeGray(images: PlacedImage[], pageWidth: number, pageHeight: number): Buffer | null {
  // As fine as the finest image, within OCR's useful range and a memory budget.
  let scale = 1;
  for (const image of images) {
    const area = Math.abs(image.matrix[0] * image.matrix[3] - image.matrix[1] * image.matrix[2]);
    scale = Math.max(scale, Math.sqrt((image.width * image.height) / area));
  }
  scale = Math.min(scale, MAX_OCR_SCALE);
  let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const { matrix: m } of images) {
    for (const [u, v] of [[0, 0], [1, 0], [0, 1], [1, 1]] as const) {
      const x = m[0] * u + m[2] * v + m[4];
      const y = m[1] * u + m[3] * v + m[5];
      [minX, minY, maxX, maxY] = [Math.min(minX, x), Math.min(minY, y), Math.max(maxX, x), Math.max(maxY, y)];
    }
  }
  [minX, minY, maxX, maxY] = [Math.max(0, minX), Math.max(0, minY), Math.min(pageWidth, maxX), Math.min(pageHeight, maxY)];
  if (maxX - minX < 1 || maxY - minY < 1) return null;
  scale = Math.min(scale, Math.sqrt(MAX_OCR_PIXELS / ((maxX - minX) * (maxY - minY))));
  const width = Math.max(1, Math.round((maxX - minX) * scale));
  const height = Math.max(1, Math.round((maxY - minY) * scale));
  const canvas = Buffer.alloc(width * height, 255);

  for (const image of images) {
    const m = image.matrix;
    // Canvas pixel centre → page device space → image unit square (u right, v up).
    const det = m[0] * m[3] - m[1] * m[2];
    if (Math.abs(det) < 1e-9) continue;
    const ia = m[3] / det;
    const ib = -m[1] / det;
    const ic = -m[2] / det;
    const id = m[0] / det;
    const ie = (m[2] * m[5] - m[3] * m[4]) / det;
    const iff = (m[1] * m[4] - m[0] * m[5]) / det;
    const { width: w, height: h, data, kind, mask } = image;
    const rowBytes = Math.ceil(w / 8);
    for (let py = 0; py < height; py++) {
      const y = minY + (py + 0.5) / scale;
      let x = minX + 0.5 / scale;
      let u = ia * x + ic * y + ie;
      let v = ib * x + id * y + iff;
      const du = ia / scale;
      const dv = ib / scale;
      for (let px = 0; px < width; px++, u += du, v += dv, x += 1 / scale) {
        if (u < 0 || u >= 1 || v < 0 || v >= 1) continue;
        const col = Math.min(w - 1, Math.floor(u * w));
        const row = Math.min(h - 1, Math.floor((1 - v) * h));
        const at = py * width + px;
        if (kind === 1) {
          const white = (data[row * rowBytes + (col >> 3)]! >> (7 - (col & 7))) & 1;
          if (mask) {
            if (!white) canvas[at] = 0;
          } else canvas[at] = white ? 255 : 0;
        } else if (kind === 2) {
          const o = (row * w + col) * 3;
          canvas[at] = (data[o]! * 299 + data[o + 1]! * 587 + data[o + 2]! * 114) / 1000;
        } else {
          const o = (row * w + col) * 4;
          if (data[o + 3]! >= 128) canvas[at] = (data[o]! * 299 + data[o + 1]! * 587 + data[o + 2]! * 114) / 1000;
        }
      }
    }
  }
  return encodeGrayPng(canvas, width, height);
}
