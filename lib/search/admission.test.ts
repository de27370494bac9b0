import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Knex } from 'knex';
import { tenantScope } from '../ports/tenant-scope.ts';
import { HybridSearch, type EmbedCalls } from './hybrid.ts';

const calls: EmbedCalls = { embedQuery: async () => assert.fail('no dense leg here'), embedPassages: async () => [] };

describe('search admission control', () => {
  it('refuses a search at once with OVERLOADED and Retry-After once the running and waiting places are taken', async () => {
    // The database answers only when the test lets it: the first search holds its place meanwhile.
    let open!: () => void;
    const held = new Promise<void>((resolve) => (open = resolve));
    let reached = 0;
    let reachedFirst!: () => void;
    const first = new Promise<void>((resolve) => (reachedFirst = resolve));
    const search = new HybridSearch({
      knex: async () => {
        reached++;
        reachedFirst();
        await held;
        throw new Error('database down');
      },
      vectors: async () => assert.fail('no dense leg here'),
      activeEmbedModels: async () => [],
      settings: { legTimeoutMs: 60_000, candidates: 10, lexicalPostings: 1000, concurrency: 1, queueLimit: 1 },
    });
    const scope = tenantScope('t');
    const running = search.search(scope, { query: 'first', mode: 'lexical' }, calls);
    await first;
    const waiting = search.search(scope, { query: 'second', mode: 'lexical' }, calls);
    await assert.rejects(search.search(scope, { query: 'third', mode: 'lexical' }, calls), (err: Error & { type?: string; code?: number; data?: { retryAfterSeconds?: number } }) => {
      assert.equal(err.type, 'OVERLOADED');
      assert.equal(err.code, 503);
      return true;
    });
    assert.equal(reached, 1, 'the second search waits for its turn, the third never ran');
    open();
    // Both admitted searches end (here: no leg answers, a 503 of their own), and free their places.
    await assert.rejects(running, { type: 'SEARCH_UNAVAILABLE' });
    await assert.rejects(waiting, { type: 'SEARCH_UNAVAILABLE' });
    assert.equal(reached, 2);
    await assert.rejects(search.search(scope, { query: 'later', mode: 'lexical' }, calls), { type: 'SEARCH_UNAVAILABLE' });
  });

  // A bad request never takes a place: api.search's schema refuses it before the handler runs
  // (services/api/routes/search.test.ts: limit 0 → 422 VALIDATION_FAILED).
});
