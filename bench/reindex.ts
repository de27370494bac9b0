/**
 * bench:reindex — the blue/green re-index against the same model's raw embedding
 * throughput, and query embedding while it runs against idle, in one run.
 *
 *   ratio           = re-index chunks/s (maintenance worker → emb's background lane → vector store)
 *                     / emb.embed chunks/s of the same version, same texts, batches of REINDEX_BATCH   goal ≥ 0.80
 *   query_p95_ratio = p95 of one-query emb.embed on the active version while a re-index runs
 *                     / the same p95 when idle (as many samples, taken before and after)              goal ≤ 1.5
 *
 * Real services (emb + maintenance in one broker, PGlite + usearch + fs store in a temp
 * DATA_DIR); the model is a random-weight encoder in all-MiniLM-L6-v2's shape (int8),
 * published as versions 1 (active, queried), 2 and 3 (re-indexed; same shape); throughput depends on the
 * shape, not on the weights. Chunks are seeded straight into the chunks table (ingest is
 * bench:ingest's business). Run it twice: the machine is shared and noisy.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { ServiceBroker } from 'moleculer';
import { loadConfig } from '../lib/config/env.ts';
import { createLogger } from '../lib/logging.ts';
import { MINILM_L6 } from '../test/support/tiny-bert.ts';
import { tenantScope } from '../lib/ports/tenant-scope.ts';
import { ChunksRepository } from '../lib/repositories/chunks.ts';
import { DocumentsRepository } from '../lib/repositories/documents.ts';
import { ModelsRepository } from '../lib/repositories/models.ts';
import { Stores } from '../lib/runtime/stores.ts';
import embService, { type EmbedResult } from '../services/emb/emb.service.ts';
import maintenanceService from '../services/maintenance/maintenance.service.ts';
import { publishRandomBert } from '../test/support/models.ts';
import { syntheticText } from '../test/support/mesh.ts';

const THREADS = Number(process.env.EMB_THREADS ?? 2);
const CHUNKS = Number(process.env.BENCH_CHUNKS ?? 768);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 60);
const REINDEX_BATCH = Number(process.env.REINDEX_BATCH ?? 32);
const ALIAS = 'bench';
const ortVersion = (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;

function p95(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)]!;
}
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

async function main(): Promise<void> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bench-reindex-'));
  const env = { DATA_DIR: dataDir, EMB_THREADS: String(THREADS), EMB_QUEUE_LIMIT: '4096', EMB_MODELS: ALIAS, REINDEX_BATCH: String(REINDEX_BATCH), LOG_LEVEL: 'fatal' };
  const config = loadConfig(env);
  const logger = createLogger('fatal');
  const stores = new Stores(config, logger);
  const runtime = { config, stores, logger, jwtSecret: 'x'.repeat(32) };
  const { knex } = await stores.db();
  const repo = new ModelsRepository(knex);
  const shape = { ...MINILM_L6, precision: 'int8' as const };
  for (const version of ['1', '2', '3']) {
    const manifest = await publishRandomBert(await stores.models(), await mkdtemp(path.join(os.tmpdir(), 'bench-model-')), {
      alias: ALIAS,
      version,
      name: 'random-weight MiniLM-L6 shape (int8)',
      shape: { ...shape, seed: Number(version) },
      embed: { maxTokens: 128 },
    });
    await repo.register(manifest);
  }
  await repo.switchTo(ALIAS, '1', 'bench');

  // Seed chunks: ~100-token paragraphs of one tenant.
  const scope = tenantScope('bench');
  await knex('tenants').insert({ id: 'bench', name: 'bench' }).onConflict('id').ignore();
  const documents = new DocumentsRepository(knex);
  const chunksRepo = new ChunksRepository(knex);
  const paragraphs = syntheticText(CHUNKS, 7).split('\n\n').filter(Boolean);
  const texts: string[] = [];
  for (let d = 0; d * 64 < CHUNKS; d++) {
    const { document } = await documents.create(scope, { sourceId: `doc-${d}`, mime: 'text/plain', sizeBytes: 1, contentHash: `hash-${d}` });
    const slice = paragraphs.slice(d * 64, Math.min(CHUNKS, (d + 1) * 64)).map((p) => p.split(' ').slice(0, 70).join(' '));
    await chunksRepo.insertMany(scope, document.id, slice.map((text, i) => ({ ord: i, text, lang: 'en', contentHash: `${d}-${i}`, tokenCount: 90 })));
    texts.push(...slice);
  }

  const broker = new ServiceBroker({ logger: false });
  broker.createService(embService(runtime));
  broker.createService(maintenanceService(runtime));
  await broker.start();
  const embed = (texts: string[], version: string, kind: 'query' | 'passage' = 'passage') =>
    broker.call<EmbedResult, object>('emb.embed', { alias: ALIAS, version, texts, kind });
  // Warm both sessions.
  await embed(texts.slice(0, 8), '1', 'query');
  await broker.call('maintenance.models.reindex', { alias: ALIAS, version: '3' });
  await waitDone('3');

  const queries = paragraphs.slice(0, QUERIES).map((p) => p.split(' ').slice(0, 8).join(' '));
  const queryLatencies = async (stop: () => boolean, minimum: number): Promise<number[]> => {
    const ms: number[] = [];
    for (let i = 0; ms.length < minimum || !stop(); i++) {
      const started = performance.now();
      await embed([queries[i % queries.length]!], '1', 'query');
      ms.push(performance.now() - started);
      // A user's pace, not a flood: think time between queries.
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (ms.length >= minimum && stop()) break;
    }
    return ms;
  };

  async function waitDone(version: string): Promise<void> {
    for (;;) {
      const rows = await knex('model_reindex').where({ alias: ALIAS, version });
      if (rows.length > 0 && rows.every((r: { state: string }) => r.state !== 'running')) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  const phase = (name: string) => console.error(`[bench:reindex] ${name} (load ${os.loadavg()[0]!.toFixed(1)})`);
  phase('warm-up re-index done; raw embedding');
  // 1. Raw: the same texts through emb.embed with version 3 (open and warm since the
  //    warm-up re-index), REINDEX_BATCH at a time, nothing else running.
  let started = performance.now();
  for (let i = 0; i < texts.length; i += REINDEX_BATCH) await embed(texts.slice(i, i + REINDEX_BATCH), '3');
  const rawSeconds = (performance.now() - started) / 1000;

  // 2. Idle query latency (more of it after step 4).
  phase('idle queries, before');
  const idleBefore = await queryLatencies(() => true, QUERIES);

  phase('re-index alone');
  // 3. Re-index of version 3 again (a finished re-index starts over from the first chunk), alone: throughput.
  started = performance.now();
  await broker.call('maintenance.models.reindex', { alias: ALIAS, version: '3' });
  await waitDone('3');
  const reindexSeconds = (performance.now() - started) / 1000;
  const stored = await (await stores.vectors()).count(scope, 'bench__3');

  phase('queries during a re-index');
  // 4. Queries on version 1 while a re-index of version 2 runs.
  await broker.call('maintenance.models.reindex', { alias: ALIAS, version: '2' });
  let running = true;
  const done = waitDone('2').then(() => (running = false));
  const during = await queryLatencies(() => !running, QUERIES);
  await done;
  // 5. Idle again, until the idle samples are as many as those taken during the re-index:
  //    a p95 of 60 samples against one of 500 compared two estimates of unequal noise, and
  //    a baseline from both sides of step 4 cancels drift in the machine's load.
  phase('idle queries, after');
  const idleAfter = await queryLatencies(() => true, Math.max(1, during.length - idleBefore.length));
  const idle = [...idleBefore, ...idleAfter];

  const rawRate = texts.length / rawSeconds;
  const reindexRate = texts.length / reindexSeconds;
  const idleP95 = p95(idle);
  const duringP95 = p95(during);
  const result = {
    bench: 'reindex',
    ratio: round(reindexRate / rawRate),
    goal: 0.8,
    query_p95_ratio: round(duringP95 / idleP95),
    query_p95_goal: 1.5,
    query_p95_lower_is_better: true,
    reindex_chunks_per_s: round(reindexRate, 1),
    raw_chunks_per_s: round(rawRate, 1),
    query_p95_idle_ms: round(idleP95, 1),
    query_p95_during_ms: round(duringP95, 1),
    queries_during: during.length,
    queries_idle: idle.length,
    chunks: texts.length,
    stored_vectors: stored,
    reindex_batch: REINDEX_BATCH,
    background_batch: config.models.embBackgroundBatch,
    emb_threads: THREADS,
    background_threads: config.models.embBackgroundThreads,
    background_nice: config.models.embBackgroundNice,
    onnxruntime_node: ortVersion,
    model: 'random-weight MiniLM-L6 shape, int8',
    node: process.version,
    load_avg: os.loadavg().map((l) => round(l, 2)),
  };
  await broker.stop();
  await stores.close();
  await rm(dataDir, { recursive: true, force: true });
  console.log(`re-index ${result.reindex_chunks_per_s} chunks/s vs raw ${result.raw_chunks_per_s} chunks/s; query p95 ${result.query_p95_idle_ms} ms idle, ${result.query_p95_during_ms} ms during re-index`);
  console.log(JSON.stringify(result));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
