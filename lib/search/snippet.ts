/**
 * Headlines (lib/search/headline.ts) mark matches with private-use characters; the text
 * is then HTML-escaped and only they become <mark> tags, so a chunk containing
 * "<script>" shows as text and the highlighting cannot be forged by the document.
 */
export const MARK_START = '\ue000';
export const MARK_END = '\ue001';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** HTML of a headline: escaped text, balanced <mark>…</mark> around matches. */
export function renderSnippet(headline: string): string {
  let open = false;
  let out = '';
  for (const part of headline.split(/([\ue000\ue001])/)) {
    if (part === MARK_START) {
      if (!open) out += '<mark>';
      open = true;
    } else if (part === MARK_END) {
      if (open) out += '</mark>';
      open = false;
    } else {
      out += escapeHtml(part);
    }
  }
  return open ? `${out}</mark>` : out;
}

/** The start of a text, cut at a word boundary, for hits the headline cannot mark. */
export function leadingExcerpt(text: string, maxChars = 240): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= maxChars) return flat;
  const cut = flat.slice(0, maxChars);
  const space = cut.lastIndexOf(' ');
  return `${space > maxChars / 2 ? cut.slice(0, space) : cut} …`;
}
