import { unzipSync } from 'fflate';
import { Parser } from 'htmlparser2';
import { RagmeshError } from '../errors.ts';
import { assemblePage, type Block } from './blocks.ts';
import { unreadable } from './pdf.ts';
import type { ExtractedPage, ExtractLimits } from './types.ts';

const WANTED = new Set(['word/document.xml', 'word/styles.xml', 'docProps/core.xml']);
/** Office XML compresses 5–20×; far beyond that, on something big, is a bomb. */
const BOMB_RATIO = 200;
const BOMB_MIN_BYTES = 2 * 1024 * 1024;

/**
 * Paragraphs and headings of a DOCX. Only the three parts needed are inflated, and
 * only after their declared sizes passed the limits: a zip bomb is refused before a
 * byte of it is expanded, and fflate never writes past a declared size.
 */
export function extractDocx(bytes: Buffer, limits: ExtractLimits): { pages: ExtractedPage[]; title: string | null } {
  let files: Record<string, Uint8Array>;
  let declared = 0;
  try {
    files = unzipSync(bytes, {
      filter(file) {
        declared += file.originalSize;
        if (declared > limits.maxUnpackedBytes || (file.originalSize > BOMB_MIN_BYTES && file.originalSize > file.size * BOMB_RATIO)) {
          throw new RagmeshError(
            `The archive expands to ${file.originalSize} bytes from ${file.size} (limit ${limits.maxUnpackedBytes}): refused as an archive bomb`,
            413,
            'ARCHIVE_BOMB',
          );
        }
        return WANTED.has(file.name);
      },
    });
  } catch (err) {
    if (err instanceof RagmeshError) throw err;
    throw unreadable(`the DOCX archive is damaged (${(err as Error).message})`);
  }
  const document = files['word/document.xml'];
  if (!document) throw unreadable('the DOCX has no word/document.xml');
  const headingStyles = headingLevels(files['word/styles.xml']);
  const blocks = paragraphs(Buffer.from(document).toString('utf8'), headingStyles);
  return { pages: [assemblePage(blocks, null)], title: coreTitle(files['docProps/core.xml']) };
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
        if (name === 'w:outlinelvl' && current && !levels.has(current)) levels.set(current, Number(attrs['w:val'] ?? 0) + 1);
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
  let text = '';
  let style: string | null = null;
  let inText = false;
  const parser = new Parser(
    {
      onopentag(name, attrs) {
        if (name === 'w:p') {
          text = '';
          style = null;
        } else if (name === 'w:pstyle') style = attrs['w:val'] ?? null;
        else if (name === 'w:t') inText = true;
        else if (name === 'w:tab') text += ' ';
        else if (name === 'w:br' || name === 'w:cr') text += '\n';
      },
      ontext(chunk) {
        if (inText) text += chunk;
      },
      onclosetag(name) {
        if (name === 'w:t') inText = false;
        else if (name === 'w:p') {
          const level = style ? (headingStyles.get(style) ?? headingLevel(style)) : null;
          blocks.push(level ? { text, heading: level } : { text });
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
