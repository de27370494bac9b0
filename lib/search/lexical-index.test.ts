import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Knex } from 'knex';
import { DATABASE_BACKENDS, type TestDatabase } from '../../test/support/databases.ts';
import { tenantScope, type TenantScope } from '../ports/tenant-scope.ts';
import { ChunksRepository } from '../repositories/chunks.ts';
import { DocumentsRepository } from '../repositories/documents.ts';
import { SearchRepository } from '../repositories/search.ts';
import { BM25, bm25Weight, HybridSearch } from './hybrid.ts';
import { LexicalIndexCache } from './lexical-index.ts';
import { parseQuery } from './query.ts';

/**
 * Postings held in memory must answer exactly as the SQL leg does, and never from
 * data older than what the search's own statistics read says: checked against the
 * SQL leg on a Zipf-like corpus in three languages, through writes, deletes, a write
 * during a build, the memory budget and eviction.
 */

const VOCABULARY = {
  en: ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'],
  ru: ['договор', 'аренда', 'арендатор', 'платёж', 'срок', 'штраф', 'залог', 'помещение'],
  simple: ['zorg', 'quux', 'blort', 'snarf', 'wibble', 'plugh'],
} as const;

for (const backend of DATABASE_BACKENDS) {
  describe(`lexical postings in memory (${backend.name})`, () => {
    let t: TestDatabase;
    let knex: Knex;
    let seed = 5;
    const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const words = (lang: keyof typeof VOCABULARY, n: number) =>
      Array.from({ length: n }, () => VOCABULARY[lang][Math.floor(VOCABULARY[lang].length * rand() ** 2)]!).join(' ');

    const addDocument = async (scope: TenantScope, chunks: Array<{ text: string; lang: 'en' | 'ru' | 'simple' }>, db: Knex = knex): Promise<string> => {
      const sourceId = `doc-${randomUUID()}`;
      const { document } = await new DocumentsRepository(db).create(scope, {
        sourceId,
        title: sourceId,
        mime: 'text/plain',
        sizeBytes: 1,
        contentHash: createHash('sha256').update(sourceId).digest('hex'),
      });
      const rows = chunks.map((c, ord) => ({ id: randomUUID(), ord, text: c.text, lang: c.lang, page: null, heading: null, contentHash: `${sourceId}-${ord}`, tokenCount: 1 }));
      await db.transaction((trx) => new ChunksRepository(db).insertMany(scope, document.id, rows, trx));
      return document.id;
    };
    const corpus = async (scope: TenantScope, documents: number) => {
      await knex('tenants').insert({ id: scope.tenantId, name: scope.tenantId }).onConflict('id').ignore();
      for (let d = 0; d < documents; d++) {
        await addDocument(
          scope,
          Array.from({ length: 20 }, (_, i) => {
            const lang = (['en', 'en', 'ru', 'simple'] as const)[i % 4]!;
            return { text: words(lang, 5 + Math.floor(rand() * 25)), lang };
          }),
        );
      }
    };
    const settings = { legTimeoutMs: 60_000, candidates: 10, lexicalPostings: 20_000 };
    const sqlSearch = () => new HybridSearch({ knex: async () => knex, vectors: async () => Promise.reject(new Error('lexical only')), activeEmbedModels: async () => [], settings });
    const heldSearch = (cache: LexicalIndexCache) =>
      new HybridSearch({ knex: async () => knex, vectors: async () => Promise.reject(new Error('lexical only')), activeEmbedModels: async () => [], settings, lexicalIndex: cache });
    const QUERIES = ['alpha bravo kilo lima', 'lima lima juliet', 'charlie delta echo foxtrot golf hotel india', 'kilo', 'договор аренды помещения', 'штраф штраф залог', 'zorg blort', 'alpha договор zorg', 'nothingmatches'];
    const stats = (scope: TenantScope) => new SearchRepository(knex).stats(scope);

    before(async () => {
      t = await backend.open();
      knex = t.db.knex;
    });
    after(() => t?.dispose());

    it('answers every plain-word query with the same BM25 top as the SQL leg', async () => {
      const scope = tenantScope('held-parity');
      await corpus(scope, 20);
      const cache = new LexicalIndexCache({ knex: async () => knex, settings: { budgetBytes: 64 * 2 ** 20, pageSize: 37 } });
      const postings = await cache.load(scope);
      assert.ok(postings, 'built');
      assert.equal(postings.chunkCount, 400);
      assert.equal(cache.lookup(scope, await stats(scope)), postings, 'used at the version it was built at');
      for (const query of QUERIES) {
        for (const limit of [1, 10, 100, 1000]) {
          const sql = await sqlSearch().lexical(scope, parseQuery(query), undefined, limit);
          const held = await heldSearch(cache).lexical(scope, parseQuery(query), undefined, limit);
          // The same scores in the same order; equal scores (chunks of the same words) by chunk id in both.
          assert.deepEqual(held.ids, sql.ids, `${query} @${limit}`);
          assert.deepEqual(held.highlight, sql.highlight);
        }
      }
      // Both ways of summing (chosen by the query's size) give the same hits, to the bit.
      const repo = new SearchRepository(knex);
      for (const query of QUERIES) {
        const { stats: at, terms } = await repo.queryStatistics(scope, parseQuery(query).words.join(' '));
        const plans = [...terms].map(([config, ts]) => ({ config, terms: ts.map((t) => ({ term: t.term, weight: bm25Weight(t.qtf, t.df, at.chunkCount) })) }));
        for (const limit of [1, 10, 1000]) {
          const options = { ...BM25, avgLength: at.totalLength / at.chunkCount, limit };
          assert.deepEqual(postings.top(plans, { ...options, dense: true }), postings.top(plans, { ...options, dense: false }), `${query} @${limit}`);
        }
      }
      // Held and current, a query's statistics come from the postings and its words' lexemes,
      // without the statement: the same numbers, terms and order as the statement's.
      const search = heldSearch(cache);
      for (const query of [...QUERIES, 'Lima LIMA lima-kilo kilo', 'state-of-the-art art e.g. alpha.bravo', 'Договор договора ДОГОВОРОМ', 'the of and']) {
        const parsed = parseQuery(query);
        const held = await search['heldStatistics'](repo, scope, parsed);
        assert.ok(held, 'answered from the postings');
        const sql = await repo.queryStatistics(scope, parsed.words.join(' '));
        assert.deepEqual(held.stats, sql.stats, query);
        assert.deepEqual(Object.fromEntries(held.terms), Object.fromEntries(sql.terms), query);
      }
      // Phrases, exclusions and filters read the chunk rows in SQL; they answer as before.
      const phrase = await heldSearch(cache).lexical(scope, parseQuery('"alpha bravo" -kilo'), undefined, 10);
      assert.deepEqual(phrase.ids, (await sqlSearch().lexical(scope, parseQuery('"alpha bravo" -kilo'), undefined, 10)).ids);
      await cache.close();
    });

    it('never answers from postings older than the statistics: a write or delete is seen at once, and the postings are rebuilt', async () => {
      const scope = tenantScope('held-fresh');
      await corpus(scope, 3);
      const cache = new LexicalIndexCache({ knex: async () => knex, settings: { budgetBytes: 64 * 2 ** 20 } });
      const search = heldSearch(cache);
      const first = await cache.load(scope);
      assert.ok(first);
      assert.deepEqual((await search.lexical(scope, parseQuery('xylophone'), undefined, 10)).ids, []);

      const added = await addDocument(scope, [{ text: 'a xylophone in the orchestra', lang: 'en' }]);
      const version = (await stats(scope)).version;
      assert.notEqual(version, first.version, 'a write changes the version');
      // The very next search sees it (SQL, since the postings are older)...
      const found = await search.lexical(scope, parseQuery('xylophone'), undefined, 10);
      assert.equal(found.ids.length, 1);
      // ...and started a rebuild; once it is done the postings answer, with the new chunk.
      const rebuilt = await cache.load(scope);
      assert.equal(rebuilt?.version, version);
      assert.equal(cache.lookup(scope, await stats(scope)), rebuilt);
      assert.deepEqual((await search.lexical(scope, parseQuery('xylophone'), undefined, 10)).ids, found.ids);

      await new DocumentsRepository(knex).delete(scope, added);
      assert.deepEqual((await search.lexical(scope, parseQuery('xylophone'), undefined, 10)).ids, [], 'a deleted chunk is gone at once');
      const afterDelete = await stats(scope);
      assert.notEqual(afterDelete.version, version);
      assert.equal((await cache.load(scope))?.version, afterDelete.version);
      assert.deepEqual((await search.lexical(scope, parseQuery('xylophone'), undefined, 10)).ids, []);
      await cache.close();
    });

    it('throws away a build that a write overlapped', async () => {
      const scope = tenantScope('held-race');
      await corpus(scope, 2);
      let wrote = false;
      // A write commits while the build is reading pages.
      const racing = new Proxy(knex, {
        get: (target, prop) =>
          prop === 'raw'
            ? async (sql: string, bindings: unknown) => {
                const result = await target.raw(sql, bindings as Knex.RawBinding[]);
                if (!wrote && sql.includes('unnest(c.tsv)')) {
                  wrote = true;
                  await addDocument(scope, [{ text: 'kilo written during the build', lang: 'en' }]);
                }
                return result;
              }
            : Reflect.get(target, prop),
      });
      const cache = new LexicalIndexCache({ knex: async () => racing, settings: { budgetBytes: 64 * 2 ** 20, pageSize: 7 } });
      assert.equal(await cache.load(scope), null, 'not kept');
      assert.ok(wrote);
      assert.equal(cache.lookup(scope, await stats(scope)), null);
      await cache.close();
    });

    it('keeps within its memory budget: a tenant too large is left to SQL, the least recently used is dropped', async () => {
      const small = tenantScope('held-small');
      const other = tenantScope('held-other');
      await corpus(small, 1);
      await corpus(other, 1);
      const tiny = new LexicalIndexCache({ knex: async () => knex, settings: { budgetBytes: 1000 } });
      assert.equal(await tiny.load(small), null);
      assert.equal(tiny.bytes, 0);
      const sql = await sqlSearch().lexical(small, parseQuery('alpha kilo'), undefined, 10);
      assert.deepEqual((await heldSearch(tiny).lexical(small, parseQuery('alpha kilo'), undefined, 10)).ids, sql.ids);

      const probe = new LexicalIndexCache({ knex: async () => knex, settings: { budgetBytes: 64 * 2 ** 20 } });
      const one = (await probe.load(small))!.bytes;
      // Room for one of the two (they are about the same size).
      const cache = new LexicalIndexCache({ knex: async () => knex, settings: { budgetBytes: Math.ceil(one * 1.5) } });
      assert.ok(await cache.load(small));
      cache.lookup(small, await stats(small));
      assert.ok(await cache.load(other));
      assert.equal(cache.lookup(small, await stats(small)), null, 'the least recently used tenant was dropped');
      assert.ok(cache.bytes <= Math.ceil(one * 1.5));
      const off = new LexicalIndexCache({ knex: async () => knex, settings: { budgetBytes: 0 } });
      assert.equal(off.lookup(small, await stats(small)), null);
      await Promise.all([tiny, probe, cache].map((c) => c.close()));
    });
  });
}
