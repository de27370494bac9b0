import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import type { Knex } from 'knex';
import { tenantScope } from '../ports/tenant-scope.ts';
import { HybridSearch, type EmbedCalls } from './hybrid.ts';
import { SearchAdmission } from './admission.ts';

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
      settings: { legTimeoutMs: 60_000, candidates: 10, lexicalPostings: 1000, concurrency: 1, queueLimit: 1, queueWaitMs: 60_000 },
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

  it('holds a search\'s slot past its leg timeout until the leg\'s own work has ended (the database is still running it)', async () => {
    let open!: () => void;
    const held = new Promise<void>((resolve) => (open = resolve));
    let reached = 0;
    const search = new HybridSearch({
      knex: async () => {
        reached++;
        await held;
        throw new Error('database down');
      },
      vectors: async () => assert.fail('no dense leg here'),
      activeEmbedModels: async () => [],
      settings: { legTimeoutMs: 20, candidates: 10, lexicalPostings: 1000, concurrency: 1, queueLimit: 0, queueWaitMs: 60_000 },
    });
    const scope = tenantScope('t');
    // The leg times out: the search answers (no leg answered), its statement is still "running".
    await assert.rejects(search.search(scope, { query: 'slow', mode: 'lexical' }, calls), { type: 'SEARCH_UNAVAILABLE' });
    await assert.rejects(search.search(scope, { query: 'next', mode: 'lexical' }, calls), { type: 'OVERLOADED' });
    assert.equal(reached, 1);
    open();
    // The late work ends (rejects) in microtasks, which all run before the next turn of the loop.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(search.admission!.load.active, 0);
    // Once the late work has ended, its slot is free again.
    await assert.rejects(search.search(scope, { query: 'later', mode: 'lexical' }, calls), { type: 'SEARCH_UNAVAILABLE' });
    assert.equal(reached, 2);
  });

  it('refuses at once a search whose expected wait, from the measured service time, is over the budget, with Retry-After from the same measure', async () => {
    let now = 0;
    const admission = new SearchAdmission({ concurrency: 1, queueLimit: 100, maxWaitMs: 1000 }, () => now);
    // One search measured: it held its slot 300 ms.
    const first = await admission.acquire();
    now += 300;
    first();
    assert.equal(admission.load.serviceMs, 300);
    const running = await admission.acquire();
    // Waiters 1, 2, 3 expect 300, 600, 900 ms: within the budget, they wait.
    const waiters = [admission.acquire(), admission.acquire(), admission.acquire()];
    assert.equal(admission.load.waiting, 3);
    // The 4th would wait about 1,200 ms: refused at once; 4 searches admitted need ~1.2 s, so Retry-After 2.
    await assert.rejects(admission.acquire(), (err: Error & { type?: string; data?: { retryAfterSeconds?: number } }) => {
      assert.equal(err.type, 'OVERLOADED');
      assert.equal(err.data?.retryAfterSeconds, 2);
      return true;
    });
    assert.equal(admission.refused, 1);
    // The slot passes to the waiters in turn; they held it 0 ms, 400 ms, 0 ms, 0 ms.
    running();
    (await waiters[0]!)();
    const second = await waiters[1]!;
    now += 400;
    second();
    for (const w of waiters.slice(2)) (await w)();
    assert.deepEqual({ active: admission.load.active, waiting: admission.load.waiting }, { active: 0, waiting: 0 });
    // A spread-out service time counts for more than its mean: S + 2D per search ahead.
    const { serviceMs, deviationMs } = admission.load;
    assert.ok(deviationMs > 0);
    const holding = await admission.acquire();
    const next = admission.acquire();
    assert.equal(admission.expectedWaitMs(), 2 * (serviceMs! + 2 * deviationMs));
    holding();
    (await next)();
  });

  it('refuses a search that has waited the whole budget (the estimate was too low), and the queue moves on without it', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const admission = new SearchAdmission({ concurrency: 1, queueLimit: 10, maxWaitMs: 500 }, () => 0);
      const running = await admission.acquire();
      // No search has ended yet: no estimate, the length alone bounds the queue.
      const waiting = admission.acquire();
      mock.timers.tick(499);
      assert.equal(admission.load.waiting, 1);
      mock.timers.tick(1);
      await assert.rejects(waiting, { type: 'OVERLOADED' });
      assert.equal(admission.load.waiting, 0);
      running();
      assert.equal(admission.load.active, 0);
      // The next search gets the free slot at once.
      (await admission.acquire())();
    } finally {
      mock.timers.reset();
    }
  });

  it('refuses past the queue length whatever the estimate', async () => {
    const admission = new SearchAdmission({ concurrency: 2, queueLimit: 1, maxWaitMs: 60_000 }, () => 0);
    const held = [await admission.acquire(), await admission.acquire()];
    const waiting = admission.acquire();
    await assert.rejects(admission.acquire(), { type: 'OVERLOADED' });
    held[0]!();
    (await waiting)();
    held[1]!();
    assert.equal(admission.load.active, 0);
  });

  // A bad request never takes a place: api.search's schema refuses it before the handler runs
  // (services/api/routes/search.test.ts: limit 0 → 422 VALIDATION_FAILED).
});
