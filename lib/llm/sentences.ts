/**
 * Sentences of a retrieved chunk, for extractive answers (ru and en).
 *
 * Intl.Segmenter (ICU) does the splitting; what ICU gets wrong on document text is
 * repaired after: it breaks after every abbreviation followed by a capital ("e.g. DER",
 * "Mr. Smith", "стр. 5", "И. И. Иванов") and inside URLs at "?" or "!". Decimals,
 * versions ("3.2.1", "ASN.1") and host names ("gnu.org") have no space after the dot,
 * so ICU keeps them whole. Lines of lists, commands and tables stay their own units;
 * wrapped prose lines are joined first.
 */

export interface Sentence {
  text: string;
  /** Came from a line of a list, a command, code or a table rather than from prose. */
  structural: boolean;
}

/** Never end a sentence: a title or a Latin/Russian shorthand always followed by more. */
const ALWAYS_JOIN = new Set(
  'mr mrs ms messrs mme dr prof rev gen col lt capt sgt gov sen rep hon fr pres sr jr st mt v vs e.g i.e cf approx incl resp им ул пр-т проф акад доц см т.е т.к напр тов гр г-н г-жа'.split(' '),
);
/** End a sentence unless a number follows: "p. 5", "No. 3", "c. 1500", "стр. 12", "ст. 15", "рис. 2". */
const JOIN_BEFORE_NUMBER = new Set('no nos vol pp p fig figs sec sect art ch eq ed ca c стр с рис табл п пп ст ч гл разд вып т'.split(' '));

const URL_OR_EMAIL = /\b(?:https?:\/\/|ftp:\/\/|www\.)[^\s<>"]+|[\p{L}\p{N}._%+-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)+/giu;
const STRUCTURAL_LINE = /^\s*(?:[-*•·▪◦‣>#|$]|\d{1,3}[.)]\s|[a-zа-я][.)]\s)|\t|\S {2,}\S|\|.*\||[{};]\s*$|^\s{2,}\S/u;

const segmenters = new Map<string, Intl.Segmenter>();
function segmenter(locale: string): Intl.Segmenter {
  let s = segmenters.get(locale);
  if (!s) segmenters.set(locale, (s = new Intl.Segmenter(locale, { granularity: 'sentence' })));
  return s;
}

export function splitSentences(text: string): Sentence[] {
  const out: Sentence[] = [];
  for (const block of text.split(/\n[ \t]*\n/)) {
    let prose: string[] = [];
    const flush = () => {
      if (prose.length) for (const s of splitProse(prose.join(' '))) out.push({ text: s, structural: false });
      prose = [];
    };
    for (const line of block.split('\n')) {
      if (!line.trim()) continue;
      if (STRUCTURAL_LINE.test(line)) {
        flush();
        out.push({ text: line.replace(/\s+/g, ' ').trim(), structural: true });
      } else prose.push(line.trim());
    }
    flush();
  }
  return out.filter((s) => /[\p{L}\p{N}]/u.test(s.text));
}

/** One paragraph of prose → its sentences. */
export function splitProse(paragraph: string): string[] {
  const text = paragraph.replace(/\s+/g, ' ').trim();
  if (!text) return [];
  const cyrillic = (text.match(/\p{Script=Cyrillic}/gu) ?? []).length;
  const latin = (text.match(/\p{Script=Latin}/gu) ?? []).length;
  const protectedSpans = [...text.matchAll(URL_OR_EMAIL)].map((m) => {
    // A URL's trailing punctuation belongs to the sentence.
    const core = m[0].replace(/[.,;:!?)\]]+$/, '');
    return [m.index!, m.index! + core.length] as const;
  });
  const insideProtected = (at: number) => protectedSpans.some(([from, to]) => at > from && at < to);

  const pieces: string[] = [];
  for (const { segment, index } of segmenter(cyrillic > latin ? 'ru' : 'en').segment(text)) {
    const previous = pieces.at(-1);
    if (previous !== undefined && (insideProtected(index) || continues(previous, segment))) pieces[pieces.length - 1] = previous + segment;
    else pieces.push(segment);
  }
  return pieces.map((p) => p.trim()).filter(Boolean);
}

/** Whether the break ICU put between `before` and `after` is not a sentence end. */
function continues(before: string, after: string): boolean {
  const next = after.trimStart();
  // Sentences do not start in lower case: "etc. and", "г. в Москве", "a.m. on".
  if (/^\p{Ll}/u.test(next)) return true;
  const last = /(?:^|[\s(«"'“])([\p{L}.-]+)\.\s*$/u.exec(before)?.[1];
  if (!last) return false;
  const word = last.toLowerCase();
  if (ALWAYS_JOIN.has(word)) return true;
  if (JOIN_BEFORE_NUMBER.has(word) && /^[\d(IVXLC]/.test(next)) return true;
  // "Jones et al. 1998", "Smith et al. (2004)": a citation goes on; "…et al. The" may end one.
  if (word === 'al' && /\bet al\.\s*$/i.test(before) && /^[\d(]/.test(next)) return true;
  // An initial or a capitals' abbreviation: "J. R. R. Tolkien", "И. И. Иванов", "U.S. Army".
  // Lower-case ones ("т.д.", "т.п.", "a.m.") often end a sentence, so a capital after them starts one.
  if (/^\p{Lu}$/u.test(last) || /^(?:\p{Lu}\.)+\p{Lu}$/u.test(last)) return true;
  return false;
}
