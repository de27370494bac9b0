const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** The start of a text, cut at a word boundary, for hits the headline cannot mark. */
function leadingExcerpt(text: string, maxChars = 240): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= maxChars) return flat;
  const cut = flat.slice(0, maxChars);
  const space = cut.lastIndexOf(' ');
  return `${space > maxChars / 2 ? cut.slice(0, space) : cut} …`;
}

/**
 * The snippet of a hit no headline marks: its leading excerpt as escaped HTML. Nothing
 * in a document's own text can become markup here, not even a highlight.
 */
export function excerptHtml(text: string): string {
  return escapeHtml(leadingExcerpt(text));
}
