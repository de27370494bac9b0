/**
 * Named entities by rules that work for Russian and English: no model, so they are
 * found by shape — honorifics, initials and patronymics for people; legal forms and
 * quoted names for organisations; "in/from/в/из" + a capitalised word for places;
 * numeric and written dates; numbers next to a currency for amounts.
 */
export type EntityKind = 'people' | 'organisations' | 'places' | 'dates' | 'amounts';

export interface Entity {
  text: string;
  count: number;
}

export type Entities = Record<EntityKind, Entity[]>;

const UP = '\\p{Lu}';
const LOW = '\\p{Ll}';
const WORD = `${UP}${LOW}+(?:-${UP}${LOW}+)?`;

const MONTHS_EN = 'January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec';
const MONTHS_RU = 'января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря|январь|февраль|март|апрель|май|июнь|июль|август|сентябрь|октябрь|ноябрь|декабрь';

const PATTERNS: Record<EntityKind, RegExp[]> = {
  people: [
    // Mr John Smith, Dr. Anna Lee, Ms Jane Doe
    new RegExp(`\\b(?:Mr|Mrs|Ms|Miss|Dr|Prof|Sir|Madam)\\.?\\s+(${WORD}(?:\\s+${WORD})?)`, 'gu'),
    // господин Иванов, г-н Петров, гражданка Сидорова
    new RegExp(`(?<![\\p{L}])(?:господин|госпожа|гражданин|гражданка|г-н|г-жа)\\s+(${WORD}(?:\\s+${WORD}){0,2})`, 'gu'),
    // И. И. Иванов / Иванов И. И. / J. R. Smith
    new RegExp(`(?<![\\p{L}])(${UP}\\.\\s?(?:${UP}\\.\\s?)?${WORD})`, 'gu'),
    new RegExp(`(?<![\\p{L}])(${WORD}\\s${UP}\\.\\s?${UP}\\.)`, 'gu'),
    // Иван Петрович Сидоров, Анна Сергеевна (patronymics)
    new RegExp(`(?<![\\p{L}])(${WORD}\\s(?:${UP}${LOW}+(?:ович|евич|ич)(?:а|у|ем|е)?|${UP}${LOW}+(?:овн|евн|ичн|иничн)(?:а|ы|е|у|ой))(?:\\s${WORD})?)(?![\\p{L}])`, 'gu'),
  ],
  organisations: [
    // ООО «Ромашка», АО "Газ", ПАО «Сбербанк»
    /(?<![\p{L}])((?:ООО|ОАО|ЗАО|ПАО|АО|НКО|ИП|ФГУП|МУП|ГУП)\s*[«"“][^»"”]{1,80}[»"”])/gu,
    // Acme Corp, Globex Inc., Initech LLC, Siemens AG
    new RegExp(`((?:${UP}[\\p{L}&'-]*\\s){0,3}${UP}[\\p{L}&'-]*,?\\s(?:Inc|Ltd|LLC|LLP|Corp|Corporation|Company|Co|GmbH|AG|SA|PLC|plc|Group|Bank|University|Institute|Foundation|Association)\\b\\.?)`, 'gu'),
    // University of Oxford, Bank of England, Ministry of Finance
    new RegExp(`\\b((?:University|Bank|Ministry|Department|Institute|Academy|Council)\\s+of\\s+(?:the\\s+)?${WORD}(?:\\s+${WORD})?)`, 'gu'),
    // Министерство финансов, Банк России, Университет ИТМО
    new RegExp(`(?<![\\p{L}])((?:Министерство|Банк|Университет|Институт|Академия|Компания|Фонд|Правительство)\\s+(?:${UP}[\\p{L}]+|${LOW}+\\s${UP}[\\p{L}]+|${LOW}+))`, 'gu'),
  ],
  places: [
    new RegExp(`\\b(?:in|from|to|at|near)\\s+((?:the\\s)?${WORD}(?:\\s${WORD})?)`, 'gu'),
    new RegExp(`(?<![\\p{L}])(?:г\\.|город[еау]?|в|во|из|на)\\s+(${UP}${LOW}{2,}(?:-${UP}?${LOW}+)?)`, 'gu'),
    new RegExp(`(?<![\\p{L}])((?:ул\\.|улица|пр\\.|проспект|пл\\.|площадь)\\s+${WORD})`, 'gu'),
  ],
  dates: [
    /\b(\d{4}-\d{2}-\d{2})\b/g,
    /\b(\d{1,2}[./]\d{1,2}[./]\d{2,4})(?:\s?г\.)?/g,
    new RegExp(`\\b(\\d{1,2}(?:st|nd|rd|th)?\\s(?:${MONTHS_EN})\\.?(?:,?\\s\\d{4})?)\\b`, 'gu'),
    new RegExp(`\\b((?:${MONTHS_EN})\\.?\\s\\d{1,2}(?:st|nd|rd|th)?(?:,?\\s\\d{4})?)\\b`, 'gu'),
    new RegExp(`(?<![\\p{L}\\d])(\\d{1,2}\\s(?:${MONTHS_RU})(?:\\s\\d{4}(?:\\sг(?:ода|\\.)?)?)?)(?![\\p{L}])`, 'gu'),
  ],
  amounts: [
    /((?:[$€£₽]|USD|EUR|GBP|RUB)\s?\d[\d\s,.]*\d(?:\s?(?:million|billion|thousand|k|m|bn))?|(?:[$€£₽])\s?\d)/gu,
    /(?<![\p{L}\d])(\d[\d\s ,.]*(?:\s?(?:million|billion|thousand|млн|млрд|тыс\.?))?\s?(?:[$€£₽]|USD|EUR|GBP|RUB|dollars?|euros?|pounds?|руб(?:\.|лей|ля|ль)?|рубл[а-я]*|долл(?:\.|аров|ара)?|евро|коп(?:\.|еек)?))(?![\p{L}])/gu,
  ],
};

/** Words that start sentences or name months and days: capitalised, but not places or people. */
const STOP = new Set(
  'The This That These Those There Then When Where What Which While Who Why How Also And But For With From Into About After Before Page Section Chapter Table Figure January February March April May June July August September October November December Monday Tuesday Wednesday Thursday Friday Saturday Sunday Это Этот Эта Эти Так Также Когда Где Если При Для Согласно Статья Раздел Глава Таблица Рисунок Страница'.split(' '),
);

function clean(kind: EntityKind, raw: string): string | null {
  const text = raw.replace(/\s+/g, ' ').replace(/[,.;:]+$/, (m) => (kind === 'people' || kind === 'organisations' ? (/\b[\p{Lu}]\.$/u.test(raw) || /(Inc|Ltd|Corp|Co)\.$/.test(raw) ? m : '') : '')).trim();
  if (!text) return null;
  if (kind === 'places' || kind === 'people') {
    const first = text.replace(/^the\s/i, '').split(/\s/)[0]!;
    if (STOP.has(first)) return null;
  }
  return text;
}

export function extractEntities(text: string): Entities {
  const out = {} as Entities;
  for (const [kind, patterns] of Object.entries(PATTERNS) as Array<[EntityKind, RegExp[]]>) {
    const counts = new Map<string, number>();
    const taken: Array<[number, number]> = [];
    for (const re of patterns) {
      for (const m of text.matchAll(re)) {
        const group = m[1] ?? m[0];
        const start = m.index! + m[0].indexOf(group);
        const end = start + group.length;
        // Overlapping matches of one kind are one entity: the first (more specific) pattern wins.
        if (taken.some(([a, b]) => start < b && end > a)) continue;
        const value = clean(kind, group);
        if (!value) continue;
        taken.push([start, end]);
        counts.set(value, (counts.get(value) ?? 0) + 1);
      }
    }
    out[kind] = [...counts.entries()].map(([t, count]) => ({ text: t, count })).sort((a, b) => b.count - a.count || a.text.localeCompare(b.text)).slice(0, 50);
  }
  // A person's name is not also a place ("from Smith").
  const names = new Set(out.people.flatMap((p) => p.text.split(/\s/)));
  out.places = out.places.filter((p) => !p.text.split(/\s/).every((w) => names.has(w)));
  return out;
}
