import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { ForegroundGate, MicroBatcher, type BatcherOptions } from './batcher.ts';
import { openEmbedder, type Embedder } from './embedder.ts';
import { buildManifest } from './manifest.ts';
import { ensureRandomBert, TEST_MODEL_CACHE, TINY_BERT } from '../../test/support/tiny-bert.ts';
import { RagmeshError } from '../errors.ts';

const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

const TEXTS = [
  'Information retrieval systems index documents.',
  'Поиск документов по запросу пользователя',
  'short',
  'A considerably longer sentence about libraries, catalogues, indexing languages and the evaluation of retrieval effectiveness.',
];

for (const precision of ['fp32', 'int8'] as const) {
  describe(`random BERT (${precision}) through onnxruntime-node`, () => {
    let embedder: Embedder;
    before(async () => {
      const bert = await ensureRandomBert(TEST_MODEL_CACHE, { ...TINY_BERT, precision });
      const manifest = await buildManifest(bert.dir, {
        name: 'random tiny bert',
        alias: 'tiny',
        version: precision,
        kind: 'embed',
        embed: { engine: 'onnx', dimension: TINY_BERT.hidden, pooling: 'mean', normalize: true, maxTokens: 16, queryPrefix: 'query: ', passagePrefix: 'passage: ', precision, model: 'model.onnx', tokenizer: 'tokenizer.json', tokenizerConfig: 'tokenizer_config.json' },
      });
      embedder = await openEmbedder(bert.dir, manifest, { threads: 1, maxBatch: 8, queueLimit: 64 });
    });
    after(() => embedder?.close());

    it('gives L2-normalized vectors of the declared dimension', async () => {
      const vectors = await embedder.embed(TEXTS, 'passage');
      assert.equal(vectors.length, TEXTS.length);
      for (const v of vectors) {
        assert.equal(v.length, TINY_BERT.hidden);
        assert.ok(Math.abs(norm(v) - 1) < 1e-5, `norm ${norm(v)}`);
        assert.ok(v.every(Number.isFinite));
      }
      // Different texts, different vectors (the graph really reads its input).
      assert.ok(maxDiff(vectors[0]!, vectors[1]!) > 1e-3);
    });

    it('batched results equal one-at-a-time results (padding does not leak into pooling)', async () => {
      const batched = await embedder.embed(TEXTS, 'passage');
      for (let i = 0; i < TEXTS.length; i++) {
        const [single] = await embedder.embed([TEXTS[i]!], 'passage');
        // int8 quantizes activations per batch tensor, so a batch is close, not bit-equal.
        assert.ok(maxDiff(single!, batched[i]!) < (precision === 'fp32' ? 1e-5 : 0.05), `text ${i}: ${maxDiff(single!, batched[i]!)}`);
      }
    });

    it('concurrent callers are micro-batched and each gets its own answer', async () => {
      const singles = await Promise.all(TEXTS.map((t) => embedder.embed([t], 'passage')));
      const reference = await Promise.all(TEXTS.map(async (t) => (await embedder.embed([t], 'passage'))[0]!));
      singles.forEach(([v], i) => assert.ok(maxDiff(v!, reference[i]!) < (precision === 'fp32' ? 1e-5 : 0.05)));
    });

    it('background inputs on their own lane (a second session on a worker thread, niced) give the same vectors', async () => {
      const bert = await ensureRandomBert(TEST_MODEL_CACHE, { ...TINY_BERT, precision });
      const laned = await openEmbedder(bert.dir, embedder.manifest, { threads: 1, maxBatch: 8, queueLimit: 64, backgroundBatch: 2, backgroundLane: { threads: 1, nice: 7, idleMs: 60_000 } });
      try {
        const foreground = await laned.embed(TEXTS, 'passage');
        const background = await laned.embed(TEXTS, 'passage', 'background');
        // The same text may meet different batch-mates (background batches are of 2): int8 is close, fp32 equal.
        background.forEach((v, i) => assert.ok(maxDiff(v, foreground[i]!) < (precision === 'fp32' ? 1e-5 : 0.05), `text ${i}`));
        if (process.platform === 'linux') {
          // The lane's thread runs at the nice value given (field 19 of /proc/self/task/TID/stat).
          const nices = (await readdir('/proc/self/task')).map((tid) => {
            try {
              return Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[16]);
            } catch {
              return 0;
            }
          });
          assert.ok(nices.includes(7), `a thread at nice 7 among ${nices.join(',')}`);
          assert.ok(nices.includes(0), 'the main thread keeps its priority');
        }
      } finally {
        await laned.close();
      }
    });

    it('applies the query/passage prefixes and truncates to maxTokens', async () => {
      const [q] = await embedder.embed(['libraries'], 'query');
      const [p] = await embedder.embed(['libraries'], 'passage');
      assert.ok(maxDiff(q!, p!) > 1e-3);
      // 16 tokens max: two texts that differ only after the cut embed identically.
      const long = 'a b c d e f g h i j k l m n o p q r s t u v w x y z';
      const [x, y] = await embedder.embed([`${long} ending one`, `${long} totally different tail`], 'passage');
      assert.ok(maxDiff(x!, y!) < (precision === 'fp32' ? 1e-6 : 0.05));
    });
  });
}

/**
 * A batcher whose model echoes each input's tag and records every batch it runs; the
 * first batch stays running until `release()`, so a test can submit while it runs.
 */
function heldFirstBatch(options: BatcherOptions<{ ids: number[]; tag: string }, string>) {
  const batches: string[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let firstStarted!: () => void;
  const started = new Promise<void>((resolve) => (firstStarted = resolve));
  const batcher = new MicroBatcher<{ ids: number[]; tag: string }, string>(async (batch) => {
    batches.push(batch.map((b) => b.tag));
    if (batches.length === 1) {
      firstStarted();
      await gate;
    }
    return batch.map((b) => b.tag);
  }, options);
  return { batcher, batches, started, release };
}

describe('MicroBatcher', () => {
  it('runs a lone caller at once and pools callers that arrive while busy, sorted by length', async () => {
    const batches: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const batcher = new MicroBatcher<{ ids: number[] }, number>(
      async (batch) => {
        batches.push(batch.map((b) => b.ids.length));
        if (batches.length === 1) await gate;
        return batch.map((b) => b.ids.length * 10);
      },
      { maxBatch: 3, queueLimit: 100, name: 'test' },
    );
    const first = batcher.submit([{ ids: [1] }]);
    const later = [5, 2, 4, 3].map((n) => batcher.submit([{ ids: Array(n).fill(0) }]));
    release();
    assert.deepEqual(await first, [10]);
    assert.deepEqual(await Promise.all(later), [[50], [20], [40], [30]]);
    assert.deepEqual(batches, [[1], [2, 3, 4], [5]]);
    assert.equal(batcher.depth, 0);
  });

  it('runs background inputs in small batches only while no foreground input waits', async () => {
    const { batcher, batches, started, release } = heldFirstBatch({ maxBatch: 4, backgroundBatch: 2, queueLimit: 100, name: 'test' });
    const background = batcher.submit(['b1', 'b2', 'b3', 'b4', 'b5'].map((tag) => ({ ids: [1], tag })), 'background');
    await started;
    // b1+b2 are running; a query arriving now goes before b3..b5.
    const query = batcher.submit([{ ids: [1], tag: 'q' }]);
    release();
    assert.deepEqual(await query, ['q']);
    assert.deepEqual(await background, ['b1', 'b2', 'b3', 'b4', 'b5']);
    assert.deepEqual(batches, [['b1', 'b2'], ['q'], ['b3', 'b4'], ['b5']]);
    assert.equal(batcher.depth, 0);
  });

  it('runs an interactive input (a query) at the next batch boundary of a round of passages, not after the round', async () => {
    const { batcher, batches, started, release } = heldFirstBatch({ maxBatch: 2, queueLimit: 100, name: 'test' });
    // One ingest call of six passages: a round of three batches.
    const passages = batcher.submit(['p1', 'p2', 'p3', 'p4', 'p5', 'p6'].map((tag) => ({ ids: [1], tag })));
    await started;
    const query = batcher.submit([{ ids: [1], tag: 'q' }], 'interactive');
    // A passage that arrives meanwhile waits for the next round, behind the query too.
    const late = batcher.submit([{ ids: [1], tag: 'late' }]);
    release();
    assert.deepEqual(await query, ['q']);
    assert.deepEqual(await passages, ['p1', 'p2', 'p3', 'p4', 'p5', 'p6']);
    assert.deepEqual(await late, ['late']);
    assert.deepEqual(batches, [['p1', 'p2'], ['q'], ['p3', 'p4'], ['p5', 'p6'], ['late']]);
    assert.equal(batcher.depth, 0);
  });

  it('background batches of one model wait while another model runs foreground inputs (one gate per process)', async () => {
    const shared = new ForegroundGate();
    const order: string[] = [];
    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    let queryStarted!: () => void;
    const started = new Promise<void>((resolve) => (queryStarted = resolve));
    const active = new MicroBatcher<{ ids: number[] }, number>(async (batch) => {
      order.push('query');
      queryStarted();
      await hold;
      return batch.map(() => 1);
    }, { maxBatch: 4, queueLimit: 10, name: 'v1', gate: shared });
    const building = new MicroBatcher<{ ids: number[] }, number>(async (batch) => {
      order.push('reindex');
      return batch.map(() => 2);
    }, { maxBatch: 4, queueLimit: 10, name: 'v2', gate: shared });
    const query = active.submit([{ ids: [1] }]);
    await started;
    const reindex = building.submit([{ ids: [1] }], 'background');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(order, ['query'], 'the re-index batch waits for the query on the other model');
    release();
    assert.deepEqual(await query, [1]);
    assert.deepEqual(await reindex, [2]);
    assert.deepEqual(order, ['query', 'reindex']);
  });

  it('with a background lane, a query never waits for a background batch in progress', async () => {
    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    let laneStarted!: () => void;
    const started = new Promise<void>((resolve) => (laneStarted = resolve));
    const lane: string[][] = [];
    const batcher = new MicroBatcher<{ ids: number[]; tag: string }, string>(async (batch) => batch.map((b) => `fg:${b.tag}`), {
      maxBatch: 4,
      backgroundBatch: 2,
      queueLimit: 100,
      name: 'test',
      runBackground: async (batch) => {
        lane.push(batch.map((b) => b.tag));
        laneStarted();
        await hold;
        return batch.map((b) => `bg:${b.tag}`);
      },
    });
    const background = batcher.submit(['b1', 'b2', 'b3'].map((tag) => ({ ids: [1], tag })), 'background');
    await started;
    // b1+b2 are still inside the lane: the query is answered anyway.
    assert.deepEqual(await batcher.submit([{ ids: [1], tag: 'q' }]), ['fg:q']);
    assert.deepEqual(lane, [['b1', 'b2']]);
    release();
    assert.deepEqual(await background, ['bg:b1', 'bg:b2', 'bg:b3']);
    assert.deepEqual(lane, [['b1', 'b2'], ['b3']]);
    assert.equal(batcher.depth, 0);
  });

  it('rejects with the retryable OVERLOADED error when the wait queue is full', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const batcher = new MicroBatcher<{ ids: number[] }, number>(async (batch) => (await gate, batch.map(() => 1)), { maxBatch: 2, queueLimit: 4, retryAfterSeconds: 2, name: 'test model' });
    const accepted = [batcher.submit([{ ids: [1] }, { ids: [2] }]), batcher.submit([{ ids: [3] }, { ids: [4] }])];
    assert.throws(
      () => batcher.submit([{ ids: [5] }]),
      (err: RagmeshError) => err.code === 503 && err.type === 'OVERLOADED' && err.retryable === true && (err.data as { retryAfterSeconds: number }).retryAfterSeconds === 2,
    );
    assert.throws(() => batcher.submit(Array(5).fill({ ids: [1] })), (err: RagmeshError) => err.code === 400 && err.type === 'BATCH_TOO_LARGE');
    release();
    assert.deepEqual(await Promise.all(accepted), [[1, 1], [1, 1]]);
    // Capacity frees up once answered.
    assert.deepEqual(await batcher.submit([{ ids: [5] }]), [1]);
  });

  it('a failing batch rejects its callers and the batcher keeps working', async () => {
    let fail = true;
    const batcher = new MicroBatcher<{ ids: number[] }, number>(async (batch) => {
      if (fail) throw new Error('boom');
      return batch.map(() => 7);
    }, { maxBatch: 4, queueLimit: 10, name: 'test' });
    await assert.rejects(batcher.submit([{ ids: [1] }]), /boom/);
    fail = false;
    assert.deepEqual(await batcher.submit([{ ids: [1] }]), [7]);
    assert.equal(batcher.depth, 0);
  });
});
