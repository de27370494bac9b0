import { assemblePage, type Block } from './blocks.ts';
import type { ExtractedPage } from './types.ts';

/** Markdown as text: `#` headings kept as headings, link and emphasis markup dropped, code kept. */
export function extractMarkdown(source: string): { pages: ExtractedPage[]; title: string | null } {
  const blocks: Block[] = [];
  let paragraph: string[] = [];
  let fence = false;
  const flush = () => {
    if (paragraph.length) blocks.push({ text: paragraph.join('\n') });
    paragraph = [];
  };
  for (const line of source.replace(/\r\n?/g, '\n').split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) {
      fence = !fence;
      flush();
      continue;
    }
    if (fence) {
      paragraph.push(line);
      continue;
    }
    const heading = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      flush();
      blocks.push({ text: inline(heading[2]!), heading: heading[1]!.length });
    } else if (/^\s*$/.test(line)) flush();
    else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) flush();
    else paragraph.push(inline(line.replace(/^\s*(?:[-*+]|\d+[.)])\s+/, '').replace(/^\s*>\s?/, '')));
  }
  flush();
  const first = blocks.find((b) => b.heading === 1);
  return { pages: [assemblePage(blocks, null)], title: first?.text.trim() ?? null };
}

function inline(text: string): string {
  return text
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\[([^\]]+)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/(\*\*|__)(.+?)\1/g, '$2')
    .replace(/(^|[\s(])[*_]([^*_\s][^*_]*?)[*_](?=[\s).,;:!?]|$)/g, '$1$2')
    .replace(/`([^`]+)`/g, '$1');
}
