/**
 * Text as the index wants it: Unicode NFC, words hyphenated across a line break joined
 * again, control characters gone, spaces collapsed, paragraphs kept as blank lines.
 */
export function normalizeText(raw: string): string {
  let text = raw.normalize('NFC').replace(/\r\n?/g, '\n').replace(/\u00ad/g, '');
  // "инфор-\nмация" → "информация", "exam-\nple" → "example"; "кто-то" and "e-mail" stay,
  // and so does a hyphen before an upper-case word (a dash before a name, a list).
  text = text.replace(/(\p{L})-[ \t]*\n[ \t]*(\p{Ll})/gu, '$1$2');
  text = text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ufffe\uffff]/g, ' ');
  text = text.replace(/[\t\u00a0\u2000-\u200b\u202f\u205f\u3000]/g, ' ');
  text = text
    .split(/\n[ \t]*\n+/)
    .map((paragraph) => paragraph.replace(/[ ]*\n[ ]*/g, ' ').replace(/ {2,}/g, ' ').trim())
    .filter(Boolean)
    .join('\n\n');
  return text;
}

const RU_STOPWORDS = new Set('и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего раз тоже себе под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой тем чтобы нее сейчас были куда зачем всех никогда можно при наконец два об другой хоть после над больше тот через эти нас про всего них какая много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда конечно всю между это также являются'.split(' '));
const EN_STOPWORDS = new Set('the of and to in is was he for it with as his on be at by i this had not are but from or have an they which one you were her all she there would their we him been has when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three'.split(' '));

/** A Russian or English function word: carries no meaning for matching. */
export function isStopword(word: string): boolean {
  return RU_STOPWORDS.has(word) || EN_STOPWORDS.has(word);
}

/**
 * The full-text language of a passage: 'ru' or 'en' when the evidence is clear
 * (script and common words), 'simple' otherwise (no stemming: still matches words).
 */
export function detectLanguage(text: string): 'ru' | 'en' | 'simple' {
  const sample = text.length > 20_000 ? text.slice(0, 20_000) : text;
  let cyrillic = 0;
  let latin = 0;
  for (const ch of sample) {
    if (/\p{Script=Cyrillic}/u.test(ch)) cyrillic++;
    else if (/[A-Za-z]/.test(ch)) latin++;
  }
  const letters = cyrillic + latin;
  if (letters < 3) return 'simple';
  const words = sample.toLowerCase().match(/[\p{L}]+/gu) ?? [];
  let ru = 0;
  let en = 0;
  for (const w of words) {
    if (RU_STOPWORDS.has(w)) ru++;
    else if (EN_STOPWORDS.has(w)) en++;
  }
  if (cyrillic / letters >= 0.6) return 'ru';
  if (latin / letters >= 0.6) {
    // Latin script alone does not make English (German or French would stem wrongly):
    // English prose is at least a tenth stopwords; a few words are given the benefit.
    if (words.length <= 4 || en / words.length >= 0.1) return 'en';
    return 'simple';
  }
  // Mixed scripts: the stopwords decide.
  if (ru > en) return 'ru';
  if (en > ru) return 'en';
  return cyrillic >= latin ? 'ru' : 'en';
}
