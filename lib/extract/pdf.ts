import { PNG } from 'pngjs';
import { extractImages, getDocumentProxy } from 'unpdf';
import { RagmeshError } from '../errors.ts';
import { assemblePage } from './blocks.ts';
import type { ExtractedPage, ExtractLimits, ExtractOptions } from './types.ts';

/** A page with less text than this has no real text layer (a scan with a page number, say). */
const MIN_TEXT_LAYER_CHARS = 16;

/**
 * Text per page from the PDF's text layer; a page without one is a scan: its largest
 * image is pulled out of the page (no rendering, no native canvas) and read by OCR.
 */
export async function extractPdf(bytes: Buffer, options: ExtractOptions, limits: ExtractLimits): Promise<{ pages: ExtractedPage[]; ocrPages: number[]; title: string | null; warnings: string[] }> {
  let pdf: Awaited<ReturnType<typeof getDocumentProxy>>;
  try {
    // pdf.js may take ownership of the buffer it is given: hand it a copy.
    pdf = await getDocumentProxy(new Uint8Array(bytes), { verbosity: 0, disableFontFace: true, useSystemFonts: false });
  } catch (err) {
    throw unreadable(`the PDF cannot be parsed (${(err as Error).message})`);
  }
  try {
    if (pdf.numPages > limits.maxPages) {
      throw new RagmeshError(`The PDF has ${pdf.numPages} pages; at most ${limits.maxPages} are accepted`, 413, 'TOO_MANY_PAGES', { pages: pdf.numPages });
    }
    const pages: ExtractedPage[] = [];
    const ocrPages: number[] = [];
    const warnings: string[] = [];
    for (let number = 1; number <= pdf.numPages; number++) {
      if (options.signal?.aborted) throw options.signal.reason;
      let text: string;
      try {
        const content = await (await pdf.getPage(number)).getTextContent();
        text = content.items.map((item) => ('str' in item ? item.str + (item.hasEOL ? '\n' : '') : '')).join('');
      } catch (err) {
        throw unreadable(`page ${number} cannot be read (${(err as Error).message})`);
      }
      if (text.replace(/\s/g, '').length < MIN_TEXT_LAYER_CHARS) {
        const png = await pageImage(pdf, number);
        if (png) {
          if (options.signal?.aborted) throw options.signal.reason;
          const result = await options.ocr(png, number);
          text = result.text;
          ocrPages.push(number);
          if (result.confidence < 50) warnings.push(`page ${number}: OCR confidence ${Math.round(result.confidence)}`);
        }
      }
      // Lines of a paragraph end with a newline; a blank line (or a line ending a sentence
      // followed by a short one) is where paragraphs meet.
      const blocks = text.split(/\n\s*\n/).map((paragraph) => ({ text: paragraph }));
      pages.push(assemblePage(blocks, number));
      options.onProgress?.(number, pdf.numPages);
    }
    const info = (await pdf.getMetadata().catch(() => null))?.info as { Title?: unknown } | undefined;
    return { pages, ocrPages, title: typeof info?.Title === 'string' && info.Title.trim() ? info.Title.trim() : null, warnings };
  } finally {
    await (pdf as unknown as { destroy?: () => Promise<void> }).destroy?.().catch(() => undefined);
  }
}

/** The page's largest image as PNG, or null when it has none. */
async function pageImage(pdf: Awaited<ReturnType<typeof getDocumentProxy>>, number: number): Promise<Buffer | null> {
  let images: Awaited<ReturnType<typeof extractImages>>;
  try {
    images = await extractImages(pdf, number);
  } catch {
    return null;
  }
  const largest = images.sort((a, b) => b.width * b.height - a.width * a.height)[0];
  if (!largest || largest.width < 16 || largest.height < 16) return null;
  const png = new PNG({ width: largest.width, height: largest.height });
  const { data, channels } = largest;
  for (let i = 0, o = 0; o < png.data.length; i += channels, o += 4) {
    const r = data[i]!;
    png.data[o] = r;
    png.data[o + 1] = channels >= 3 ? data[i + 1]! : r;
    png.data[o + 2] = channels >= 3 ? data[i + 2]! : r;
    png.data[o + 3] = channels === 4 ? data[i + 3]! : 255;
  }
  return PNG.sync.write(png);
}

export function unreadable(reason: string): RagmeshError {
  return new RagmeshError(`The file cannot be read: ${reason}`, 422, 'UNREADABLE_FILE');
}
