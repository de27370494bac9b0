/**
 * bench:ingest — documents end to end over the mesh against the embedding alone.
 *
 *   ratio           = chunks/s of the whole pipeline (upload → extract → chunk → embed →
 *                     index → ready, separate processes on RabbitMQ, PostgreSQL, Redis, S3)
 *                   / chunks/s of emb.embed alone for the same chunks and models, in
 *                     batches of 32 (the better of 1 caller and INGEST_CONCURRENCY
 *                     callers), measured in the same run                   goal ≥ 0.70
 *   upload_p95_ms   = upload response time (file stored, document + job recorded, message
 *                     confirmed by RabbitMQ) of small files                goal ≤ 40 ms
 *
 * Uploads are measured first, with no ingest worker running (their jobs wait in
 * RabbitMQ, as they would behind a busy worker); then a worker starts and the
 * pipeline's throughput is the time it takes to bring that backlog to `ready`.
 *
 * Documents: the CISI abstracts (../shared/datasets/cisi). The headline uploads them as
 * reports of 20 abstracts each (Markdown, a heading per abstract: ~25 chunks, like a
 * multi-page document); `one_chunk_docs_ratio` uploads every abstract as its own
 * one-chunk file, the worst case for per-document costs (storage writes, job state,
 * events), which the headline amortizes and this one does not. The
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
const PER_DOCUMENT = Number(process.env.BENCH_ABSTRACTS_PER_DOCUMENT ?? 20);
const CONCURRENCY = Number(process.env.INGEST_CONCURRENCY ?? 4);
const EMB_THREADS = 2;
const CISI = path.resolve(import.meta.dirname, '../../shared/datasets/cisi/docs.jsonl');

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

interface Scenario {
  name: string;
  files: Array<{ name: string; sourceId: string; content: string }>;
}

interface Measured {
  docs: number;
  chunks: number;
  ratio: number;
  docsPerMinute: number;
  pipelineChunksPerSecond: number;
  embedOnlyChunksPerSecond: number;
  uploadMs: number[];
}

/**
 * Uploads a scenario's files with no worker running (the jobs wait in RabbitMQ), then
 * starts a worker and times the backlog to `ready`; then embeds the same chunks alone.
 */
async function measure(mesh: TestMesh, client: ServiceBroker, aliases: string[], scenario: Scenario, tenant: string): Promise<Measured> {
  const editor = await mesh.token(tenant, 'writer', 'editor');
  const uploadMs: number[] = [];
  const jobIds: string[] = [];
  for (const file of scenario.files) {
    const t0 = performance.now();
    const res = await upload(mesh.apiUrl, editor, { name: file.name, content: file.content }, { source_id: file.sourceId });
    uploadMs.push(performance.now() - t0);
    if (res.status !== 202) throw new Error(`upload ${file.name}: ${res.status} ${JSON.stringify(res.body)}`);
    jobIds.push(res.body.job.id);
  }

  const worker = await mesh.start(`worker-${scenario.name}`, 'ingest');
  const started = performance.now();
  for (const id of jobIds) {
    const job = await waitForJob(mesh.apiUrl, editor, id, ['ready', 'failed'], 600_000);
    if (job.status !== 'ready') throw new Error(`job ${id} ${job.status}: ${job.error}`);
  }
  const pipelineSeconds = (performance.now() - started) / 1000;
  await worker.stop();

  const db = new pg.Client({ connectionString: mesh.databaseUrl });
  await db.connect();
  const { rows } = await db.query<{ text: string }>('select text from chunks where tenant_id = $1 order by document_id, ord', [tenant]);
  await db.end();
  const texts = rows.map((r) => r.text);

  // The embedding side at its best: whole batches of 32, one caller or as many as the
  // worker's concurrency, whichever is faster on this run.
  const embedAll = async (callers: number) => {
    const t0 = performance.now();
    for (const alias of aliases) {
      let next = 0;
      await Promise.all(
        Array.from({ length: callers }, async () => {
          for (;;) {
            const start = next;
            next += 32;
            if (start >= texts.length) return;
            await client.call('emb.embed', { alias, kind: 'passage', texts: texts.slice(start, start + 32) }, { timeout: 300_000 });
          }
        }),
      );
    }
    return (performance.now() - t0) / 1000;
  };
  const embedSeconds = Math.min(await embedAll(1), await embedAll(CONCURRENCY));
  const pipelineChunksPerSecond = texts.length / pipelineSeconds;
  const embedOnlyChunksPerSecond = texts.length / embedSeconds;
  console.log(`${scenario.name}: ${scenario.files.length} documents, ${texts.length} chunks: pipeline ${round(pipelineSeconds, 1)} s, embedding alone ${round(embedSeconds, 1)} s`);
  return {
    docs: scenario.files.length,
    chunks: texts.length,
    ratio: pipelineChunksPerSecond / embedOnlyChunksPerSecond,
    docsPerMinute: (scenario.files.length / pipelineSeconds) * 60,
    pipelineChunksPerSecond,
    embedOnlyChunksPerSecond,
    uploadMs,
  };
}

async function main(): Promise<void> {
  const abstracts = (await readFile(CISI, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .slice(0, DOCS)
    .map((line) => JSON.parse(line) as { id: string; title: string; text: string });
  // Documents as people upload them: a report of many sections (PER_DOCUMENT abstracts).
  const reports: Scenario = {
    name: 'reports',
    files: Array.from({ length: Math.ceil(abstracts.length / PER_DOCUMENT) }, (_, i) => {
      const part = abstracts.slice(i * PER_DOCUMENT, (i + 1) * PER_DOCUMENT);
      return { name: `report-${i}.md`, sourceId: `reports/${i}`, content: part.map((a) => `## ${a.title}\n\n${a.text}`).join('\n\n') };
    }),
  };
  // The worst case for per-document costs: every abstract its own one-chunk document.
  const notes: Scenario = {
    name: 'notes',
    files: abstracts.map((a) => ({ name: `cisi-${a.id}.txt`, sourceId: `cisi/${a.id}`, content: `${a.title}\n\n${a.text}` })),
  };

  const mesh = await TestMesh.create({ INGEST_CONCURRENCY: String(CONCURRENCY), EMB_THREADS: String(EMB_THREADS), EMB_QUEUE_LIMIT: '4096' });
  try {
    // Publish the MiniLM-shaped model and make it active before the processes start.
    const stores = new Stores(loadConfig(mesh.env), createLogger('fatal'));
    await publishBenchEncoder(stores, 'minilm', 256);
    await stores.close();
    await Promise.all([mesh.start('gateway', 'api'), mesh.start('models', 'emb,llm,analyze,maintenance')]);

    const client = new ServiceBroker({ namespace: mesh.env.NAMESPACE, nodeID: 'bench-client', transporter: { type: 'AMQP', options: { url: mesh.env.TRANSPORTER, socketOptions: { noDelay: true } } } as never, logger: false });
    await client.start();
    await client.waitForServices(['emb']);
    const aliases = ['minilm', ...(await client.call<Array<{ alias: string }>, object>('emb.models', {})).map((m) => m.alias).filter((a) => a !== 'minilm')];

    const report = await measure(mesh, client, aliases, reports, 'bench-reports');
    const note = await measure(mesh, client, aliases, notes, 'bench-notes');
    await client.stop();

    const uploads = [...report.uploadMs, ...note.uploadMs];
    const figures = {
      docs: report.docs,
      chunks: report.chunks,
      abstracts_per_document: PER_DOCUMENT,
      docs_per_minute: round(report.docsPerMinute, 1),
      pipeline_chunks_per_s: round(report.pipelineChunksPerSecond, 1),
      embed_only_chunks_per_s: round(report.embedOnlyChunksPerSecond, 1),
      one_chunk_docs_ratio: round(note.ratio),
      one_chunk_docs: note.docs,
      one_chunk_docs_per_minute: round(note.docsPerMinute, 1),
      models: aliases,
      upload_p50_ms: round(percentile(uploads, 50), 1),
      upload_p95_ms: round(percentile(uploads, 95), 1),
      upload_goal_ms: 40,
      ingest_concurrency: CONCURRENCY,
      emb_threads: EMB_THREADS,
      node: process.version,
      ort: JSON.parse(await readFile(new URL('../node_modules/onnxruntime-node/package.json', import.meta.url), 'utf8')).version as string,
    };
    console.log(`upload response: p50 ${figures.upload_p50_ms} ms, p95 ${figures.upload_p95_ms} ms`);
    console.log(JSON.stringify({ bench: 'ingest', ratio: round(report.ratio), goal: 0.7, ...figures }));
  } finally {
    await mesh.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
