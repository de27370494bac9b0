import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { anyOf, SearchRepository, type FtConfig } from '../repositories/search.ts';
import { DATABASE_BACKENDS, type TestDatabase } from '../../test/support/databases.ts';
import { headlines, HEADLINE_OPTIONS, LexemeCache, type Lexize } from './headline.ts';

/** A stand-in stemmer for the fragment logic alone: lowercase, a trailing "s" dropped, "the" a stop word. */
const toyLexize: Lexize = async (words) => words.map(({ word }) => (word === 'the' ? [] : [word.replace(/s$/, '')]));

const marked = (headline: string | null) => [...(headline ?? '').matchAll(/<mark>(.*?)<\/mark>/gu)].map((m) => m[1]);

describe('headlines, fragment logic', () => {
  it('escapes the text around and inside the marks', async () => {
    const [h] = await headlines([{ text: 'a <b>cat</b> & "cats"', config: 'english' }], { english: ['cat'] }, new LexemeCache(toyLexize));
    assert.equal(h, 'a &lt;b&gt;<mark>cat</mark>&lt;/b&gt; &amp; &quot;<mark>cats</mark>&quot;');
  });

  it('marks every word standing for a query lexeme, and only those', async () => {
    const cache = new LexemeCache(toyLexize);
    const [h] = await headlines([{ text: 'Cats chase the cat; a catalog lists cats.', config: 'english' }], { english: ['cat'] }, cache);
    assert.deepEqual(marked(h!), ['Cats', 'cat', 'cats']);
    assert.equal(h, '<mark>Cats</mark> chase the <mark>cat</mark>; a catalog lists <mark>cats</mark>.');
  });

  it('gives null when nothing matches, or when the configuration has no query lexemes', async () => {
    const cache = new LexemeCache(toyLexize);
    const out = await headlines(
      [
        { text: 'Nothing here to see.', config: 'english' },
        { text: 'cat in another configuration', config: 'russian' },
      ],
      { english: ['cat'] },
      cache,
    );
    assert.deepEqual(out, [null, null]);
  });

  it('marks only matched words: nothing in the text itself becomes markup or a highlight', async () => {
    const [h] = await headlines([{ text: 'a cat \ue000forged\ue001 <mark>x</mark> & "q"', config: 'english' }], { english: ['cat'] }, new LexemeCache(toyLexize));
    assert.deepEqual(marked(h!), ['cat']);
    assert.equal(h, 'a <mark>cat</mark> \ue000forged\ue001 &lt;mark&gt;x&lt;/mark&gt; &amp; &quot;q&quot;');
  });

  it('cuts a long text to at most two fragments of at most 32 words, covering the most distinct lexemes', async () => {
    const filler = (n: number, w: string) => Array.from({ length: n }, (_, i) => `${w}${i}`).join(' ');
    const text = `${filler(40, 'a')} alpha ${filler(40, 'b')} beta alpha ${filler(40, 'c')} gamma ${filler(40, 'd')}`;
    const [h] = await headlines([{ text, config: 'simple' }], { simple: ['alpha', 'beta', 'gamma'] }, new LexemeCache(toyLexize));
    const parts = h!.split(HEADLINE_OPTIONS.delimiter);
    assert.equal(parts.length, 2);
    for (const part of parts) assert.ok(part.split(' ').length <= HEADLINE_OPTIONS.maxWords, part);
    // The fragment with "beta alpha" first (two lexemes), then the one with "gamma" (new), in text order.
    assert.deepEqual(marked(h!), ['beta', 'alpha', 'gamma']);
    const plain = (html: string) => html.replace(/<\/?mark>/g, '');
    assert.ok(text.indexOf(plain(parts[0]!)) < text.indexOf(plain(parts[1]!)));
  });

  it('asks the database for a word once, and only for words that could stem to a query lexeme', async () => {
    const asked: string[] = [];
    const cache = new LexemeCache(async (words) => {
      asked.push(...words.map((w) => `${w.config}:${w.word}`));
      return toyLexize(words);
    });
    const input = [{ text: 'The cats sat on the mat with other cats', config: 'english' as FtConfig }];
    await headlines(input, { english: ['cat', 'mat'] }, cache);
    assert.deepEqual(asked.sort(), ['english:cats', 'english:mat']);
    await headlines(input, { english: ['cat', 'mat'] }, cache);
    assert.equal(asked.length, 2);
  });
});

describe('the lexeme memory', () => {
  it("answers every word a call asked, even when another call cleared the memory at its bound meanwhile", async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const cache = new LexemeCache(async (words) => {
      if (words.some((w) => w.word === 'slow')) await held;
      return toyLexize(words);
    }, 2);
    const fill = (words: string[]) => new Map<FtConfig, Set<string>>([['simple', new Set(words)]]);
    await cache.resolve(fill(['cats']));
    // Asks for a known word and an unknown one, and waits for the database...
    const first = cache.resolve(fill(['cats', 'slow']));
    // ...while another call fills the memory past its bound of 2 (clearing "cats").
    await cache.resolve(fill(['dogs', 'birds']));
    release();
    const lexemesOf = await first;
    assert.deepEqual(lexemesOf('simple', 'cats'), ['cat']);
    assert.deepEqual(lexemesOf('simple', 'slow'), ['slow']);
  });
});

for (const backend of DATABASE_BACKENDS) {
  describe(`headlines with ${backend.name}'s own stemmers`, () => {
    let t: TestDatabase;
    let repo: SearchRepository;
    let cache: LexemeCache;
    before(async () => {
      t = await backend.open();
      repo = new SearchRepository(t.db.knex);
      cache = new LexemeCache((words) => repo.lexemes(words));
    });
    after(async () => t?.dispose());

    it('gives each word the lexemes to_tsvector gives it: stems, none for a stop word', async () => {
      const out = await repo.lexemes([
        { config: 'english', word: 'contracts' },
        { config: 'english', word: 'the' },
        { config: 'russian', word: 'договора' },
        { config: 'simple', word: 'Договора' },
      ]);
      assert.deepEqual(out, [['contract'], [], ['договор'], ['договора']]);
    });

    it('marks inflected forms in English and Russian, not words merely sharing a prefix', async () => {
      const [en, ru] = await headlines(
        [
          { text: 'The contracts were contracted under contractual terms (see e.g. gnu.org, v2.1).', config: 'english' },
          { text: 'Условия договора и договоров; дорога к цене.', config: 'russian' },
        ],
        { english: ['contract'], russian: ['договор'] },
        cache,
      );
      assert.deepEqual(marked(en!), ['contracts', 'contracted']);
      assert.match(en!, /see e\.g\. gnu\.org, v2\.1/);
      assert.deepEqual(marked(ru!), ['договора', 'договоров']);
    });

    it('marks the words ts_headline marks, on hard English and Russian text', async () => {
      const cases: Array<{ config: FtConfig; text: string; query: string }> = [
        { config: 'english', text: 'Running runners ran; the runner runs. See e.g. ASN.1 or gnu.org (v2.1), mail: run@example.com.', query: 'running runner' },
        { config: 'english', text: 'Studies of studying: the student studied 3.5 studies, state-of-the-art studies.', query: 'study state art' },
        { config: 'russian', text: 'Договорились о договоре: договоры, договорённость, т.е. условия договоров 2.0.', query: 'договор условие' },
        { config: 'simple', text: 'Ключ KEY key-value keys, ключи.', query: 'key ключ' },
      ];
      const whole = { ...HEADLINE_OPTIONS, maxWords: 1_000 };
      for (const { config, text, query } of cases) {
        const lexemes = (await repo.lexemes(query.split(' ').map((word) => ({ config, word })))).flat();
        const [ours] = await headlines([{ text, config }], { [config]: lexemes }, cache, whole);
        const { rows } = await t.db.knex.raw(`select ts_headline(?::regconfig, ?, ?::tsquery, 'HighlightAll=true, StartSel=«, StopSel=»') as h`, [config, text, anyOf(lexemes)]);
        const theirs = [...(rows[0].h as string).matchAll(/«(.*?)»/gu)].map((m) => m[1]);
        assert.deepEqual(marked(ours!), theirs, `${config}: ${text}`);
      }
    });
  });
}
