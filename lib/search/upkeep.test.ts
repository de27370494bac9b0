import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { Knex } from 'knex';
import { DATABASE_BACKENDS, type TestDatabase } from '../../test/support/databases.ts';
import { tenantScope } from '../ports/tenant-scope.ts';
import { ChunksRepository } from '../repositories/chunks.ts';
import { DocumentsRepository } from '../repositories/documents.ts';
import type { SearchTableState } from '../repositories/search.ts';
import { HybridSearch } from './hybrid.ts';
import { parseQuery } from './query.ts';
import { SearchTablesUpkeep, upkeepNeeds, type UpkeepOutcome } from './upkeep.ts';

/**
 * The posting table right after an ingest, before anything gathered statistics on it
 * (PGlite has no autovacuum; neither has a PostgreSQL with it off): the lexical query
 * must still read postings term by term, and the upkeep ingest runs must gather the
 * statistics (and, without autovacuum, set the visibility map). Plan shapes and
 * catalog figures are checked, not times.
 */

type PlanNode = { 'Node Type': string; 'Relation Name'?: string; 'Index Cond'?: string; Plans?: PlanNode[] };
const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];

for (const backend of DATABASE_BACKENDS) {
  describe(`lexical leg on freshly ingested data (${backend.name})`, () => {
    let t: TestDatabase;
    let knex: Knex;
    const scope = tenantScope('fresh');
    // The SQL of the last postings query the search ran, to EXPLAIN it.
    let captured: { sql: string; bindings: unknown } | null = null;
    const search = () =>
      new HybridSearch({
        knex: async () =>
          new Proxy(knex, {
            get: (target, prop) =>
              prop === 'raw'
                ? (sql: string, bindings: unknown) => {
                    if (sql.includes('from search_postings p')) captured = { sql, bindings };
                    return target.raw(sql, bindings as Knex.RawBinding[]);
                  }
                : Reflect.get(target, prop),
          }),
        vectors: async () => {
          throw new Error('lexical only');
        },
        activeEmbedModels: async () => [],
        settings: { legTimeoutMs: 60_000, candidates: 10, lexicalPostings: 20_000 },
      });
    const QUERY = 'alpha kilo lima golf';
    const postingsScans = async () => {
      captured = null;
      const { ids } = await search().lexical(scope, parseQuery(QUERY), undefined, 10);
      assert.equal(ids.length, 10);
      assert.ok(captured, 'the plain-words query reads the posting table');
      const c = captured as { sql: string; bindings: Knex.RawBinding[] };
      const { rows } = await knex.raw(`explain (format json) ${c.sql}`, c.bindings);
      const plan = (typeof rows[0]['QUERY PLAN'] === 'string' ? JSON.parse(rows[0]['QUERY PLAN']) : rows[0]['QUERY PLAN'])[0].Plan as PlanNode;
      return nodes(plan).filter((n) => n['Relation Name'] === 'search_postings');
    };
    const tableState = async (): Promise<{ rows: number; planned: number; pages: number; allVisible: number; statistics: number }> => {
      const { rows } = await knex.raw(
        `select (select count(*) from search_postings)::int as rows, c.reltuples::float8 as planned, c.relpages::int as pages, c.relallvisible::int as "allVisible",
                (select count(*) from pg_stats where tablename = 'search_postings')::int as statistics
         from pg_class c where c.oid = 'search_postings'::regclass`,
      );
      return rows[0];
    };

    before(async () => {
      t = await backend.open();
      knex = t.db.knex;
      await knex('tenants').insert({ id: scope.tenantId, name: scope.tenantId });
      // Written as ingest writes them: a document, then its chunk rows in one
      // transaction, document after document. A Zipf-like spread of words.
      const vocabulary = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa'];
      let seed = 11;
      const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
      for (let d = 0; d < 20; d++) {
        const { document } = await new DocumentsRepository(knex).create(scope, {
          sourceId: `doc-${d}`,
          title: `doc ${d}`,
          mime: 'text/plain',
          sizeBytes: 1,
          contentHash: createHash('sha256').update(`doc-${d}`).digest('hex'),
        });
        const chunks = Array.from({ length: 20 }, (_, ord) => {
          const text = Array.from({ length: 10 + Math.floor(rand() * 30) }, () => vocabulary[Math.floor(vocabulary.length * rand() ** 2)]!).join(' ');
          return { id: randomUUID(), ord, text, lang: 'en' as const, page: null, heading: null, contentHash: `${d}-${ord}`, tokenCount: 1 };
        });
        await knex.transaction((trx) => new ChunksRepository(knex).insertMany(scope, document.id, chunks, trx));
      }
    });
    after(() => t?.dispose());

    it('reads the postings term by term even before the table has statistics', async () => {
      const before = await tableState();
      assert.equal(before.statistics, 0, 'nothing analyzed the table yet');
      assert.ok(before.rows > 1000, `${before.rows} postings`);
      const scans = await postingsScans();
      assert.ok(scans.length > 0);
      // Each read of the table is an index scan on tenant, configuration and term (the
      // fast path), never a scan of the whole tenant joined afterwards.
      for (const scan of scans) {
        assert.match(scan['Node Type'], /^Index (Only )?Scan$/, JSON.stringify(scan));
        assert.match(scan['Index Cond'] ?? '', /\bterm = /, JSON.stringify(scan));
      }
    });

    it('ingest\'s upkeep gathers the statistics (and vacuums where no autovacuum runs), then has nothing left to do', async () => {
      const upkeep = new SearchTablesUpkeep({ knex: async () => knex, debounceMs: 1 });
      try {
        const checked = once(upkeep, 'checked') as Promise<[UpkeepOutcome]>;
        upkeep.noteWrites();
        upkeep.noteWrites(); // a burst: one check
        const [outcome] = await checked;
        assert.ok(outcome.analyzed.includes('search_postings'), JSON.stringify(outcome));
        // Every hit joins its document: a never-analyzed documents table made that join a pass over all of them.
        assert.ok(outcome.analyzed.includes('documents'), JSON.stringify(outcome));
        const state = await tableState();
        assert.ok(state.statistics > 0, 'column statistics of search_postings');
        assert.ok(Math.abs(state.planned - state.rows) <= 0.1 * state.rows, `planner knows ${state.planned} of ${state.rows} rows`);
        if (!outcome.autovacuum) {
          assert.ok(outcome.vacuumed.includes('search_postings'), JSON.stringify(outcome));
          assert.equal(state.allVisible, state.pages, 'every page all-visible: index-only scans skip the heap');
        }
        for (const scan of await postingsScans()) assert.match(scan['Index Cond'] ?? '', /\bterm = /);
        // Fresh statistics: the next check leaves the posting table alone.
        const again = await upkeep.check();
        assert.ok(!again.analyzed.includes('search_postings') && !again.vacuumed.includes('search_postings'), JSON.stringify(again));
      } finally {
        await upkeep.close();
      }
    });
  });
}

describe('upkeep thresholds', () => {
  const state = (over: Partial<SearchTableState>): SearchTableState => ({
    table: 'search_postings', plannedRows: 100_000, modifiedSinceAnalyze: 0, changedSinceVacuum: 0, hasStatistics: true, pages: 1000, allVisiblePages: 1000, ...over,
  });
  it('analyzes a table with rows but no statistics, or 10 % changed; vacuums only without autovacuum', () => {
    assert.deepEqual(upkeepNeeds(state({}), false), { analyze: false, vacuum: false });
    assert.deepEqual(upkeepNeeds(state({ hasStatistics: false }), true), { analyze: true, vacuum: false });
    assert.deepEqual(upkeepNeeds(state({ hasStatistics: false, pages: 0, allVisiblePages: 0 }), false), { analyze: false, vacuum: false });
    assert.deepEqual(upkeepNeeds(state({ modifiedSinceAnalyze: 10_000 }), true), { analyze: false, vacuum: false });
    assert.deepEqual(upkeepNeeds(state({ modifiedSinceAnalyze: 10_051 }), true), { analyze: true, vacuum: false });
    assert.deepEqual(upkeepNeeds(state({ changedSinceVacuum: 30_000 }), true), { analyze: false, vacuum: false });
    assert.deepEqual(upkeepNeeds(state({ changedSinceVacuum: 30_000 }), false), { analyze: true, vacuum: true });
    // Stats lost (a crash) but the visibility map says the table was never vacuumed.
    assert.deepEqual(upkeepNeeds(state({ allVisiblePages: 100 }), false), { analyze: true, vacuum: true });
  });
});
