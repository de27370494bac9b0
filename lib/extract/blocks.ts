import { normalizeText } from './normalize.ts';
import type { ExtractedPage, Heading } from './types.ts';

/** A paragraph as a format reader sees it; `heading` is its level when it is a heading. */
export interface Block {
  text: string;
  heading?: number;
}

/** Normalizes each block and joins them into one page, keeping where each heading starts. */
export function assemblePage(blocks: Block[], page: number | null): ExtractedPage {
  const parts: string[] = [];
  const headings: Heading[] = [];
  let offset = 0;
  for (const block of blocks) {
    const text = normalizeText(block.text);
    if (!text) continue;
    if (block.heading) headings.push({ offset, text: text.replace(/\n+/g, ' '), level: block.heading });
    parts.push(text);
    offset += text.length + 2;
  }
  return { page, text: parts.join('\n\n'), headings };
}
