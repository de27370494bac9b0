import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clausesOf, cueWindow, ExtractiveBackend, NOT_FOUND_ANSWER, pickSentences, questionKind, stem } from './extractive.ts';
import { splitProse, splitSentences } from './sentences.ts';
import type { LlmSource } from './types.ts';

const source = (n: number, text: string): LlmSource => ({ n, chunkId: `c${n}`, documentId: `d${n}`, title: null, page: null, text });
/** The sentences picked from one source. */
const ask = (question: string, text: string) => pickSentences(question, [source(1, text)]).map((s) => s.text);
/** Words as bench:answers counts them. */
const words = (t: string) => t.match(/[\p{L}\p{N}]+(?:[.,'’-][\p{L}\p{N}]+)*/gu)?.length ?? 0;

async function answerOf(question: string, sources: LlmSource[]): Promise<string> {
  let text = '';
  for await (const e of new ExtractiveBackend().generate({ messages: [{ role: 'user', content: question }], sources, grounded: true, maxTokens: 500, signal: new AbortController().signal })) {
    if (e.type === 'token') text += e.text;
  }
  return text;
}

describe('sentence segmentation (ru, en)', () => {
  it('keeps abbreviations, versions, decimals, host names, URLs and e-mails inside their sentence', () => {
    assert.deepEqual(
      splitProse(
        'Certificates use ASN.1, e.g. DER encoding. Get it from gnu.org or https://ftp.gnu.org/gnu/tar/tar-1.35.tar.gz?mirror=1. ' +
          'Version 3.2.1 fixed it, i.e. the 2.5 % regression. Mr. Smith and Dr. J. R. Watson wrote to help@example.com. Then it shipped.',
      ),
      [
        'Certificates use ASN.1, e.g. DER encoding.',
        'Get it from gnu.org or https://ftp.gnu.org/gnu/tar/tar-1.35.tar.gz?mirror=1.',
        'Version 3.2.1 fixed it, i.e. the 2.5 % regression.',
        'Mr. Smith and Dr. J. R. Watson wrote to help@example.com.',
        'Then it shipped.',
      ],
    );
  });

  it('keeps titles, legal and citation shorthand inside, ends after lower-case shorthand (en, ru)', () => {
    assert.deepEqual(splitProse('It follows Brown v. Board of Education. Rev. Paul T. Stallsworth spoke, then Gen. Lee left. Jones et al. 1998 agreed. It ended at 5 p.m. The hall closed.'), [
      'It follows Brown v. Board of Education.',
      'Rev. Paul T. Stallsworth spoke, then Gen. Lee left.',
      'Jones et al. 1998 agreed.',
      'It ended at 5 p.m.',
      'The hall closed.',
    ]);
    assert.deepEqual(splitProse('Перечислены договоры, акты и т.д. Следующий раздел описывает сроки. Пришли Петров, Сидоров и др. Встречу вёл доц. Смирнов. Он родился в 1856 г. Затем переехал в США.'), [
      'Перечислены договоры, акты и т.д.',
      'Следующий раздел описывает сроки.',
      'Пришли Петров, Сидоров и др.',
      'Встречу вёл доц. Смирнов.',
      'Он родился в 1856 г.',
      'Затем переехал в США.',
    ]);
  });

  it('keeps Russian abbreviations and initials', () => {
    assert.deepEqual(
      splitProse('Срок указан в п. 3, т.е. до 1 янв. 2025 г. включительно. См. стр. 12 и рис. 4. Договор подписал Иванов И. И. в Москве. Цена 3,5 тыс. руб. за штуку. Подробнее: https://example.ru/doc?id=7! Конец.'),
      ['Срок указан в п. 3, т.е. до 1 янв. 2025 г. включительно.', 'См. стр. 12 и рис. 4.', 'Договор подписал Иванов И. И. в Москве.', 'Цена 3,5 тыс. руб. за штуку.', 'Подробнее: https://example.ru/doc?id=7!', 'Конец.'],
    );
  });

  it('joins wrapped prose lines, keeps list, command and table lines apart', () => {
    const parts = splitSentences('Usage: backup [options]\n  --full      copy everything\n  -q, --quiet   less output\n\nThe backup tool copies\nthe data folder. It runs nightly.\n| name | size |\n- first item');
    assert.deepEqual(
      parts.map((p) => [p.text, p.structural]),
      [
        ['Usage: backup [options]', false],
        ['--full copy everything', true],
        ['-q, --quiet less output', true],
        ['The backup tool copies the data folder.', false],
        ['It runs nightly.', false],
        ['| name | size |', true],
        ['- first item', true],
      ],
    );
  });
});

describe('extractive answers', () => {
  it('classifies questions by the answer they want', () => {
    assert.equal(questionKind('Who led the Panthers in sacks?'), 'person');
    assert.equal(questionKind('When was the treaty signed?'), 'time');
    assert.equal(questionKind('How many interceptions did he have?'), 'number');
    assert.equal(questionKind('Where did Tesla live?'), 'place');
    assert.equal(questionKind('Why does the backup fail?'), 'explain');
    assert.equal(questionKind('List the steps of the upgrade'), 'list');
    assert.equal(questionKind('Сколько дней длится отпуск?'), 'number');
    assert.equal(questionKind('Кто подписал договор?'), 'person');
    assert.equal(questionKind('Почему отчёт не сформирован?'), 'explain');
  });

  it('stems English inflections and Russian endings alike', () => {
    assert.equal(stem('lived'), stem('lives'));
    assert.equal(stem('living'), stem('live'));
    assert.equal(stem('договора'), stem('договор'));
  });

  it('answers a factoid question with the one sentence holding the answer, cited', async () => {
    const sources = [
      source(1, 'The Panthers defense gave up just 308 points, ranking sixth in the league. Pro Bowl defensive tackle Kawann Short led the team in sacks with 11, while also forcing three fumbles. Fellow lineman Mario Addison added 6½ sacks.'),
      source(2, 'Sacks are counted by the league since 1982. The Panthers play in Charlotte.'),
    ];
    assert.equal(await answerOf('Who led the Panthers in sacks?', sources), 'Pro Bowl defensive tackle Kawann Short led the team in sacks with 11, while also forcing three fumbles. [1]');
    const when = pickSentences('When did the league start counting sacks?', sources);
    assert.deepEqual(when, [{ n: 2, text: 'Sacks are counted by the league since 1982.' }]);
  });

  it('answers in Russian, with the sentence before when the answer refers back to it', async () => {
    const sources = [source(1, 'Договор поставки подписал генеральный директор Иванов И. И. 12 марта 2024 г. Он же утвердил график платежей. Оплата производится в течение 10 дней.')];
    assert.equal(await answerOf('В течение скольких дней производится оплата по договору?', sources), 'Оплата производится в течение 10 дней. [1]');
    const who = pickSentences('Кто утвердил график платежей?', sources);
    assert.deepEqual(who.map((s) => s.text), ['Договор поставки подписал генеральный директор Иванов И. И. 12 марта 2024 г.', 'Он же утвердил график платежей.']);
  });

  it('gives an explain question several sentences, skips near-duplicates, every one cited', async () => {
    const sources = [
      source(1, 'The nightly backup fails when the disk is full. The nightly backup fails when the disk is full! Backups also fail when the storage token has expired.'),
      source(2, 'A failed backup is retried after one hour. The nightly backup fails when the disk is full.'),
    ];
    const text = await answerOf('Why does the nightly backup fail?', sources);
    const sentences = text.split(/(?<=\]) /);
    assert.ok(sentences.length >= 2, text);
    assert.ok(sentences.every((s) => /\[\d\]$/.test(s)), text);
    assert.equal(sentences.filter((s) => s.startsWith('The nightly backup fails when the disk is full')).length, 1, text);
  });

  it('gives an explain question its two best sentences in source order, a list question three (en, ru)', () => {
    const en = [source(1, 'The nightly report was sent at six. Backups also fail when the storage token has expired. The nightly backup fails when the disk is full.')];
    assert.deepEqual(
      pickSentences('Why does the nightly backup fail?', en).map((s) => s.text),
      ['Backups also fail when the storage token has expired.', 'The nightly backup fails when the disk is full.'],
    );
    const ru = [source(1, 'Ночной отчёт отправлен в шесть. Копия также не создаётся, когда истёк токен хранилища. Ночная резервная копия не создаётся, когда диск заполнен.')];
    assert.deepEqual(
      pickSentences('Почему не создаётся ночная резервная копия?', ru).map((s) => s.text),
      ['Копия также не создаётся, когда истёк токен хранилища.', 'Ночная резервная копия не создаётся, когда диск заполнен.'],
    );
    const list = [source(1, 'Backup options include a full copy. Backup options include an incremental copy. Backup options include a snapshot of the volume.')];
    assert.equal(pickSentences('List the backup options', list).length, 3);
  });

  it('demotes command lines and table rows below prose', () => {
    const sources = [source(1, 'Options:\n  --retention-days N   keep backups N days\n\nBackups are kept for 30 days by default; the retention setting changes it.')];
    assert.deepEqual(pickSentences('How many days are backups kept?', sources), [{ n: 1, text: 'Backups are kept for 30 days by default; the retention setting changes it.' }]);
  });

  it('trims a long factoid sentence to its answering clauses, marked with …, never inside brackets or numbers', () => {
    const long =
      'The company was founded in a small garage in Palo Alto by two engineers who had met at university, and it moved its headquarters to Mountain View in 1998, where it grew to thousands of employees; its first product was a test instrument sold to Walt Disney for the film Fantasia.';
    const [part] = pickSentences('When did the company move its headquarters to Mountain View?', [source(1, long)]);
    assert.ok(part && part.text.includes('moved its headquarters to Mountain View in 1998'), JSON.stringify(part));
    assert.ok(part.text.endsWith(' …') && part.text.length < long.length, part.text);
    assert.deepEqual(clausesOf('Revenue grew 3,5 % (i.e., 1,190 units, mostly abroad), e.g., DER files; then it fell – sharply.'), [
      'Revenue grew 3,5 % (i.e., 1,190 units, mostly abroad),',
      ' e.g., DER files;',
      ' then it fell – sharply.',
    ]);
    assert.deepEqual(clausesOf('Срок продлён до 1 янв. 2025 г., т.е. на 3,5 мес., по решению проф. А. В. Смирнова.'), [
      'Срок продлён до 1 янв. 2025 г.,',
      ' т.е. на 3,5 мес.,',
      ' по решению проф. А. В. Смирнова.',
    ]);
  });

  it('cuts a long "how many"/"when" sentence to the words around its number or date, names, brackets and scales whole (en, ru)', () => {
    // Words never change: the answer without its "…" marks is a piece of the sentence.
    const quoted = (part: string, sentence: string) => sentence.includes(part.replace(/^… /, '').replace(/ …$/, ''));
    const balanced = (t: string) => (t.match(/\(/g) ?? []).length === (t.match(/\)/g) ?? []).length && (t.match(/«/g) ?? []).length === (t.match(/»/g) ?? []).length;
    const en =
      'After a long dispute over the licence terms with the vendor of the original design (the firm then known as Acme Instruments of Rochester, New York), the city council finally approved the purchase of the new water treatment plant for 17 million dollars, and the works started two years later under the supervision of chief engineer Mary Ann Jones.';
    const [much] = pickSentences('How much did the council pay for the water treatment plant?', [source(1, en)]);
    assert.ok(much && much.text.includes('the new water treatment plant for 17 million dollars'), JSON.stringify(much));
    assert.ok(much.text.startsWith('… ') && much.text.endsWith(' …') && words(much.text) <= 30 && quoted(much.text, en) && balanced(much.text), much.text);

    const ru =
      'После долгого спора об условиях лицензии с поставщиком исходного проекта (фирмой «Точные приборы» из Нижнего Новгорода) городской совет наконец одобрил покупку новой станции водоочистки за 17 млн рублей, а строительство началось в 2019 году под руководством главного инженера Марии Ивановны Соколовой, и работы шли без перерывов.';
    const [cost] = pickSentences('Сколько совет заплатил за станцию водоочистки?', [source(1, ru)]);
    assert.ok(cost && cost.text.includes('станции водоочистки за 17 млн рублей'), JSON.stringify(cost));
    assert.ok(cost.text.startsWith('… ') && words(cost.text) <= 30 && quoted(cost.text, ru) && balanced(cost.text), cost.text);
    const [year] = pickSentences('В каком году началось строительство станции?', [source(1, ru)]);
    assert.ok(year && year.text.includes('строительство началось в 2019 году'), JSON.stringify(year));
    // The window reaches the end of a name it would cut: «Марии Ивановны Соколовой», never «Марии Ивановны».
    assert.ok(!/Ивановны …/.test(year.text) && words(year.text) <= 30 && quoted(year.text, ru) && balanced(year.text), year.text);
  });

  it('ends a date or number window after the whole name or scale it reaches into (en, ru)', () => {
    const asked = (...words: string[]) => new Set(words.map(stem));
    const even = () => 1;
    const treaty = 'After a long war the peace treaty was signed in 1648 by Cardinal Jules Raymond Mazarin and the envoys of the emperor in the town hall of Münster.';
    assert.equal(cueWindow(treaty, 'time', asked('peace', 'treaty', 'signed'), even, 8)?.text, '… peace treaty was signed in 1648 by Cardinal Jules Raymond Mazarin …');
    const cost = 'По итогам года новая станция обошлась городу в 17 млн рублей, которые район выплачивал десять лет.';
    assert.equal(cueWindow(cost, 'number', asked('станция', 'обошлась', 'городу'), even, 4)?.text, '… обошлась городу в 17 млн рублей …');
    const more = 'По итогам года новая станция обошлась городу в 17 млн рублей и ещё в 2 млн на ремонт дорог вокруг неё.';
    assert.equal(cueWindow(more, 'number', asked('станция', 'обошлась', 'городу'), even, 4)?.text, '… обошлась городу в 17 млн …');
    const plant = 'The new plant finally cost the city 17 million dollars and another 2 million for the roads around it.';
    assert.equal(cueWindow(plant, 'number', asked('plant', 'cost', 'city'), even, 4)?.text, '… cost the city 17 million …');
    assert.equal(cueWindow('The peace treaty was signed by the envoys of the emperor in the town hall of the old city.', 'number', asked('treaty'), even, 4), null, 'no number: the sentence is trimmed by its clauses instead');
  });

  it('drops a lead-in clause that holds neither a question word nor a possible answer, but not before a date or a name (en, ru)', () => {
    assert.deepEqual(ask('What plan did the council adopt?', 'After a long and careful review of the old records, the council adopted the new water plan in spring.'), ['… the council adopted the new water plan in spring.']);
    assert.deepEqual(ask('Какой план утвердил совет?', 'После долгого и тщательного изучения старых записей, совет утвердил новый план водоснабжения весной.'), ['… совет утвердил новый план водоснабжения весной.']);
    // A name in the lead-in may be the answer; a "when" lead-in is where dates stand.
    assert.deepEqual(ask('What plan did the council adopt?', 'After a long review by Mayor Jones, the council adopted the new water plan in spring.'), ['After a long review by Mayor Jones, the council adopted the new water plan in spring.']);
    assert.deepEqual(ask('When did the council adopt the plan?', 'During the reign of the old king, the council adopted the plan.'), ['During the reign of the old king, the council adopted the plan.']);
    assert.deepEqual(ask('Когда совет утвердил план?', 'Во время правления старого короля, совет утвердил план.'), ['Во время правления старого короля, совет утвердил план.']);
  });

  it("cuts a factoid's runner-up to what is left of 40 words after the best sentence, words unchanged (en, ru)", () => {
    const en =
      'The city council of the old river town met in the great hall on the square for the annual vote on the water treatment plant and the new bridge. ' +
      'In a long and heated session that lasted until midnight the council finally approved the water treatment plant after many residents from the northern districts had spoken against its cost and its noise.';
    const ru =
      'Городской совет старого речного города собрался в большом зале на площади для ежегодного голосования по станции водоочистки и новому мосту через реку. ' +
      'На долгом и жарком заседании до полуночи совет наконец одобрил станцию водоочистки после того как многие жители северных районов выступили против её стоимости и шума.';
    for (const [question, text, held] of [
      ['What did the council approve at the annual vote on the water treatment plant?', en, 'the council finally approved the water treatment plant'],
      ['Что совет одобрил на ежегодном голосовании по станции водоочистки?', ru, 'совет наконец одобрил станцию водоочистки'],
    ] as const) {
      const parts = pickSentences(question, [source(1, text)]);
      assert.equal(parts.length, 2, JSON.stringify(parts));
      const [, second] = parts;
      assert.ok(second!.text.includes(held) && second!.text.endsWith(' …'), second!.text);
      assert.ok(text.includes(second!.text.replace(/^… /, '').replace(/ …$/, '')), second!.text);
      assert.ok(words(parts[0]!.text) + words(second!.text) <= 40, JSON.stringify(parts));
    }
  });

  it('elides a long bracketed aside that holds nothing asked for to "(…)", keeps one with a question word or, for "who", a name (en, ru)', () => {
    assert.deepEqual(ask('What did the museum buy in 1901?', 'In 1901 the museum bought a large carpet (the largest of its kind ever woven in the northern provinces) from a dealer in Paris.'), [
      'In 1901 the museum bought a large carpet (…) from a dealer in Paris.',
    ]);
    assert.deepEqual(ask('Что купил музей в 1901 году?', 'В 1901 году музей купил большой ковёр (самый большой из всех когда-либо сотканных в северных провинциях) у торговца в Париже.'), [
      'В 1901 году музей купил большой ковёр (…) у торговца в Париже.',
    ]);
    const kept = 'In 1901 the museum bought a large carpet (the largest one the museum ever bought from abroad) from a dealer in Paris.';
    assert.deepEqual(ask('What did the museum buy in 1901?', kept), [kept]);
    const named = 'The museum bought the carpet from a dealer (the firm owned by Louis Marchand and his brother in Paris) in 1901.';
    assert.deepEqual(ask('Who sold the museum the carpet?', named), [named]);
  });

  it('cuts a "who" runner-up to the words around its name (en, ru)', () => {
    const en = ask('Who built the first stone bridge over the river?', 'The first stone bridge over the river was built by the town guild in Oldham. The first stone bridge was built by Thomas Reed according to the old records of the town archive that were found in the cellar of the church after the war.');
    assert.deepEqual(en, ['The first stone bridge over the river was built by the town guild in Oldham.', 'The first stone bridge was built by Thomas Reed according to the …']);
    const ru = ask('Кто построил первый каменный мост через реку?', 'Первый каменный мост через реку построила городская гильдия Ольдхема. Первый каменный мост построил Фома Рид согласно старым записям городского архива которые нашли в подвале церкви после войны.');
    assert.deepEqual(ru, ['Первый каменный мост через реку построила городская гильдия Ольдхема.', 'Первый каменный мост построил Фома Рид согласно старым записям городского …']);
  });

  it("keeps the clause after a runner-up's question words, where the answer often stands (en, ru)", () => {
    const en = ask('What other diseases spread with the plague in the ports?', 'Other diseases spread with the plague in the ports. In the fourteenth century, as the records of the time tell us, other diseases spread with the plague in the ports, among them typhus and smallpox, and the chroniclers of the towns tell the same story.');
    assert.deepEqual(en, ['Other diseases spread with the plague in the ports.', '… other diseases spread with the plague in the ports, among them typhus and smallpox …']);
    const ru = ask('Какие другие болезни распространялись с чумой в портах?', 'Другие болезни распространялись с чумой в портах. В четырнадцатом веке, как говорят записи того времени, другие болезни распространялись с чумой в портах, среди них тиф и оспа, и хроники городов рассказывают то же самое.');
    assert.deepEqual(ru, ['Другие болезни распространялись с чумой в портах.', '… другие болезни распространялись с чумой в портах, среди них тиф и оспа …']);
  });

  it('answers an explain question with the sentence that gives the reason; otherwise two, the second cut to what is left of 40 words (en, ru)', () => {
    assert.deepEqual(ask('Why was the bridge closed?', 'The old bridge over the river was closed in May because its piers had cracked after the flood. The bridge had carried the main road for a century.'), [
      'The old bridge over the river was closed in May because its piers had cracked after the flood.',
    ]);
    assert.deepEqual(ask('Почему закрыли мост?', 'Старый мост через реку закрыли в мае, потому что его опоры треснули после наводнения. Мост сто лет нёс главную дорогу.'), [
      'Старый мост через реку закрыли в мае, потому что его опоры треснули после наводнения.',
    ]);
    for (const [question, text] of [
      [
        'Why did the town close the old bridge over the river?',
        'The town closed the old bridge over the river in May after its piers cracked in the great flood of the spring. The old bridge over the river had carried the main road for a century and the town engineers who inspected it after the flood found the stone piers cracked and the arches sagging under the weight of the carts.',
      ],
      [
        'Почему город закрыл старый мост через реку?',
        'Город закрыл старый мост через реку в мае после того, как его опоры треснули во время большого весеннего наводнения. Старый мост через реку сто лет нёс главную дорогу и городские инженеры осмотревшие его после наводнения нашли треснувшие каменные опоры и провисшие под тяжестью телег арки.',
      ],
    ] as const) {
      const parts = ask(question, text);
      assert.equal(parts.length, 2, JSON.stringify(parts));
      assert.ok(parts[1]!.endsWith(' …') && text.includes(parts[1]!.replace(/ …$/, '')), parts[1]);
      assert.ok(words(parts[0]!) + words(parts[1]!) <= 40, JSON.stringify(parts));
    }
  });

  it('cuts a sentence run on past 60 words to the 60 that hold the question', () => {
    const list = `The collection includes ${Array.from({ length: 40 }, (_, i) => `item${i} pottery`).join(' and ')} and the famous Ardabil carpet woven in Persia.`;
    const [part] = pickSentences('What is the famous carpet woven in Persia called?', [source(1, list)]);
    assert.ok(part && part.text.includes('the famous Ardabil carpet woven in Persia.'), JSON.stringify(part));
    assert.ok(part.text.startsWith('… ') && part.text.split(' ').length <= 62, part.text);
  });

  it('answers from hard sentences whole: abbreviations, versions, decimals, URLs (en)', async () => {
    const sources = [
      source(1, 'The parser was rewritten in 2019. Version 3.2.1 of the ASN.1 parser, e.g. the DER reader, fixed the 2.5 % slowdown reported by Dr. J. R. Watson. Builds are published at https://ftp.gnu.org/gnu/tar/ and mirrored weekly.'),
      source(2, 'Mirrors are listed on gnu.org. The U.S. mirror is run by volunteers.'),
    ];
    assert.equal(await answerOf('Which version of the ASN.1 parser fixed the slowdown?', sources), 'Version 3.2.1 of the ASN.1 parser, e.g. the DER reader, fixed the 2.5 % slowdown reported by Dr. J. R. Watson. [1]');
    assert.equal(await answerOf('Where are the builds published?', sources), 'Builds are published at https://ftp.gnu.org/gnu/tar/ and mirrored weekly. [1]');
    assert.deepEqual(pickSentences('Who runs the U.S. mirror?', sources), [{ n: 2, text: 'The U.S. mirror is run by volunteers.' }]);
  });

  it('answers from hard sentences whole: сокращения, версии, десятичные, адреса (ru)', async () => {
    const sources = [
      source(1, 'Обновление описано в п. 4.2 регламента. Версия 2.4.1 сократила время отчёта на 3,5 %, т.е. до 12 мин. Её выпустил проф. А. В. Смирнов 5 мая 2024 г. Дистрибутив лежит на https://example.ru/dist/v2.4.1.tar.gz?mirror=1 и т.д.'),
      source(2, 'Отчёты хранятся 30 дней. Вопросы направляйте на support@example.ru.'),
    ];
    assert.equal(await answerOf('Сколько минут занимает отчёт в версии 2.4.1?', sources), 'Версия 2.4.1 сократила время отчёта на 3,5 %, т.е. до 12 мин. [1]');
    assert.equal(await answerOf('Кто выпустил версию?', sources), 'Её выпустил проф. А. В. Смирнов 5 мая 2024 г. [1]');
    assert.equal(await answerOf('Где лежит дистрибутив?', sources), 'Дистрибутив лежит на https://example.ru/dist/v2.4.1.tar.gz?mirror=1 и т.д. [1]');
    assert.deepEqual(pickSentences('Сколько дней хранятся отчёты?', sources), [{ n: 2, text: 'Отчёты хранятся 30 дней.' }]);
  });

  it('gives a factoid question at most two sentences, a list question more', () => {
    const text =
      'The upgrade has four steps. First, stop the api and the workers. Second, back up the database with the backup tool. Third, run the migrations against the database. Fourth, start the api and check the health endpoint.';
    const steps = pickSentences('List the steps of the database upgrade', [source(1, text)]);
    assert.ok(steps.length >= 3, JSON.stringify(steps));
    assert.ok(pickSentences('How many steps does the upgrade have?', [source(1, text)]).length <= 2);
  });

  it('says the documents do not answer when nothing matches', async () => {
    assert.equal(await answerOf('What is the capital of Peru?', [source(1, 'Backups are kept for 30 days.')]), NOT_FOUND_ANSWER);
  });
});
