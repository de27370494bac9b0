import { Parser } from 'htmlparser2';
import { assemblePage, type Block } from './blocks.ts';
import type { ExtractedPage } from './types.ts';

/** Never content: code, styling, and the page furniture around the article. */
const SKIPPED = new Set(['script', 'style', 'noscript', 'template', 'svg', 'math', 'nav', 'aside', 'form', 'iframe', 'button', 'select', 'canvas', 'object', 'head', 'dialog']);
/** The site's header and footer are furniture; an article's own header holds its title. */
const FURNITURE_OUTSIDE_ARTICLE = new Set(['header', 'footer']);
const FURNITURE_ROLES = new Set(['navigation', 'banner', 'contentinfo', 'complementary', 'search', 'menu', 'menubar', 'dialog', 'alertdialog']);
/**
 * Class or id tokens sites give their furniture: the token starts with the name
 * ("sidebar", "nav-menu", "share-buttons"), so a wrapper "has-sidebar" around the
 * article is not taken for one.
 */
const FURNITURE_NAME = /^(?:nav|navbar|navigation|menu|sidebar|breadcrumbs?|cookies?|consent|advert|advertisement|ads|social|share|sharing|related|comments?|footer|masthead|skip-link|visually-hidden|sr-only)(?:[-_]|$)/i;
const furnitureName = (attrs: Record<string, string>) => `${attrs.class ?? ''} ${attrs.id ?? ''}`.split(/\s+/).some((token) => FURNITURE_NAME.test(token));
/** Less text than this after dropping furniture by class names means the names misled: read again without them. */
const SUSPICIOUSLY_LITTLE = 200;
const BLOCK = new Set(['p', 'div', 'section', 'article', 'main', 'header', 'footer', 'caption', 'li', 'ul', 'ol', 'dl', 'dt', 'dd', 'tr', 'table', 'blockquote', 'pre', 'figure', 'figcaption', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'address', 'details', 'summary']);

/** Readable text of an HTML page: headings kept, scripts, styles and boilerplate dropped. */
export function extractHtml(html: string): { pages: ExtractedPage[]; title: string | null } {
  const result = readHtml(html, true);
  if (result.pages[0]!.text.length >= SUSPICIOUSLY_LITTLE) return result;
  const plain = readHtml(html, false);
  return plain.pages[0]!.text.length > result.pages[0]!.text.length * 2 ? plain : result;
}

function readHtml(html: string, byClassNames: boolean): { pages: ExtractedPage[]; title: string | null } {
  const blocks: Block[] = [];
  let current = '';
  let heading: number | undefined;
  let skipDepth = 0;
  let articleDepth = 0;
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
        const hidden = attrs.hidden !== undefined || attrs['aria-hidden'] === 'true' || /display:\s*none|visibility:\s*hidden/i.test(attrs.style ?? '');
        const furniture =
          (FURNITURE_OUTSIDE_ARTICLE.has(name) && articleDepth === 0) ||
          FURNITURE_ROLES.has(attrs.role ?? '') ||
          (byClassNames && name !== 'body' && name !== 'main' && name !== 'article' && furnitureName(attrs));
        if (skipDepth > 0 || SKIPPED.has(name) || hidden || furniture) {
          if (!VOID.has(name)) skipDepth++;
          return;
        }
        if (name === 'article' || name === 'main') articleDepth++;
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
        if (name === 'article' || name === 'main') articleDepth--;
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
