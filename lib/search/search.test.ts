import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Knex } from 'knex';
import pg from 'pg';
import { PgVectorStore } from '../adapters/vectors/pgvector.ts';
import { RagmeshError } from '../errors.ts';
import { openEmbedder, type Embedder } from '../models/embedder.ts';
import type { ModelManifest } from '../models/manifest.ts';
import { tenantScope, type TenantScope } from '../ports/tenant-scope.ts';
import type { VectorStore } from '../ports/vector-store.ts';
import { ChunksRepository } from '../repositories/chunks.ts';
import { ModelsRepository } from '../repositories/models.ts';
import { DATABASE_BACKENDS, type TestDatabase } from '../../test/support/databases.ts';
import { BM25, HybridSearch, defaultDenseWeight, recruitingTerms, HASHED_NGRAM_DENSE_WEIGHT, type EmbedCalls, type SearchSettings } from './hybrid.ts';
import { maximalMarginalRelevance } from './mmr.ts';
import { parseQuery, QUERY_MAX_CHARS } from './query.ts';
import { reciprocalRankFusion } from './rrf.ts';
import { excerptHtml } from './snippet.ts';
import { indexFixture, type FixtureDocument } from '../../test/support/search-fixtures.ts';
import type { SearchParams, SearchResult } from './types.ts';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} ≉ ${b}`);

describe('Reciprocal Rank Fusion', () => {
  it('sums weight / (k + rank) over the legs, on hand-made rank lists', () => {
    const fused = reciprocalRankFusion({ lexical: ['a', 'b', 'c'], dense: ['c', 'a', 'd'] }, { k: 60, weights: { lexical: 1, dense: 1 } });
    assert.deepEqual(fused.map((f) => f.id), ['a', 'c', 'b', 'd']);
    close(fused[0]!.score, 1 / 61 + 1 / 62);
    close(fused[1]!.score, 1 / 63 + 1 / 61);
    close(fused[2]!.score, 1 / 62);
    close(fused[3]!.score, 1 / 63);
    assert.deepEqual(fused[0]!.ranks, { lexical: 1, dense: 2 });
    assert.deepEqual(fused[3]!.ranks, { lexical: null, dense: 3 });
  });

  it('applies per-leg weights and k', () => {
    // With the dense leg at 0.25, its first place is worth less than lexical's second.
    const fused = reciprocalRankFusion({ lexical: ['x', 'y'], dense: ['z', 'y'] }, { k: 0, weights: { lexical: 1, dense: 0.25 } });
    assert.deepEqual(fused.map((f) => f.id), ['x', 'y', 'z']);
    close(fused[0]!.score, 1);
    close(fused[1]!.score, 1 / 2 + 0.25 / 2);
    close(fused[2]!.score, 0.25);
    // Weight 0 keeps the leg's ranks visible but gives them no say.
    const muted = reciprocalRankFusion({ lexical: ['x'], dense: ['z', 'x'] }, { k: 60, weights: { dense: 0 } });
    assert.deepEqual(muted.map((f) => [f.id, f.ranks.dense]), [['x', 2], ['z', 1]]);
  });

  it('counts an id listed twice by one leg once, at its best rank; breaks ties by best rank', () => {
    const fused = reciprocalRankFusion({ lexical: ['a', 'a', 'b'], dense: ['b', 'c'] }, { k: 60, weights: {} });
    close(fused.find((f) => f.id === 'a')!.score, 1 / 61);
    assert.equal(fused.find((f) => f.id === 'b')!.ranks.lexical, 3);
    const tie = reciprocalRankFusion({ lexical: ['p', 'q'], dense: ['q', 'p'] }, { k: 60, weights: {} });
    assert.equal(tie[0]!.score, tie[1]!.score);
    assert.deepEqual(tie.map((t) => t.id), ['p', 'q']);
    assert.deepEqual(reciprocalRankFusion({}, { k: 60, weights: {} }), []);
    assert.throws(() => reciprocalRankFusion({ lexical: ['a'] }, { k: -1, weights: {} }), /k must be/);
  });
});

describe('query parsing', () => {
  it('splits words, "phrases" and -exclusions, keeping repeats', () => {
    const q = parseQuery('contract "force majeure" -draft  contract «срок действия» -"old version"');
    assert.deepEqual(q.words, ['contract', 'force', 'majeure', 'contract', 'срок', 'действия']);
    assert.deepEqual(q.phrases, ['force majeure', 'срок действия']);
    assert.deepEqual(q.excluded, ['draft', 'old version']);
    assert.equal(q.text, 'contract force majeure contract срок действия');
    assert.deepEqual(parseQuery('e-mail don\'t 3.5%').words, ['e-mail', "don't", '3.5']);
  });

  it('refuses empty, operator-only and oversized questions with stable codes', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        assert.ok(err instanceof RagmeshError);
        return `${(err as RagmeshError).code} ${(err as RagmeshError).type}`;
      }
      return 'no error';
    };
    for (const q of ['', '   ', '&|!:*', '-draft', '""', '\u0000', '\\\\']) assert.equal(code(() => parseQuery(q)), '400 EMPTY_QUERY', JSON.stringify(q));
    assert.equal(code(() => parseQuery(12 as unknown as string)), '400 EMPTY_QUERY');
    assert.equal(code(() => parseQuery('x'.repeat(QUERY_MAX_CHARS + 1))), '400 QUERY_TOO_LONG');
    assert.equal(code(() => parseQuery(Array.from({ length: 600 }, (_, i) => `w${i}`).join(' '))), '400 QUERY_TOO_LONG');
  });
});

describe('snippets, MMR, recruiting terms, default weights', () => {
  it('an excerpt without a headline is escaped text: no markup and no highlight from the document', () => {
    assert.equal(excerptHtml('a <script>\ue000x\ue001</script> &\n "b"'), 'a &lt;script&gt;\ue000x\ue001&lt;/script&gt; &amp; &quot;b&quot;');
    assert.equal(excerptHtml(`${'word '.repeat(60)}end`), `${'word '.repeat(47)}word …`);
  });

  it('MMR demotes a near-duplicate of what it already picked', () => {
    const items = [{ id: 'a', score: 1 }, { id: 'a-copy', score: 0.99 }, { id: 'b', score: 0.9 }];
    const vectors = [[1, 0], [0.999, 0.01], [0, 1]];
    assert.deepEqual(maximalMarginalRelevance(items, vectors, { lambda: 0.5, limit: 3 }).map((i) => i.id), ['a', 'b', 'a-copy']);
    assert.deepEqual(maximalMarginalRelevance(items, vectors, { lambda: 1, limit: 2 }).map((i) => i.id), ['a', 'a-copy']);
  });

  it('lets the rarest terms recruit candidates within the postings budget', () => {
    const terms = [{ term: 'the', df: 900 }, { term: 'rare', df: 3 }, { term: 'mid', df: 50 }];
    assert.deepEqual(recruitingTerms(terms, 10_000), ['rare', 'mid', 'the']);
    assert.deepEqual(recruitingTerms(terms, 100), ['rare', 'mid']);
    assert.deepEqual(recruitingTerms([{ term: 'common', df: 5000 }], 100), ['common']);
  });

  it('weights the hashed n-gram starter low, a sentence encoder fully, a stated weight as stated', () => {
    assert.equal(defaultDenseWeight({ embed: { engine: 'hashed-ngrams' } } as unknown as ModelManifest), HASHED_NGRAM_DENSE_WEIGHT);
    assert.equal(defaultDenseWeight({ embed: { engine: 'onnx' } } as unknown as ModelManifest), 1);
    assert.equal(defaultDenseWeight({ embed: { engine: 'onnx', fusionWeight: 0.6 } } as unknown as ModelManifest), 0.6);
  });
});

const MODELS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../models');

for (const backend of DATABASE_BACKENDS) {
  describe(`hybrid search on ${backend.name}`, () => {
    let t: TestDatabase;
    let knex: Knex;
    let vectors: VectorStore;
    let embedder: Embedder;
    let manifest: ModelManifest;
    const A = tenantScope('search-a');
    const B = tenantScope('search-b');
    const ids: Record<string, { documentId: string; chunkIds: string[] }> = {};
    const settings: SearchSettings = { legTimeoutMs: 2000, candidates: 10, lexicalPostings: 20_000 };

    const embedPassages = async (texts: string[]) => ({ alias: embedder.alias, version: embedder.version, vectors: await embedder.embed(texts, 'passage') });
    const calls: EmbedCalls = {
      async embedQuery(alias, text) {
        assert.equal(alias, embedder.alias);
        const [v] = await embedder.embed([text], 'query');
        return { alias, version: embedder.version, vector: Array.from(v!) };
      },
      async embedPassages(_alias, _version, texts) {
        return (await embedder.embed(texts, 'passage')).map((v) => Array.from(v));
      },
    };
    const makeSearch = (overrides: Partial<SearchSettings> = {}, store: VectorStore = vectors) =>
      new HybridSearch({
        knex: async () => knex,
        vectors: async () => store,
        activeEmbedModels: () => new ModelsRepository(knex).listActive('embed'),
        settings: { ...settings, ...overrides },
      });
    let search: HybridSearch;
    const run = (scope: TenantScope, params: SearchParams, c: EmbedCalls = calls) => search.search(scope, params, c);
    const sources = (r: SearchResult) => r.hits.map((h) => h.sourceId);

    // Fillers share letters with "photosynthesis" but never the word, so the n-gram
    // (dense) leg ranks them above a long text that mentions the word once.
    const fillers: FixtureDocument[] = ['photo synthesis', 'synthesis of photos', 'photosynthetic pigments', 'photographs and synthesis', 'photon synthesis', 'synthesised photos', 'photosphere synthesis', 'photos synthesize', 'photostat synthesis', 'photosynthesizers', 'photo-synthetic'].map((text, i) => ({
      sourceId: `filler-${i}`,
      chunks: [{ text, lang: 'en' }],
    }));
    const corpus: FixtureDocument[] = [
      {
        sourceId: 'lexical-only',
        title: 'Annual garden report',
        tags: ['garden'],
        chunks: [
          {
            lang: 'en',
            page: 4,
            heading: 'Beds',
            text:
              'The committee reviewed the irrigation schedule, the compost deliveries, the budget for new benches, volunteer rotas, ' +
              'the broken gate, pest control of aphids on the roses, mulch, the tool shed inventory and the summer fair. ' +
              'A short note mentioned photosynthesis in shaded beds. Minutes were approved, the treasurer reported, the next meeting is in May.',
          },
        ],
      },
      { sourceId: 'dense-only', title: 'Typo', tags: ['typo'], chunks: [{ lang: 'en', page: 1, text: 'fotosynthesis explained' }] },
      ...fillers,
      { sourceId: 'ru-contract', title: 'Договор аренды', mime: 'application/pdf', tags: ['law'], chunks: [{ lang: 'ru', page: 2, text: 'Настоящий договор заключён между арендодателем и арендатором сроком на один год.' }] },
      {
        sourceId: 'en-contract',
        title: 'Supply contract',
        mime: 'application/pdf',
        tags: ['law'],
        chunks: [
          { lang: 'en', page: 1, text: 'The supply contract includes a force majeure clause. <script>alert(1)</script> & more.' },
          { lang: 'en', page: 2, text: 'Majeure events and force of nature are treated separately from the contract.' },
        ],
      },
      { sourceId: 'draft', title: 'Draft contract', tags: ['draft'], chunks: [{ lang: 'en', page: 1, text: 'Draft contract, force majeure to be agreed.' }] },
    ];

    before(async () => {
      t = await backend.open();
      knex = t.db.knex;
      vectors = new PgVectorStore(t.db, backend.name === 'pglite' ? 'pgvector' : 'postgres');
      manifest = JSON.parse(await readFile(path.join(MODELS_DIR, 'starter-ngram/1/manifest.json'), 'utf8')) as ModelManifest;
      embedder = await openEmbedder(path.join(MODELS_DIR, 'starter-ngram/1'), manifest, { threads: 1, maxBatch: 32, queueLimit: 1024 });
      const models = new ModelsRepository(knex);
      await models.register(manifest);
      await models.switchTo(manifest.alias, manifest.version, 'test');
      search = makeSearch();
      for (const doc of corpus) ids[doc.sourceId] = await indexFixture(knex, vectors, A, doc, embedPassages);
      // Tenant B holds the very same text as A's lexical-only and Russian documents.
      ids['b-copy'] = await indexFixture(knex, vectors, B, { ...corpus[0]!, sourceId: 'b-copy' }, embedPassages);
      ids['b-ru'] = await indexFixture(knex, vectors, B, { ...corpus.find((d) => d.sourceId === 'ru-contract')!, sourceId: 'b-ru' }, embedPassages);
    });
    after(async () => {
      await embedder?.close();
      await t?.dispose();
    });

    it('finds a document only the lexical leg matches and one only the dense leg matches', async () => {
      const lexical = await run(A, { query: 'photosynthesis', mode: 'lexical' });
      assert.ok(sources(lexical).includes('lexical-only'));
      assert.ok(!sources(lexical).includes('dense-only'), 'the typo must not match lexically');
      const dense = await run(A, { query: 'photosynthesis', mode: 'dense' });
      assert.ok(sources(dense).includes('dense-only'));
      assert.ok(!sources(dense).includes('lexical-only'), 'the long report must fall outside the dense leg’s candidates');

      const hybrid = await run(A, { query: 'photosynthesis', limit: 10 });
      assert.equal(hybrid.degraded, null);
      assert.deepEqual(hybrid.dense, { alias: manifest.alias, version: manifest.version });
      assert.deepEqual(hybrid.fusion, { k: 60, weights: { lexical: 1, dense: HASHED_NGRAM_DENSE_WEIGHT } });
      const lex = hybrid.hits.find((h) => h.sourceId === 'lexical-only')!;
      const den = hybrid.hits.find((h) => h.sourceId === 'dense-only')!;
      assert.deepEqual(lex.ranks, { lexical: 1, dense: null });
      assert.equal(den.ranks.lexical, null);
      assert.ok(den.ranks.dense !== null);
      close(lex.score, 1 / 61);
      close(den.score, HASHED_NGRAM_DENSE_WEIGHT / (60 + den.ranks.dense!));
      assert.equal(hybrid.hits[0]!.sourceId, 'lexical-only');
      assert.equal(lex.page, 4);
      assert.equal(lex.heading, 'Beds');
      assert.equal(lex.title, 'Annual garden report');
      assert.deepEqual(lex.tags, ['garden']);
      assert.match(lex.snippet, /<mark>photosynthesis<\/mark>/);
      assert.match(den.snippet, /^fotosynthesis explained$/);
    });

    it('gives a hit that moves up past a vanished row its highlighted snippet', async () => {
      // The dense leg names only a chunk whose row is gone (a point left behind), and ranks
      // it first: the lexical hit behind it, a spare that got no headline with the first
      // rows, is shown.
      const gone = '00000000-0000-4000-8000-000000000000';
      const stale: VectorStore = Object.assign(Object.create(vectors) as VectorStore, {
        search: async () => [{ id: gone, score: 1, payload: { chunk_id: gone } }],
      });
      const res = await makeSearch({}, stale).search(A, { query: 'photosynthesis', limit: 1, weights: { dense: 2 } }, calls);
      assert.equal(res.hits.length, 1);
      assert.equal(res.hits[0]!.sourceId, 'lexical-only');
      assert.match(res.hits[0]!.snippet, /<mark>photosynthesis<\/mark>/);
    });

    it('keeps tenants apart in both legs, even for identical text', async () => {
      const a = await run(A, { query: 'photosynthesis irrigation договор', limit: 50 });
      const b = await run(B, { query: 'photosynthesis irrigation договор', limit: 50 });
      const aDocs = new Set(Object.entries(ids).filter(([k]) => !k.startsWith('b-')).map(([, v]) => v.documentId));
      assert.ok(a.hits.length > 0 && a.hits.every((h) => aDocs.has(h.documentId)));
      assert.deepEqual(new Set(sources(b)), new Set(['b-copy', 'b-ru']));
      for (const h of b.hits) assert.ok(!aDocs.has(h.documentId));
      // Asking B's search for A's document ids explicitly finds nothing.
      const probe = await run(B, { query: 'photosynthesis', filters: { documentIds: [ids['lexical-only']!.documentId] } });
      assert.deepEqual(probe.hits, []);
    });

    it('matches Russian inflected forms: «договора» finds «договор»', async () => {
      const r = await run(A, { query: 'условия договора', mode: 'lexical' });
      assert.deepEqual(sources(r), ['ru-contract']);
      assert.match(r.hits[0]!.snippet, /<mark>договор<\/mark>/);
      assert.equal(r.hits[0]!.page, 2);
    });

    it('matches any word, honours "phrases" and -exclusions', async () => {
      const any = await run(A, { query: 'contract unicorn', mode: 'lexical' });
      assert.deepEqual(new Set(sources(any)), new Set(['en-contract', 'draft']));
      const phrase = await run(A, { query: '"force majeure"', mode: 'lexical' });
      // The page-2 chunk has both words but not as a phrase.
      assert.ok(phrase.hits.every((h) => h.page === 1));
      assert.deepEqual(new Set(sources(phrase)), new Set(['en-contract', 'draft']));
      const minus = await run(A, { query: 'contract -draft', mode: 'lexical' });
      assert.deepEqual(new Set(sources(minus)), new Set(['en-contract']));
      const snippet = minus.hits.find((h) => h.page === 1)!.snippet;
      assert.ok(!snippet.includes('<script>'));
      assert.match(snippet, /&amp; more/);
      assert.match(snippet, /<mark>contract<\/mark>/);
    });

    it('ranks by BM25 from the kept statistics, equal to BM25 computed from scratch', async () => {
      const query = 'contract force majeure contract';
      const r = await run(A, { query, mode: 'lexical', limit: 10 });
      // Reference: every chunk's tsvector and the whole tenant's statistics recomputed here.
      const { rows } = await knex.raw(
        `select c.id, c.lang, c.tsv::text as tsv, (select coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0) from unnest(c.tsv) u) as len
         from chunks c where c.tenant_id = ?`,
        [A.tenantId],
      );
      const chunks = (rows as Array<{ id: string; lang: string; tsv: string; len: number }>).map((c) => ({ ...c, len: Number(c.len), tf: parseTsv(c.tsv) }));
      const n = chunks.length;
      const avgdl = chunks.reduce((s, c) => s + c.len, 0) / n;
      const qtf = new Map([['contract', 2], ['forc', 1], ['majeur', 1]]);
      const expected = chunks
        .filter((c) => c.lang === 'en')
        .map((c) => {
          let score = 0;
          for (const [term, count] of qtf) {
            const tf = c.tf.get(term) ?? 0;
            if (!tf) continue;
            const df = chunks.filter((x) => x.lang === 'en' && x.tf.has(term)).length;
            score += count * Math.log(1 + (n - df + 0.5) / (df + 0.5)) * (tf * (BM25.k1 + 1)) / (tf + BM25.k1 * (1 - BM25.b + (BM25.b * c.len) / avgdl));
          }
          return { id: c.id, score };
        })
        .filter((c) => c.score > 0)
        .sort((a, b) => b.score - a.score);
      assert.deepEqual(r.hits.map((h) => h.chunkId), expected.map((e) => e.id));
      const repoScores = await new (await import('../repositories/search.ts')).SearchRepository(knex).stats(A);
      assert.equal(repoScores.chunkCount, n);
      assert.equal(repoScores.totalLength, chunks.reduce((s, c) => s + c.len, 0));
    });

    it('prunes with MaxScore yet returns exactly the BM25 top, as scoring every chunk does', async () => {
      // Enough chunks over a small vocabulary that common words span most of them and
      // the pruning has something to skip; a filter takes the path that reads chunk rows.
      const scope = tenantScope('search-maxscore');
      const vocabulary = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];
      let seed = 7;
      const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
      const chunks = Array.from({ length: 400 }, () => ({
        // Word i appears with probability falling with i: a Zipf-like spread of df.
        text: Array.from({ length: 5 + Math.floor(rand() * 25) }, () => vocabulary[Math.floor(vocabulary.length * rand() ** 2)]!).join(' '),
        lang: 'en' as const,
      }));
      await indexFixture(knex, vectors, scope, { sourceId: 'z1', chunks }, embedPassages);
      const search = new HybridSearch({ knex: async () => knex, vectors: async () => vectors, activeEmbedModels: async () => [], settings: { legTimeoutMs: 60_000, candidates: 10, lexicalPostings: 20_000 } });
      // Reference: BM25 of every chunk computed here from its tsvector.
      const { rows } = await knex.raw(`select id, tsv::text as tsv, tsv_len from chunks where tenant_id = ?`, [scope.tenantId]);
      const all = (rows as Array<{ id: string; tsv: string; tsv_len: number }>).map((c) => ({ id: c.id, len: Number(c.tsv_len), tf: parseTsv(c.tsv) }));
      const avgdl = all.reduce((sum, c) => sum + c.len, 0) / all.length;
      const score = (c: (typeof all)[number], qtf: Map<string, number>) => {
        let total = 0;
        for (const [term, count] of qtf) {
          const tf = c.tf.get(term) ?? 0;
          if (!tf) continue;
          const df = all.filter((x) => x.tf.has(term)).length;
          total += count * Math.log(1 + (all.length - df + 0.5) / (df + 0.5)) * (tf * (BM25.k1 + 1)) / (tf + BM25.k1 * (1 - BM25.b + (BM25.b * c.len) / avgdl));
        }
        return total;
      };
      for (const query of ['alpha bravo kilo lima', 'lima lima juliet', 'charlie delta echo foxtrot golf hotel india', 'kilo']) {
        const lexemes = parseTsv((await knex.raw(`select to_tsvector('english', ?)::text as v`, [query])).rows[0].v);
        const byId = new Map(all.map((c) => [c.id, score(c, lexemes)]));
        const best = [...byId.values()].filter((v) => v > 0).sort((a, b) => b - a).slice(0, 25);
        // Ties may come in either order: the scores of what came back, rank by rank, are the best scores.
        const pruned = await search.lexical(scope, parseQuery(query), undefined, 25);
        assert.equal(pruned.ids.length, best.length, query);
        pruned.ids.forEach((id, i) => assert.ok(Math.abs(byId.get(id)! - best[i]!) < 1e-9, `${query}: rank ${i + 1} scores ${byId.get(id)}, best ${best[i]}`));
        // The path that reads chunk rows (a filter) ranks the same.
        const filtered = await search.lexical(scope, parseQuery(query), { langs: ['en'] }, 25);
        filtered.ids.forEach((id, i) => assert.ok(Math.abs(byId.get(id)! - best[i]!) < 1e-9, `${query} (filtered): rank ${i + 1}`));
      }
    });

    it('applies filters in both legs', async () => {
      const byTag = await run(A, { query: 'contract договор photosynthesis', limit: 50, filters: { tags: ['law'] } });
      assert.deepEqual(new Set(sources(byTag)), new Set(['en-contract', 'ru-contract']));
      const byLang = await run(A, { query: 'contract договор', limit: 50, filters: { langs: ['ru'] } });
      assert.deepEqual(new Set(sources(byLang)), new Set(['ru-contract']));
      const bySource = await run(A, { query: 'contract', limit: 50, filters: { sourceIds: ['draft'] } });
      assert.deepEqual(new Set(sources(bySource)), new Set(['draft']));
      const byMime = await run(A, { query: 'contract photosynthesis', limit: 50, filters: { mimes: ['text/plain'] } });
      assert.ok(byMime.hits.length > 0 && byMime.hits.every((h) => h.mime === 'text/plain'));
      // A documentIds filter that is not a list of ids is refused by api.search's schema: see services/api/routes/search.test.ts.
    });

    it('treats hostile query text as data: results or a clear 4xx, and nothing changes', async () => {
      const before = await snapshot(knex);
      const hostile = [
        `'; drop table chunks; --`,
        `contract' | 'x`,
        `contract & | ! : * <-> (`,
        `"unterminated phrase contract`,
        `\\ \\\\ '\\'' contract\\`,
        `contract:* & !majeure`,
        `$$ $1 ? ?? :: -- /* */ contract`,
        `-"" - -- ---contract`,
        `${'договора '.repeat(400)}`,
        `𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🤖 contract\u200b`,
        `(contract) AND (force) OR NOT draft`,
      ];
      for (const query of hostile) {
        try {
          const r = await run(A, { query, limit: 5 });
          assert.ok(Array.isArray(r.hits), query);
          assert.equal(r.degraded, null, `a leg failed on ${JSON.stringify(query)}: ${JSON.stringify(r.degraded)}`);
        } catch (err) {
          assert.ok(err instanceof RagmeshError && err.code >= 400 && err.code < 500, `${JSON.stringify(query)} → ${(err as Error).message}`);
        }
      }
      await assert.rejects(run(A, { query: 'contract '.repeat(2000) }), (e: RagmeshError) => e.type === 'QUERY_TOO_LONG' && e.code === 400);
      await assert.rejects(run(A, { query: '&|!:*' }), (e: RagmeshError) => e.type === 'EMPTY_QUERY');
      await assert.rejects(run(A, { query: 'x', alias: 'nope' }), (e: RagmeshError) => e.type === 'UNKNOWN_EMBEDDING_ALIAS');
      assert.deepEqual(await snapshot(knex), before);
      // Operators typed into a word are not operators: the injected one finds the contract.
      assert.ok(sources(await run(A, { query: `contract' | 'x`, mode: 'lexical' })).includes('en-contract'));
    });

    it('degrades to the other leg when one fails or times out, and fails only when none answers', async () => {
      const brokenEmb: EmbedCalls = { ...calls, embedQuery: async () => Promise.reject(Object.assign(new Error('emb down'), { type: 'SERVICE_NOT_AVAILABLE' })) };
      const r = await run(A, { query: 'photosynthesis' }, brokenEmb);
      assert.deepEqual(sources(r).slice(0, 1), ['lexical-only']);
      assert.match(r.degraded!.dense!, /SERVICE_NOT_AVAILABLE/);
      assert.equal(r.degraded!.lexical, undefined);
      assert.equal(r.dense, null);

      const slowEmb: EmbedCalls = { ...calls, embedQuery: () => new Promise(() => undefined) };
      const fast = makeSearch({ legTimeoutMs: 150 });
      const started = Date.now();
      const timed = await fast.search(A, { query: 'photosynthesis' }, slowEmb);
      assert.ok(Date.now() - started < 1500);
      assert.match(timed.degraded!.dense!, /timed out/);
      assert.ok(timed.hits.length > 0);

      await assert.rejects(fast.search(A, { query: 'photosynthesis', mode: 'dense' }, slowEmb), (e: RagmeshError) => e.type === 'SEARCH_UNAVAILABLE' && e.code === 503 && e.retryable === true);
    });

    if (backend.name === 'postgres') {
      it('degrades to the dense leg when the lexical leg is blocked in the database', async () => {
        const locker = new pg.Client({ connectionString: (knex.client.config.connection as { connectionString: string }).connectionString });
        await locker.connect();
        try {
          await locker.query('begin');
          await locker.query('lock table search_stats in access exclusive mode');
          const r = await makeSearch({ legTimeoutMs: 300 }).search(A, { query: 'fotosynthesis' }, calls);
          assert.match(r.degraded!.lexical!, /timed out/);
          assert.equal(r.degraded!.dense, undefined);
          assert.equal(r.hits[0]!.sourceId, 'dense-only');
          assert.equal(r.hits[0]!.ranks.lexical, null);
        } finally {
          await locker.query('rollback');
          await locker.end();
        }
      });

      it('keeps the statistics exact under concurrent writers of one tenant', async () => {
        const scope = tenantScope('search-concurrent');
        const docs = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            indexFixture(knex, vectors, scope, { sourceId: `c-${i}`, chunks: [{ text: `shared words alpha beta ${i} gamma`, lang: 'en' }, { text: `другой текст ${i} документ`, lang: 'ru' }] }, embedPassages),
          ),
        );
        const repo = new ChunksRepository(knex);
        // Replace each document's chunks in its own transaction, all at once, as ingest does.
        await Promise.all(
          docs.map((d, i) =>
            knex.transaction(async (trx) => {
              await repo.deleteByDocument(scope, d.documentId, trx);
              await repo.insertMany(scope, d.documentId, [{ ord: 0, text: `replacement alpha delta ${i}`, lang: i % 2 ? 'en' : 'simple', contentHash: `h${i}`, tokenCount: 3 }], trx);
            }),
          ),
        );
        await assertStatsExact(knex, scope);
      });
    }

    it('keeps df, chunk count and total length exact through inserts, deletes and rollbacks', async () => {
      const scope = tenantScope('search-stats');
      const repo = new ChunksRepository(knex);
      const d1 = await indexFixture(knex, vectors, scope, { sourceId: 's1', chunks: [{ text: 'Contracts and contract law', lang: 'en' }, { text: 'Договоры и договор', lang: 'ru' }, { text: 'plain words plain', lang: 'simple' }] }, embedPassages);
      const d2 = await indexFixture(knex, vectors, scope, { sourceId: 's2', chunks: [{ text: 'Contract signed', lang: 'en' }] }, embedPassages);
      await assertStatsExact(knex, scope);
      const df = async (config: string, term: string) => Number((await knex('search_terms').where({ tenant_id: scope.tenantId, config, term }).first())?.df ?? 0);
      assert.equal(await df('english', 'contract'), 2);
      assert.equal(await df('russian', 'договор'), 1);
      assert.equal(await df('simple', 'plain'), 1);

      await knex
        .transaction(async (trx) => {
          await repo.deleteByDocument(scope, d2.documentId, trx);
          await repo.insertMany(scope, d2.documentId, [{ ord: 0, text: 'contract contract contract', lang: 'en', contentHash: 'x', tokenCount: 3 }], trx);
          throw new Error('rollback');
        })
        .catch(() => undefined);
      assert.equal(await df('english', 'contract'), 2);
      await assertStatsExact(knex, scope);

      assert.equal(await repo.deleteByDocument(scope, d1.documentId), 3);
      assert.equal(await df('english', 'contract'), 1);
      assert.equal(await df('russian', 'договор'), 0);
      await assertStatsExact(knex, scope);
      // A document delete cascades to its chunks, and the statistics follow.
      await knex('documents').where({ tenant_id: scope.tenantId, id: d2.documentId }).delete();
      await assertStatsExact(knex, scope);
      assert.equal(Number((await knex('search_terms').where({ tenant_id: scope.tenantId }).count({ n: '*' }))[0]!.n), 0);
      // Other tenants' statistics were not touched.
      await assertStatsExact(knex, A);
    });

    it('MMR puts a different document before a near-duplicate', async () => {
      const scope = tenantScope('search-mmr');
      await indexFixture(knex, vectors, scope, { sourceId: 'm1', chunks: [{ text: 'warranty period for pumps is two years', lang: 'en' }] }, embedPassages);
      await indexFixture(knex, vectors, scope, { sourceId: 'm1-copy', chunks: [{ text: 'warranty period for pumps is two years!', lang: 'en' }] }, embedPassages);
      await indexFixture(knex, vectors, scope, { sourceId: 'm2', chunks: [{ text: 'pumps need a yearly service visit', lang: 'en' }] }, embedPassages);
      const plain = await run(scope, { query: 'warranty period pumps', limit: 3 });
      assert.deepEqual(new Set(sources(plain).slice(0, 2)), new Set(['m1', 'm1-copy']));
      const diverse = await run(scope, { query: 'warranty period pumps', limit: 3, mmr: { lambda: 0.3 } });
      assert.equal(diverse.degraded, null);
      assert.equal(sources(diverse)[1], 'm2');
    });
  });
}

function parseTsv(tsv: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of tsv.matchAll(/'((?:[^']|'')*)'(?::([\d,A-D]+))?/g)) out.set(m[1]!.replace(/''/g, "'"), m[2] ? m[2].split(',').length : 1);
  return out;
}

async function snapshot(knex: Knex) {
  const count = async (table: string) => Number((await knex(table).count({ n: '*' }))[0]!.n);
  return { chunks: await count('chunks'), documents: await count('documents'), terms: await count('search_terms'), stats: await knex('search_stats').select().orderBy('tenant_id') };
}

/** The kept statistics against a recount from the chunk rows themselves. */
async function assertStatsExact(knex: Knex, scope: TenantScope) {
  const { rows: expectedTerms } = await knex.raw(
    `select case c.lang when 'ru' then 'russian' when 'en' then 'english' else 'simple' end as config, u.lexeme as term, count(*)::int as df
     from chunks c, unnest(c.tsv) u where c.tenant_id = ? group by 1, 2 order by 1, 2`,
    [scope.tenantId],
  );
  const keptTerms = await knex('search_terms').select('config', 'term', 'df').where({ tenant_id: scope.tenantId }).orderBy(['config', 'term']);
  assert.deepEqual(keptTerms.map((r) => ({ ...r, df: Number(r.df) })), expectedTerms.map((r: { df: number }) => ({ ...r, df: Number(r.df) })));
  const { rows } = await knex.raw(
    `select count(*)::int as n, coalesce(sum((select coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0) from unnest(c.tsv) u)), 0)::int as len,
            count(*) filter (where lang = 'ru')::int as ru, count(*) filter (where lang = 'en')::int as en
     from chunks c where c.tenant_id = ?`,
    [scope.tenantId],
  );
  // The posting table: one row per chunk and lexeme, with its tf and the chunk's length.
  const { rows: expectedPostings } = await knex.raw(
    `select case c.lang when 'ru' then 'russian' when 'en' then 'english' else 'simple' end as config, u.lexeme as term, c.id::text as chunk_id,
            coalesce(array_length(u.positions, 1), 1)::int as tf, c.tsv_len::int as len
     from chunks c, unnest(c.tsv) u where c.tenant_id = ? order by 1, 2, 3`,
    [scope.tenantId],
  );
  const { rows: keptPostings } = await knex.raw(
    `select config, term, chunk_id::text as chunk_id, tf::int as tf, len::int as len from search_postings where tenant_id = ? order by 1, 2, 3`,
    [scope.tenantId],
  );
  assert.deepEqual(keptPostings, expectedPostings);
  const kept = await knex('search_stats').where({ tenant_id: scope.tenantId }).first();
  const e = rows[0] as { n: number; len: number; ru: number; en: number };
  assert.deepEqual(
    { n: Number(kept?.chunk_count ?? 0), len: Number(kept?.total_length ?? 0), ru: Number(kept?.russian_chunks ?? 0), en: Number(kept?.english_chunks ?? 0), simple: Number(kept?.simple_chunks ?? 0) },
    { n: Number(e.n), len: Number(e.len), ru: Number(e.ru), en: Number(e.en), simple: Number(e.n) - Number(e.ru) - Number(e.en) },
  );
}
