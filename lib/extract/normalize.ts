export { detectLanguage, isStopword } from './language.ts';

const LIGATURES: Record<string, string> = { 'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl', 'ﬃ': 'ffi', 'ﬄ': 'ffl', 'ﬅ': 'st', 'ﬆ': 'st' };

/**
 * Russian pronouns that take a hyphenated particle (кто-то, где-нибудь, кое-как): a line
 * break right after their hyphen is a real hyphen, not a word broken in two.
 */
const PRONOUN = /^(?:кто|что|где|куда|когда|как|какой|какая|какое|какие|каков|чей|чья|чьё|чьи|зачем|почему|откуда|сколько|кого|кому|кем|ком|чего|чему|чем|чём|какого|какому|каким|каком|какую)$/i;
const PARTICLE = /^(?:то|либо|нибудь)$/i;

/**
 * Text as the index wants it: Unicode NFC, Latin ligatures spelled out, words hyphenated
 * across a line break joined again, control and zero-width characters gone, spaces
 * collapsed, paragraphs kept as blank lines (the only line breaks left).
 */
export function normalizeText(raw: string): string {
  let text = raw
    .normalize('NFC')
    .replace(/\r\n?|\u2028|\u0085/g, '\n')
    .replace(/\u2029/g, '\n\n')
    .replace(/[\u00ad\u200b-\u200d\u2060\ufeff]/g, '')
    .replace(/[\ufb00-\ufb06]/g, (ligature) => LIGATURES[ligature] ?? ligature);
  // "инфор-\nмация" → "информация", "exam-\nple" → "example"; "кто-то" and "e-mail" stay,
  // and so does a hyphen before an upper-case word (a dash before a name, a list).
  // The lookbehind starts a try only at a word's first letter: without it a long letter
  // run with no hyphen after it was scanned again from each of its letters (quadratic).
  text = text.replace(/(?<!\p{L})(\p{L}+)[-\u2010\u00ac][ \t]*\n[ \t]*(\p{Ll}+)/gu, (whole, left: string, right: string) =>
    (PRONOUN.test(left) || /^ко[ей]$/i.test(left)) && (PARTICLE.test(right) || /^ко[ей]$/i.test(left)) ? `${left}-${right}` : left + right,
  );
  text = text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ufffe\uffff]/g, ' ');
  text = text.replace(/[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/g, ' ');
  return text
    .split(/\n[ \t]*\n+/)
    .map((paragraph) => paragraph.replace(/ *\n */g, ' ').replace(/ {2,}/g, ' ').trim())
    .filter(Boolean)
    .join('\n\n');
}
