/**
 * bench:ingest — documents end to end over the mesh against the embedding alone.
 *
 *   ratio           = chunks/s of the whole pipeline (upload → extract → chunk → embed →
 *                     index → ready, separate processes on RabbitMQ, PostgreSQL, Redis, S3)
 *                   / chunks/s of emb.embed alone for the same chunks, same models,
 *                     same concurrency, measured in the same run          goal ≥ 0.70
 *   upload_p95_ms   = upload response time (file stored, document + job recorded, message
 *                     confirmed by RabbitMQ) of small files                goal ≤ 40 ms
 *
 * Uploads are measured first, with no ingest worker running (their jobs wait in
 * RabbitMQ, as they would behind a busy worker); then a worker starts and the
 * pipeline's throughput is the time it takes to bring that backlog to `ready`.
 *
 * Documents: the CISI abstracts (../shared/datasets/cisi), one .txt upload each. The
 * embedding model is a random-weight encoder in all-MiniLM-L6-v2's shape (int8): real
 * weights cannot be installed here, and throughput depends on the shape, not the values.
 * The bundled starter model is active too, as in a fresh deployment, so both sides
 * embed every chunk with both models.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ServiceBroker } from 'moleculer';
import pg from 'pg';
import { loadConfig } from '../lib/config/env.ts';
import { createLogger } from '../lib/logging.ts';
import { Stores } from '../lib/runtime/stores.ts';
import { upload, waitForJob } from '../test/support/ingest.ts';
import { TestMesh } from '../test/support/mesh.ts';
import { publishBenchEncoder } from './support.ts';

const DOCS = Number(process.env.BENCH_DOCS ?? 300);
const CONCURRENCY = Number(process.env.INGEST_CONCURRENCY ?? 2);
const EMB_THREADS = 2;
const CISI = path.resolve(import.meta.dirname, '../../shared/datasets/cisi/docs.jsonl');

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

async function main(): Promise<void> {
  const docs = (await readFile(CISI, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .slice(0, DOCS)
    .map((line) => JSON.parse(line) as { id: string; title: string; text: string });

  const mesh = await TestMesh.create({ INGEST_CONCURRENCY: String(CONCURRENCY), EMB_THREADS: String(EMB_THREADS), EMB_QUEUE_LIMIT: '4096' });
  try {
    // Publish the MiniLM-shaped model and make it active before the processes start.
    const stores = new Stores(loadConfig(mesh.env), createLogger('fatal'));
    await publishBenchEncoder(stores, 'minilm', 256);
    await stores.close();

    await Promise.all([mesh.start('gateway', 'api'), mesh.start('models', 'emb,llm,analyze,maintenance')]);
    const editor = await mesh.token('bench', 'writer', 'editor');

    // --- uploads: stored, recorded and queued; no worker yet, so the jobs wait in RabbitMQ
    const uploadMs: number[] = [];
    const jobIds: string[] = [];
    for (const doc of docs) {
      const t0 = performance.now();
      const res = await upload(mesh.apiUrl, editor, { name: `cisi-${doc.id}.txt`, content: `${doc.title}\n\n${doc.text}` }, { source_id: `cisi/${doc.id}` });
      uploadMs.push(performance.now() - t0);
      if (res.status !== 202) throw new Error(`upload ${doc.id}: ${res.status} ${JSON.stringify(res.body)}`);
      jobIds.push(res.body.job.id);
    }

    // --- the pipeline: a worker comes up and works the backlog off ------------------------
    await mesh.start('worker', 'ingest');
    const started = performance.now();
    for (const id of jobIds) {
      const job = await waitForJob(mesh.apiUrl, editor, id, ['ready', 'failed'], 600_000);
      if (job.status !== 'ready') throw new Error(`job ${id} ${job.status}: ${job.error}`);
    }
    const pipelineSeconds = (performance.now() - started) / 1000;

    const db = new pg.Client({ connectionString: mesh.databaseUrl });
    await db.connect();
    const { rows } = await db.query<{ text: string }>(`select text from chunks where tenant_id = 'bench' order by document_id, ord`);
    await db.end();
    const texts = rows.map((r) => r.text);

    // --- the same chunks through emb.embed alone ---------------------------------------
    const client = new ServiceBroker({ namespace: mesh.env.NAMESPACE, nodeID: 'bench-client', transporter: { type: 'AMQP', options: { url: mesh.env.TRANSPORTER, socketOptions: { noDelay: true } } } as never, logger: false });
    await client.start();
    await client.waitForServices(['emb']);
    const aliases = ['minilm', ...(await client.call<Array<{ alias: string }>, object>('emb.models', {})).map((m) => m.alias).filter((a) => a !== 'minilm')];
    const embedStarted = performance.now();
    for (const alias of aliases) {
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          for (;;) {
            const start = next;
            next += 32;
            if (start >= texts.length) return;
            await client.call('emb.embed', { alias, kind: 'passage', texts: texts.slice(start, start + 32) }, { timeout: 300_000 });
          }
        }),
      );
    }
    const embedSeconds = (performance.now() - embedStarted) / 1000;
    await client.stop();

    const pipelineChunksPerSecond = texts.length / pipelineSeconds;
    const embedChunksPerSecond = texts.length / embedSeconds;
    const ratio = pipelineChunksPerSecond / embedChunksPerSecond;
    const figures = {
      docs: docs.length,
      chunks: texts.length,
      models: aliases,
      docs_per_minute: round((docs.length / pipelineSeconds) * 60, 1),
      pipeline_chunks_per_s: round(pipelineChunksPerSecond, 1),
      embed_only_chunks_per_s: round(embedChunksPerSecond, 1),
      upload_p50_ms: round(percentile(uploadMs, 50), 1),
      upload_p95_ms: round(percentile(uploadMs, 95), 1),
      upload_goal_ms: 40,
      ingest_concurrency: CONCURRENCY,
      emb_threads: EMB_THREADS,
      node: process.version,
      ort: JSON.parse(await readFile(new URL('../node_modules/onnxruntime-node/package.json', import.meta.url), 'utf8')).version as string,
    };
    console.log(`pipeline: ${docs.length} documents, ${texts.length} chunks in ${round(pipelineSeconds, 1)} s; embed only: ${round(embedSeconds, 1)} s`);
    console.log(`upload response: p50 ${figures.upload_p50_ms} ms, p95 ${figures.upload_p95_ms} ms`);
    console.log(JSON.stringify({ bench: 'ingest', ratio: round(ratio), goal: 0.7, ...figures }));
  } finally {
    await mesh.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
