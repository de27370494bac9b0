import { Parser } from 'htmlparser2';
import { assemblePage, type Block } from './blocks.ts';
import { throwIfAborted, unreadable } from './errors.ts';
import type { ExtractedPage, ExtractLimits } from './types.ts';
import { readZipDirectory, readZipEntry, type ZipLimits } from './zip.ts';

/** Office XML compresses 5–20×; far beyond that, on something big, is a bomb. */
const BOMB_RATIO = 200;
const BOMB_MIN_BYTES = 2 * 1024 * 1024;

/**
 * Paragraphs and headings of a DOCX. The zip directory is checked first (declared sizes
 * against the limit, compression ratios), and the three parts needed are inflated step by
 * step with their declared size as a hard cap: a zip bomb, even one whose headers lie, is
 * refused before more than the limit is expanded.
 */
export function extractDocx(bytes: Buffer, limits: ExtractLimits, signal?: AbortSignal): { pages: ExtractedPage[]; title: string | null } {
  const zipLimits: ZipLimits = { maxUnpackedBytes: limits.maxUnpackedBytes, maxRatio: BOMB_RATIO, ratioFloorBytes: BOMB_MIN_BYTES };
  const entries = readZipDirectory(bytes, zipLimits);
  const read = (name: string): Buffer | undefined => {
    const entry = entries.find((e) => e.name === name);
    return entry ? readZipEntry(bytes, entry, zipLimits, () => throwIfAborted(signal)) : undefined;
  };
  const document = read('word/document.xml');
  if (!document) throw unreadable('the DOCX has no word/document.xml');
  const headingStyles = headingLevels(read('word/styles.xml'));
  throwIfAborted(signal);
  const blocks = paragraphs(document.toString('utf8'), headingStyles);
  return { pages: [assemblePage(blocks, null)], title: coreTitle(read('docProps/core.xml')) };
}

/** Style id → heading level, from styles.xml names ("heading 1", "Title") and ids. */
function headingLevels(styles: Uint8Array | undefined): Map<string, number> {
  const levels = new Map<string, number>();
  if (!styles) return levels;
  let current: string | null = null;
  const parser = new Parser(
    {
      onopentag(name, attrs) {
        if (name === 'w:style') current = attrs['w:styleId'] ?? null;
        if (name === 'w:name' && current) {
          const level = headingLevel(attrs['w:val'] ?? '') ?? headingLevel(current);
          if (level) levels.set(current, level);
        }
        // Outline level 9 means body text.
        if (name === 'w:outlinelvl' && current && !levels.has(current) && Number(attrs['w:val']) < 6) levels.set(current, Number(attrs['w:val']) + 1);
      },
      onclosetag(name) {
        if (name === 'w:style') current = null;
      },
    },
    { xmlMode: true, lowerCaseTags: true },
  );
  parser.end(Buffer.from(styles).toString('utf8'));
  return levels;
}

function headingLevel(name: string): number | null {
  const match = /^(?:heading|заголовок)\s*(\d)$/i.exec(name.trim());
  if (match) return Number(match[1]);
  return /^title$/i.test(name.trim()) ? 1 : null;
}

function paragraphs(xml: string, headingStyles: Map<string, number>): Block[] {
  const blocks: Block[] = [];
  // Text boxes put whole paragraphs inside a run of another paragraph: keep a stack.
  const open: Array<{ text: string; style: string | null; outline: number | null }> = [];
  let inText = false;
  let inDeleted = 0;
  const current = () => open[open.length - 1];
  const parser = new Parser(
    {
      onopentag(name, attrs) {
        const p = current();
        if (name === 'w:p') open.push({ text: '', style: null, outline: null });
        else if (name === 'w:del') inDeleted++;
        else if (!p) return;
        else if (name === 'w:pstyle') p.style = attrs['w:val'] ?? null;
        else if (name === 'w:outlinelvl') p.outline = Number(attrs['w:val'] ?? 9) + 1;
        else if (name === 'w:t') inText = inDeleted === 0;
        else if (name === 'w:tab') p.text += ' ';
        else if (name === 'w:br' || name === 'w:cr') p.text += '\n';
        else if (name === 'w:nobreakhyphen') p.text += '-';
      },
      ontext(chunk) {
        const p = current();
        if (inText && p) p.text += chunk;
      },
      onclosetag(name) {
        if (name === 'w:t') inText = false;
        else if (name === 'w:del') inDeleted--;
        else if (name === 'w:p') {
          const p = open.pop();
          if (!p) return;
          const level = (p.style ? (headingStyles.get(p.style) ?? headingLevel(p.style)) : null) ?? (p.outline !== null && p.outline <= 6 ? p.outline : null);
          blocks.push(level ? { text: p.text, heading: level } : { text: p.text });
        }
      },
    },
    { xmlMode: true, lowerCaseTags: true, decodeEntities: true },
  );
  parser.end(xml);
  return blocks;
}

function coreTitle(core: Uint8Array | undefined): string | null {
  if (!core) return null;
  const match = /<dc:title>([^<]*)<\/dc:title>/.exec(Buffer.from(core).toString('utf8'));
  return match?.[1]?.trim() || null;
}
