/**
 * Script checks for OCR output (eng+rus). Recognising with both languages at once lets
 * tesseract read a Latin word as Cyrillic look-alikes («ог» for "or», «депег1с» for
 * "generic"), which search can never find. The pool therefore looks at each page's
 * words: a page written in one script is recognised again with that language alone,
 * and any word still mixing the two scripts has its look-alike letters mapped to the
 * script of the rest of the word.
 */

export type Script = 'latin' | 'cyrillic';

const LATIN = /\p{Script=Latin}/u;
const CYRILLIC = /\p{Script=Cyrillic}/u;

/** Look-alike letters, Cyrillic → Latin (and back). */
const CYR_TO_LAT: Record<string, string> = {
  а: 'a', в: 'B', е: 'e', к: 'k', м: 'M', н: 'H', о: 'o', р: 'p', с: 'c', т: 'T', у: 'y', х: 'x', г: 'r', п: 'n', ь: 'b', і: 'i',
  А: 'A', В: 'B', Е: 'E', К: 'K', М: 'M', Н: 'H', О: 'O', Р: 'P', С: 'C', Т: 'T', У: 'Y', Х: 'X', І: 'I',
};
const LAT_TO_CYR: Record<string, string> = {
  a: 'а', e: 'е', o: 'о', p: 'р', c: 'с', y: 'у', x: 'х', k: 'к', m: 'м', r: 'г', n: 'п', b: 'ь',
  A: 'А', B: 'В', E: 'Е', K: 'К', M: 'М', H: 'Н', O: 'О', P: 'Р', C: 'С', T: 'Т', Y: 'У', X: 'Х',
};

export function scriptOf(word: string): Script | 'mixed' | null {
  let latin = 0;
  let cyrillic = 0;
  for (const ch of word) {
    if (LATIN.test(ch)) latin++;
    else if (CYRILLIC.test(ch)) cyrillic++;
  }
  if (latin && cyrillic) return 'mixed';
  return latin ? 'latin' : cyrillic ? 'cyrillic' : null;
}

export interface ScriptCensus {
  latin: number;
  cyrillic: number;
  mixed: number;
  /** The script of at least `share` of the page's words, if one is. */
  dominant: Script | null;
}

export function scriptCensus(text: string, share = 0.8): ScriptCensus {
  const census = { latin: 0, cyrillic: 0, mixed: 0 };
  for (const word of text.match(/[\p{L}\p{N}]+/gu) ?? []) {
    const s = scriptOf(word);
    if (s) census[s]++;
  }
  const words = census.latin + census.cyrillic + census.mixed;
  const dominant = words === 0 ? null : census.latin >= share * words ? 'latin' : census.cyrillic >= share * words ? 'cyrillic' : null;
  return { ...census, dominant };
}

/** Words mixing Latin and Cyrillic letters, mapped to the script most of their letters (or the page) use. */
export function repairMixedWords(text: string, page: Script | null): string {
  return text.replace(/[\p{L}\p{N}]+/gu, (word) => {
    if (scriptOf(word) !== 'mixed') return word;
    let latin = 0;
    let cyrillic = 0;
    for (const ch of word) {
      if (LATIN.test(ch)) latin++;
      else if (CYRILLIC.test(ch)) cyrillic++;
    }
    const target: Script = latin === cyrillic ? (page ?? 'latin') : latin > cyrillic ? 'latin' : 'cyrillic';
    const map = target === 'latin' ? CYR_TO_LAT : LAT_TO_CYR;
    const repaired = [...word].map((ch) => map[ch] ?? ch).join('');
    // A letter with no look-alike stays as it was: better one odd word than a wrong one.
    return repaired;
  });
}

/** Character similarity (1 − edit distance / longer length) of two texts, whitespace folded. */
export function characterSimilarity(a: string, b: string): number {
  const x = a.replace(/\s+/g, ' ').trim();
  const y = b.replace(/\s+/g, ' ').trim();
  if (!x.length && !y.length) return 1;
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const current = [i];
    for (let j = 1; j <= y.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    previous = current;
  }
  return 1 - previous[y.length]! / Math.max(x.length, y.length);
}
