export type TextLanguage = 'ru' | 'en' | 'simple';

const words = (list: string) => new Set(list.split(' '));

const RU_STOPWORDS = words('и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего раз тоже себе под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой тем чтобы нее сейчас были куда зачем всех никогда можно при наконец два об другой хоть после над больше тот через эти нас про всего них какая много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда конечно всю между это также являются');
const EN_STOPWORDS = words('the of and to in is was he for it with as his on be at by i this had not are but from or have an they which one you were her all she there would their we him been has when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three');
/** Function words of other Latin-script languages: text full of them is not English, and English stemming would mangle it. */
const OTHER_LATIN_STOPWORDS = words(
  'der die das und ist nicht mit den von zu ein eine auf für sich dem des im auch wird werden sind oder wie nach bei aus ' +
    'le la les et est des une du pour dans que qui pas sur au avec ce il elle sont aux par plus ' +
    'el los las y es que en por con para del se una al lo como pero su ' +
    'il di che della per sono gli nel alla non una delle anche ' +
    'och att det som är för på med av den inte',
);
/** Letters Ukrainian and Belarusian have and Russian does not: Russian stemming would be wrong for them. */
const NON_RUSSIAN_CYRILLIC = /[іїєґўІЇЄҐЎ]/g;

/** A Russian or English function word: carries no meaning for matching. */
export function isStopword(word: string): boolean {
  return RU_STOPWORDS.has(word) || EN_STOPWORDS.has(word);
}

/**
 * The full-text language of a passage: 'ru' or 'en' when the evidence is clear (script,
 * common words, letters of other languages), 'simple' otherwise (no stemming: still
 * matches whole words). `fallback` (the document's language, say) decides passages too
 * short to tell by themselves.
 */
export function detectLanguage(text: string, fallback?: TextLanguage): TextLanguage {
  const sample = text.length > 20_000 ? text.slice(0, 20_000) : text;
  let cyrillic = 0;
  let latin = 0;
  let latinAccented = 0;
  for (let i = 0; i < sample.length; i++) {
    const c = sample.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) latin++;
    else if (c >= 0x400 && c <= 0x4ff) cyrillic++;
    else if (c >= 0xc0 && c <= 0x24f && c !== 0xd7 && c !== 0xf7) {
      latin++;
      latinAccented++;
    }
  }
  const letters = cyrillic + latin;
  const tokens = sample.toLowerCase().match(/\p{L}+/gu) ?? [];
  const weak = letters < 12 || tokens.length < 3;
  if (letters < 3) return fallback ?? 'simple';
  let ru = 0;
  let en = 0;
  let other = 0;
  for (const w of tokens) {
    if (RU_STOPWORDS.has(w)) ru++;
    else if (EN_STOPWORDS.has(w)) en++;
    else if (OTHER_LATIN_STOPWORDS.has(w)) other++;
  }
  if (cyrillic / letters >= 0.6) {
    const nonRussian = sample.match(NON_RUSSIAN_CYRILLIC)?.length ?? 0;
    return nonRussian > cyrillic * 0.01 ? 'simple' : 'ru';
  }
  if (latin / letters >= 0.6) {
    // Latin script alone does not make English (German or French would stem wrongly):
    // other languages' function words or accented letters say so; English prose is at
    // least a tenth stopwords; a few words are given the benefit of the doubt.
    if (other > en || latinAccented > latin * 0.02) return weak && fallback ? fallback : 'simple';
    if (tokens.length <= 4) return weak && fallback ? fallback : 'en';
    if (en / tokens.length >= 0.1) return 'en';
    return fallback === 'en' ? 'en' : 'simple';
  }
  // Mixed scripts: each script's share of the letters plus its function words' share.
  const ruScore = cyrillic / letters + (ru + en > 0 ? ru / (ru + en) : 0.5);
  const enScore = latin / letters + (ru + en > 0 ? en / (ru + en) : 0.5);
  return ruScore >= enScore ? 'ru' : 'en';
}
