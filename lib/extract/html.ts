import { Parser } from 'htmlparser2';
import { assemblePage, type Block } from './blocks.ts';
import type { ExtractedPage } from './types.ts';

/** Never content: code, styling, and the page furniture around the article. */
const SKIPPED = new Set(['script', 'style', 'noscript', 'template', 'svg', 'math', 'nav', 'header', 'footer', 'aside', 'form', 'iframe', 'button', 'select', 'canvas', 'object', 'head']);
const BLOCK = new Set(['p', 'div', 'section', 'article', 'main', 'li', 'ul', 'ol', 'dl', 'dt', 'dd', 'tr', 'table', 'blockquote', 'pre', 'figure', 'figcaption', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'address', 'details', 'summary']);

/** Readable text of an HTML page: headings kept, scripts, styles and boilerplate dropped. */
export function extractHtml(html: string): { pages: ExtractedPage[]; title: string | null } {
  const blocks: Block[] = [];
  let current = '';
  let heading: number | undefined;
  let skipDepth = 0;
  let inTitle = false;
  let title = '';
  const flush = () => {
    if (current.trim()) blocks.push(heading ? { text: current, heading } : { text: current });
    current = '';
    heading = undefined;
  };
  const parser = new Parser(
    {
      onopentag(name, attrs) {
        if (name === 'title') inTitle = true;
        const hidden = attrs.hidden !== undefined || attrs['aria-hidden'] === 'true' || /display:\s*none/i.test(attrs.style ?? '');
        if (skipDepth > 0 || SKIPPED.has(name) || hidden || attrs.role === 'navigation') {
          if (!VOID.has(name)) skipDepth++;
          return;
        }
        if (name === 'br') current += '\n';
        else if (name === 'td' || name === 'th') current += ' ';
        else if (BLOCK.has(name)) {
          flush();
          const level = /^h([1-6])$/.exec(name);
          if (level) heading = Number(level[1]);
        }
      },
      ontext(text) {
        if (inTitle) title += text;
        else if (skipDepth === 0) current += text;
      },
      onclosetag(name) {
        if (name === 'title') inTitle = false;
        if (skipDepth > 0) {
          // htmlparser2 closes every element it opened (implied closes included); void ones were not counted.
          if (!VOID.has(name)) skipDepth--;
          return;
        }
        if (BLOCK.has(name)) flush();
      },
    },
    { decodeEntities: true, lowerCaseTags: true, recognizeSelfClosing: true },
  );
  parser.end(html);
  flush();
  return { pages: [assemblePage(blocks, null)], title: title.replace(/\s+/g, ' ').trim() || null };
}

const VOID = new Set(['area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr']);
