/**
 * Marker characters a marked excerpt may carry, which `renderSnippet` turns into <mark>
 * tags while escaping everything else, so a chunk containing "<script>" shows as text.
 * Headlines (lib/search/headline.ts) write their HTML themselves and leave a text that
 * holds these characters to the leading excerpt, as before.
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
