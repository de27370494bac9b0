/**
 * bench:emb — the emb service against a raw onnxruntime-node session, same model,
 * same inputs, same threads, measured in one run and compared as ratios.
 *
 *   ratio            = emb.embed throughput (batches of the best size) / raw ORT (best batch size)   goal ≥ 0.90
 *   concurrent_ratio = 32 concurrent single-sentence callers through emb.embed / raw ORT (best)      goal ≥ 0.80
 *
 * The model is a random-weight encoder in all-MiniLM-L6-v2's shape (6 layers, 384 wide,
 * 12 heads), int8 as onnxruntime's dynamic quantizer writes it; no real weights exist
 * on this machine. Throughput depends on the shape, not on the weight values. Inputs
 * are 128 tokens each. The raw baseline is what a caller would write by hand: the
 * same tokenizer, then session.run on a padded batch (tokenizing costs ≈0.3 ms a
 * sentence, ~2–3 % of inference here). Both sessions use the same options.
 *
 * The machine is shared and noisy (whole-run throughput swung 2× between runs), so
 * the sides alternate in small blocks and each side's times are summed over all
 * blocks: load drift then hits both sides alike.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { ServiceBroker } from 'moleculer';
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import { loadConfig } from '../lib/config/env.ts';
import { createLogger } from '../lib/logging.ts';
import { ensureRandomBert, MINILM_L6, TEST_MODEL_CACHE } from '../test/support/tiny-bert.ts';
import { Stores } from '../lib/runtime/stores.ts';
import embService, { type EmbedResult } from '../services/emb/emb.service.ts';
import { publishBenchEncoder } from './support.ts';

const THREADS = Number(process.env.EMB_THREADS ?? 2);
const TOKENS = 128;
const BLOCK = 64;
const BLOCKS = Number(process.env.BENCH_BLOCKS ?? 5);
const SENTENCES = BLOCK * BLOCKS;
const CALLERS = 32;
const BATCH_SIZES = [1, 8, 16, 32];

function sentences(n: number): string[] {
  const words = 'information retrieval document search query system data library research model index text language user question answer report analysis science results поиск документ система данные запрос модель текст язык ответ вопрос отчет анализ библиотека'.split(' ');
  let seed = 12345;
  const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % words.length);
  // Long enough to be truncated to exactly TOKENS tokens: equal lengths, no padding.
  return Array.from({ length: n }, () => Array.from({ length: 200 }, () => words[next()]).join(' '));
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

async function main(): Promise<void> {
  const shape = { ...MINILM_L6, precision: 'int8' as const };
  const bert = await ensureRandomBert(TEST_MODEL_CACHE, shape);
  const texts = sentences(SENTENCES);

  // --- raw onnxruntime-node session -----------------------------------------------
  const tokenizer = new Tokenizer(JSON.parse(await readFile(path.join(bert.dir, 'tokenizer.json'), 'utf8')), {});
  const encode = (t: string) => {
    const e = tokenizer.encode(t.slice(0, TOKENS * 32), { return_token_type_ids: true });
    return [...e.ids.slice(0, TOKENS - 1), e.ids[e.ids.length - 1]!];
  };
  const session = await ort.InferenceSession.create(path.join(bert.dir, 'model.onnx'), {
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  async function rawRun(batch: number[][]): Promise<void> {
    const rows = batch.length;
    const ids = BigInt64Array.from(batch.flat().map(BigInt));
    const ones = new BigInt64Array(rows * TOKENS).fill(1n);
    const zeros = new BigInt64Array(rows * TOKENS);
    const out = await session.run({
      input_ids: new ort.Tensor('int64', ids, [rows, TOKENS]),
      attention_mask: new ort.Tensor('int64', ones, [rows, TOKENS]),
      token_type_ids: new ort.Tensor('int64', zeros, [rows, TOKENS]),
    });
    // Same pooling work as the service would do is negligible next to the encoder; read it anyway.
    void (out.last_hidden_state!.data as Float32Array)[0];
  }
  /** Seconds for raw tokenize + run over `batch` texts in batches of `batchSize`. */
  async function rawSeconds(batch: string[], batchSize: number): Promise<number> {
    const started = performance.now();
    for (let i = 0; i < batch.length; i += batchSize) await rawRun(batch.slice(i, i + batchSize).map(encode));
    return (performance.now() - started) / 1000;
  }
  await rawSeconds(texts.slice(0, 8), 8); // warm-up

  // Best batch size for the raw session, batch sizes interleaved block by block.
  const scanSeconds = Object.fromEntries(BATCH_SIZES.map((b) => [b, 0]));
  for (let block = 0; block < 2; block++) {
    for (const b of BATCH_SIZES) scanSeconds[b]! += await rawSeconds(texts.slice(block * BLOCK, (block + 1) * BLOCK), b);
  }
  const perBatch = Object.fromEntries(BATCH_SIZES.map((b) => [b, Math.round(((2 * BLOCK) / scanSeconds[b]!) * 10) / 10]));
  const bestBatch = Number(Object.entries(perBatch).sort((a, b) => b[1] - a[1])[0]![0]);

  // --- the emb service (real service code, PGlite + fs store in a temp DATA_DIR) ----
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bench-emb-'));
  const config = loadConfig({ DATA_DIR: dataDir, EMB_THREADS: String(THREADS), EMB_MAX_BATCH: String(Math.max(bestBatch, CALLERS)), EMB_QUEUE_LIMIT: '4096', EMB_MODELS: 'bench', LOG_LEVEL: 'fatal' });
  const logger = createLogger('fatal');
  const stores = new Stores(config, logger);
  await publishBenchEncoder(stores, 'bench', TOKENS);

  const broker = new ServiceBroker({ logger: false });
  broker.createService(embService({ config, stores, logger, jwtSecret: 'x'.repeat(32) }));
  await broker.start();
  const embed = (batch: string[]) => broker.call<EmbedResult, object>('emb.embed', { alias: 'bench', texts: batch, kind: 'passage' });
  await embed(texts.slice(0, 8)); // warm-up

  async function serviceSeconds(batch: string[]): Promise<number> {
    const started = performance.now();
    for (let i = 0; i < batch.length; i += bestBatch) await embed(batch.slice(i, i + bestBatch));
    return (performance.now() - started) / 1000;
  }
  async function concurrentSeconds(batch: string[]): Promise<number> {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CALLERS }, async () => {
        while (next < batch.length) await embed([batch[next++]!]);
      }),
    );
    return (performance.now() - started) / 1000;
  }

  const seconds = { raw: 0, service: 0, concurrent: 0 };
  const blockRatios: number[] = [];
  for (let block = 0; block < BLOCKS; block++) {
    const batch = texts.slice(block * BLOCK, (block + 1) * BLOCK);
    // Raw before and after, so each block's service figures sit between two baselines.
    const rawA = await rawSeconds(batch, bestBatch);
    const svc = await serviceSeconds(batch);
    const conc = await concurrentSeconds(batch);
    const rawB = await rawSeconds(batch, bestBatch);
    seconds.raw += (rawA + rawB) / 2;
    seconds.service += svc;
    seconds.concurrent += conc;
    blockRatios.push(round3(((rawA + rawB) / 2) / svc));
    console.log(`block ${block + 1}: raw ${(BLOCK / ((rawA + rawB) / 2)).toFixed(1)}/s, service ${(BLOCK / svc).toFixed(1)}/s, 32 callers ${(BLOCK / conc).toFixed(1)}/s`);
  }
  const rate = (s: number) => round3(SENTENCES / s);
  const ratio = seconds.raw / seconds.service;
  const concurrentRatio = seconds.raw / seconds.concurrent;

  await broker.stop();
  await stores.close();
  await session.release();
  await rm(dataDir, { recursive: true, force: true });

  const ortVersion = JSON.parse(await readFile(new URL('../node_modules/onnxruntime-node/package.json', import.meta.url), 'utf8')).version as string;
  console.log(`raw ORT sentences/s by batch size: ${JSON.stringify(perBatch)}; best ${bestBatch}`);
  console.log(
    JSON.stringify({
      bench: 'emb',
      ratio: round3(ratio),
      goal: 0.9,
      concurrent_ratio: round3(concurrentRatio),
      concurrent_goal: 0.8,
      raw_sps: rate(seconds.raw),
      service_sps: rate(seconds.service),
      concurrent_sps: rate(seconds.concurrent),
      block_ratios: blockRatios,
      raw_sps_by_batch: perBatch,
      best_batch: bestBatch,
      callers: CALLERS,
      sentences: SENTENCES,
      tokens: TOKENS,
      threads: THREADS,
      model: 'random-weight MiniLM-L6 shape, int8 (MatMulInteger)',
      node: process.version,
      ort: ortVersion,
    }),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
