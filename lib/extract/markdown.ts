import { assemblePage, type Block } from './blocks.ts';
import type { ExtractedPage } from './types.ts';

/**
 * Markdown as text: ATX (`#`) and setext (`===`, `---` underlined) headings kept as
 * headings; front matter, HTML comments, link, emphasis and table markup dropped; code kept.
 */
export function extractMarkdown(source: string): { pages: ExtractedPage[]; title: string | null } {
  const blocks: Block[] = [];
  let paragraph: string[] = [];
  let fence: string | null = null;
  const flush = () => {
    if (paragraph.length) blocks.push({ text: paragraph.join('\n') });
    paragraph = [];
  };
  let text = source.replace(/\r\n?/g, '\n').replace(/<!--[\s\S]*?-->/g, '');
  // YAML front matter: metadata, not content; its title is the document's.
  let frontTitle: string | null = null;
  const front = /^---\n([\s\S]*?)\n(?:---|\.\.\.)\n/.exec(text);
  if (front) {
    frontTitle = /^title:\s*["']?(.*?)["']?\s*$/m.exec(front[1]!)?.[1] || null;
    text = text.slice(front[0].length);
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fenceMark = /^\s{0,3}(```+|~~~+)/.exec(line)?.[1];
    if (fenceMark && (fence === null || fenceMark.startsWith(fence))) {
      fence = fence === null ? fenceMark : null;
      flush();
      continue;
    }
    if (fence !== null) {
      paragraph.push(line);
      continue;
    }
    const heading = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    const underline = paragraph.length === 0 && line.trim() && /^\s{0,3}(=+|-+)\s*$/.exec(lines[i + 1] ?? '');
    if (heading) {
      flush();
      blocks.push({ text: inline(heading[2]!), heading: heading[1]!.length });
    } else if (underline && !/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      blocks.push({ text: inline(line.trim()), heading: underline[1]!.startsWith('=') ? 1 : 2 });
      i++;
    } else if (/^\s*$/.test(line)) flush();
    else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) flush();
    else if (/^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(line)) continue; // a table's header rule
    else paragraph.push(inline(line.replace(/^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?/, '').replace(/^\s*(?:>\s?)+/, '').replace(/\s*\|\s*/g, ' ').trim()));
  }
  flush();
  const first = blocks.find((b) => b.heading === 1);
  return { pages: [assemblePage(blocks, null)], title: frontTitle ?? first?.text.trim() ?? null };
}

function inline(text: string): string {
  return text
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\[([^\]]+)\]\([^)]*\)/g, '$1')
    .replace(/\[([^\]]+)\]\[[^\]]*\]/g, '$1')
    .replace(/<(https?:[^>\s]+)>/g, '$1')
    .replace(/<\/?[a-zA-Z][^>]*>/g, '')
    .replace(/(\*\*|__)(.+?)\1/g, '$2')
    .replace(/~~(.+?)~~/g, '$1')
    .replace(/(^|[\s(])[*_]([^*_\s][^*_]*?)[*_](?=[\s).,;:!?]|$)/g, '$1$2')
    .replace(/`([^`]+)`/g, '$1')
    .replace(/\\([\\`*_{}[\]()#+\-.!|>])/g, '$1');
}
