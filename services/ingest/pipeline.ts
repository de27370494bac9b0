import { randomUUID } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import type { Logger } from 'pino';
import { chunkDocument } from '../../lib/chunking/index.ts';
import { appError, classify, isRetryable, type ErrorCode, type RagmeshError } from '../../lib/errors.ts';
import { extractDocument, type ExtractedDocument } from '../../lib/extract/index.ts';
import { invalidateAnswersForDocuments } from '../../lib/llm/answer-cache.ts';
import type { Database } from '../../lib/adapters/db/database.ts';
import { retryDelayMs, type JobDelivery, type JobQueue } from '../../lib/ports/job-queue.ts';
import type { KeyValueStore } from '../../lib/ports/key-value.ts';
import type { ObjectStore } from '../../lib/ports/object-store.ts';
import { tenantScope, type TenantScope } from '../../lib/ports/tenant-scope.ts';
import { collectionFor, type VectorPoint, type VectorStore } from '../../lib/ports/vector-store.ts';
import { ChunksRepository, type NewChunk } from '../../lib/repositories/chunks.ts';
import { DocumentsRepository } from '../../lib/repositories/documents.ts';
import { JobsRepository, type JobRow } from '../../lib/repositories/jobs.ts';
import { ModelsRepository } from '../../lib/repositories/models.ts';
import { artifactKeys, STEP_PROGRESS_END, type IngestPayload, type IngestStep } from './job-model.ts';

export interface PipelineDeps {
  db: Database;
  objects: ObjectStore;
  vectors: VectorStore;
  kv: KeyValueStore;
  queue: JobQueue;
  logger: Logger;
  workerId: string;
  maxAttempts: number;
  backoffMs: number;
  /** A dead worker's lock on a job lapses after this; a live one renews it at a third of it. */
  lockTtlMs: number;
  chunking: { targetTokens: number; overlapTokens: number };
  /** ctx.call bound to a job's principal, so emb and ocr see tenant and request id. */
  callerFor: (job: JobRow) => Call;
  /** Tells every api node (their SSE streams) that the job changed. */
  publishJob: (job: JobRow) => void;
  /** Jobs running on this node, by id, so a cancel event can abort one mid-step. */
  running: Map<string, AbortController>;
}

export type Call = <T>(action: string, params: unknown, options?: { timeout?: number }) => Promise<T>;

const EMBED_BATCH = 32;
/**
 * Vectors of more chunks than this are stored so a retry after a crash need not embed
 * again; fewer are cheaper to embed again than to store and read back.
 */
const STORE_EMBEDDINGS_ABOVE = EMBED_BATCH;
/** Progress within a step is written (and pushed to SSE) at most this often. */
const PROGRESS_EVERY_MS = 250;
const UPSERT_BATCH = 256;

/** A cancel reached the job: not a failure, nothing to retry. */
export class JobCanceled extends Error {
  constructor() {
    super('canceled');
    this.name = 'JobCanceled';
  }
}

/** The worker is stopping: the job is neither failed nor canceled; its message goes back unacknowledged. */
export class WorkerShutdown extends Error {
  constructor() {
    super('worker shutting down');
    this.name = 'WorkerShutdown';
  }
}

/** The job's `errorCode`: the catalogued code its origin gave, else INTERNAL. Whether to retry is `isRetryable`, decided there too. */
const errorCodeOf = (err: unknown): ErrorCode => classify(err).code;

/**
 * Runs one delivered ingest message: extract → chunk → embed → index → ready. Each
 * step stores its result as an object before the job moves on, so a retry or a
 * redelivery resumes at the first step without a stored result. The message is
 * acknowledged when this resolves; retries and dead-lettering are decided here.
 */
export async function runIngestJob(deps: PipelineDeps, delivery: JobDelivery): Promise<void> {
  const { message } = delivery;
  const scope = tenantScope(message.tenantId);
  const jobs = new JobsRepository(deps.db.knex);
  const job = await jobs.get(scope, message.jobId);
  // Finished, canceled, failed (a replay moves it back to queued first) or deleted with
  // its document: an old or duplicate message, nothing to do.
  if (!job || (job.status !== 'queued' && job.status !== 'running')) return;

  // One worker per job, even when the broker hands a message to a second worker while
  // the first is still alive (its connection dropped): the second tries again later.
  const lockKey = `job-lock:${job.id}`;
  if (!(await deps.kv.setIfAbsent(lockKey, deps.workerId, deps.lockTtlMs))) {
    await deps.queue.publish('ingest', message, { delayMs: Math.max(1000, deps.lockTtlMs / 3) });
    return;
  }
  const renew = setInterval(() => void deps.kv.set(lockKey, deps.workerId, deps.lockTtlMs).catch(() => undefined), deps.lockTtlMs / 3);
  const abort = new AbortController();
  deps.running.set(job.id, abort);
  const cancelPoll = setInterval(() => {
    void jobs.get(scope, job.id).then((j) => j?.cancelRequested && abort.abort(new JobCanceled()), () => undefined);
  }, 1000);

  try {
    await runClaimed(deps, scope, job, abort.signal);
  } finally {
    clearInterval(renew);
    clearInterval(cancelPoll);
    deps.running.delete(job.id);
    await deps.kv.deleteIfEquals(lockKey, deps.workerId).catch(() => undefined);
  }
}

async function runClaimed(deps: PipelineDeps, scope: TenantScope, claimed: JobRow, signal: AbortSignal): Promise<void> {
  const jobs = new JobsRepository(deps.db.knex);
  const documents = new DocumentsRepository(deps.db.knex);
  const payload = claimed.payload as unknown as IngestPayload;
  const attempts = claimed.attempts + 1;

  if (claimed.cancelRequested) {
    await finishCanceled(deps, scope, claimed, payload);
    return;
  }
  const job =
    claimed.status === 'running'
      ? await jobs.resume(scope, claimed.id, attempts)
      : await jobs.transition(scope, claimed.id, 'running', { attempts, error: null, errorCode: null });
  if (!job) return; // someone else moved it (canceled meanwhile)
  await documents.setStatus(scope, payload.documentId, 'running');
  deps.publishJob(job);

  let lastStep: IngestStep | null = null;
  let lastReport = 0;
  const progress = async (step: IngestStep, fraction: number) => {
    if (signal.aborted) throw signal.reason;
    if (step === lastStep && fraction < 1 && Date.now() - lastReport < PROGRESS_EVERY_MS) return;
    lastStep = step;
    lastReport = Date.now();
    const start = step === 'extract' ? 0 : STEP_PROGRESS_END[previousStep(step)];
    const value = start + (STEP_PROGRESS_END[step] - start) * Math.min(Math.max(fraction, 0), 1);
    const updated = await jobs.reportProgress(scope, job.id, step, value);
    if (updated) deps.publishJob(updated);
  };
  // A first delivery of a new job has no stored step results: no need to look for them.
  const resumable = claimed.attempts > 0 || claimed.step !== null;

  const call = deps.callerFor(job);
  try {
    const extracted = await stepExtract(deps, call, scope, payload, signal, progress, resumable);
    const chunks = await stepChunk(deps, scope, payload, extracted, progress, resumable);
    const embeddings = await stepEmbed(deps, call, scope, payload, chunks, signal, progress, resumable);
    await stepIndex(deps, scope, job, payload, chunks, embeddings, signal, progress);
  } catch (err) {
    if (signal.reason instanceof WorkerShutdown) throw signal.reason;
    // A document deleted under the job: its delete already canceled the job in intent.
    if (signal.aborted || err instanceof JobCanceled || (err as RagmeshError)?.type === 'DOCUMENT_DELETED') {
      await finishCanceled(deps, scope, job, payload);
      return;
    }
    await finishFailed(deps, scope, job, payload, err);
  }
}

function previousStep(step: IngestStep): IngestStep {
  return step === 'chunk' ? 'extract' : step === 'embed' ? 'chunk' : step === 'index' ? 'embed' : 'extract';
}

type Progress = (step: IngestStep, fraction: number) => Promise<void>;

async function stepExtract(deps: PipelineDeps, call: Call, scope: TenantScope, payload: IngestPayload, signal: AbortSignal, progress: Progress, resumable: boolean): Promise<ExtractedDocument> {
  const keys = artifactKeys(scope.tenantId, payload.documentId, payload.version);
  const stored = resumable ? await readJson<ExtractedDocument>(deps.objects, keys.extracted) : null;
  if (stored) return stored;
  await progress('extract', 0);
  const bytes = await buffer(await deps.objects.get(payload.objectKey));
  const extracted = await extractDocument(bytes, {
    kind: payload.kind as ExtractedDocument['kind'],
    signal,
    ocr: (png) => call<{ text: string; confidence: number }>('ingest.ocr', { image: png.toString('base64') }, { timeout: 120_000 }),
    onProgress: (done, total) => void progress('extract', total > 0 ? done / total : 0).catch(() => undefined),
  });
  if (signal.aborted) throw signal.reason;
  await deps.objects.put(keys.extracted, Buffer.from(JSON.stringify(extracted)), { contentType: 'application/json' });
  return extracted;
}

type StoredChunk = NewChunk & { id: string };

async function stepChunk(deps: PipelineDeps, scope: TenantScope, payload: IngestPayload, extracted: ExtractedDocument, progress: Progress, resumable: boolean): Promise<StoredChunk[]> {
  const keys = artifactKeys(scope.tenantId, payload.documentId, payload.version);
  const stored = resumable ? await readJson<StoredChunk[]>(deps.objects, keys.chunks) : null;
  if (stored) return stored;
  await progress('chunk', 0);
  const seen = new Set<string>();
  // Identical passages (repeated headers, boilerplate) are indexed once per document.
  const chunks = chunkDocument(extracted, deps.chunking)
    .filter((c) => !seen.has(c.contentHash) && seen.add(c.contentHash))
    .map((c, ord) => ({ ...c, ord, id: randomUUID() }));
  if (chunks.length === 0) {
    throw appError('NO_TEXT', 'No text could be extracted from the file', { documentId: payload.documentId });
  }
  await deps.objects.put(keys.chunks, Buffer.from(JSON.stringify(chunks)), { contentType: 'application/json' });
  return chunks;
}

interface Embeddings {
  alias: string;
  version: string;
  dimension: number;
  collection: string;
  vectors: Float32Array;
}

/** Embeds every chunk with every active embedding model, pinning the version it started with. */
async function stepEmbed(
  deps: PipelineDeps,
  call: Call,
  scope: TenantScope,
  payload: IngestPayload,
  chunks: StoredChunk[],
  signal: AbortSignal,
  progress: Progress,
  resumable: boolean,
): Promise<Embeddings[]> {
  const keys = artifactKeys(scope.tenantId, payload.documentId, payload.version);
  // Every live version: the active one, the previous one (rollback finds this document
  // too) and any being re-indexed beside them (a switch finds it without a gap).
  const live = await new ModelsRepository(deps.db.knex).liveEmbedVersions();
  if (live.length === 0) throw appError('NO_EMBEDDING_MODEL', 'No embedding model is active');
  const results: Embeddings[] = [];
  let done = 0;
  const total = live.length * chunks.length;
  await progress('embed', 0);
  for (const { alias, version } of live) {
    const flag = { alias, activeVersion: version };
    const collection = collectionFor(flag.alias, flag.activeVersion);
    const meta = resumable ? await readJson<{ dimension: number; count: number }>(deps.objects, keys.embeddingsMeta(collection)) : null;
    if (meta && meta.count === chunks.length) {
      const raw = await buffer(await deps.objects.get(keys.embeddings(collection)));
      results.push({ alias: flag.alias, version: flag.activeVersion, dimension: meta.dimension, collection, vectors: new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4) });
      done += chunks.length;
      continue;
    }
    let dimension = 0;
    let vectors = new Float32Array(0);
    for (let start = 0; start < chunks.length; start += EMBED_BATCH) {
      if (signal.aborted) throw signal.reason;
      const batch = chunks.slice(start, start + EMBED_BATCH);
      const out = await call<{ dimension: number; vectors: number[][] }>('emb.embed', {
        alias: flag.alias,
        version: flag.activeVersion,
        kind: 'passage',
        texts: batch.map((c) => c.text),
      }, { timeout: 300_000 });
      if (dimension === 0) {
        dimension = out.dimension;
        vectors = new Float32Array(chunks.length * dimension);
      }
      out.vectors.forEach((v, i) => vectors.set(v, (start + i) * dimension));
      done += batch.length;
      await progress('embed', done / total);
    }
    if (chunks.length > STORE_EMBEDDINGS_ABOVE) {
      await deps.objects.put(keys.embeddings(collection), Buffer.from(vectors.buffer, vectors.byteOffset, vectors.byteLength));
      await deps.objects.put(keys.embeddingsMeta(collection), Buffer.from(JSON.stringify({ alias: flag.alias, version: flag.activeVersion, dimension, count: chunks.length })));
    }
    results.push({ alias: flag.alias, version: flag.activeVersion, dimension, collection, vectors });
  }
  return results;
}

/**
 * Makes the new version searchable in one visible step: vectors are written first
 * under the new chunk ids (search drops vector hits without a chunk row), then one
 * transaction swaps the chunk rows, commits the document version and marks the job
 * ready; only then do the previous version's vectors and file go.
 */
async function stepIndex(
  deps: PipelineDeps,
  scope: TenantScope,
  job: JobRow,
  payload: IngestPayload,
  chunks: StoredChunk[],
  embeddings: Embeddings[],
  signal: AbortSignal,
  progress: Progress,
): Promise<void> {
  await progress('index', 0);
  const updatedAt = new Date().toISOString();
  for (const e of embeddings) {
    await deps.vectors.ensureCollection({ name: e.collection, dimension: e.dimension });
    for (let start = 0; start < chunks.length; start += UPSERT_BATCH) {
      if (signal.aborted) throw signal.reason;
      const points: VectorPoint[] = chunks.slice(start, start + UPSERT_BATCH).map((c, i) => ({
        id: c.id,
        vector: e.vectors.subarray((start + i) * e.dimension, (start + i + 1) * e.dimension),
        payload: {
          source_id: payload.sourceId,
          document_id: payload.documentId,
          chunk_id: c.id,
          page: c.page ?? null,
          lang: c.lang,
          mime: payload.mime,
          version: payload.version,
          updated_at: updatedAt,
          tags: payload.tags,
          embed_model_alias: e.alias,
          embed_model_version: e.version,
        },
      }));
      await deps.vectors.upsert(scope, e.collection, points);
    }
  }
  if (signal.aborted) throw signal.reason;

  const jobs = new JobsRepository(deps.db.knex);
  const documents = new DocumentsRepository(deps.db.knex);
  const chunksRepo = new ChunksRepository(deps.db.knex);
  let previous: Awaited<ReturnType<DocumentsRepository['commitVersion']>> = null;
  const ready = await deps.db.knex.transaction(async (trx) => {
    const current = await jobs.get(scope, job.id, trx);
    if (!current || current.cancelRequested) throw new JobCanceled();
    await chunksRepo.deleteByDocument(scope, payload.documentId, trx);
    await chunksRepo.insertMany(scope, payload.documentId, chunks, trx);
    previous = await documents.commitVersion(scope, payload.documentId, {
      version: payload.version,
      contentHash: payload.contentHash,
      objectKey: payload.objectKey,
      sizeBytes: payload.sizeBytes,
      mime: payload.mime,
      filename: payload.filename,
      tags: payload.tags,
    }, trx);
    if (!previous) throw appError('DOCUMENT_DELETED', 'The document was deleted while it was being indexed');
    return jobs.transition(scope, job.id, 'ready', { step: 'index', progress: 1 }, trx);
  });
  if (ready) deps.publishJob(ready);

  const before = previous as Awaited<ReturnType<DocumentsRepository['commitVersion']>>;
  for (const e of payload.version > 1 ? embeddings : []) {
    await deps.vectors.deleteByDocument(scope, e.collection, [payload.documentId], { below: payload.version }).catch((err: unknown) =>
      deps.logger.warn({ err, collection: e.collection }, 'could not remove the previous version\'s vectors'),
    );
  }
  if (before && before.objectKey && before.objectKey !== payload.objectKey) await deps.objects.delete(before.objectKey).catch(() => undefined);
  if (before && before.version < payload.version) await deleteArtifacts(deps.objects, scope, payload.documentId, before.version);
  // A first version was never cited: no cached answer can depend on it.
  if (payload.version > 1) {
    await invalidateAnswersForDocuments(deps.kv, scope, [payload.documentId]).catch((err: unknown) =>
      deps.logger.warn({ err }, 'answer cache invalidation failed'),
    );
  }
}

async function finishCanceled(deps: PipelineDeps, scope: TenantScope, job: JobRow, payload: IngestPayload): Promise<void> {
  const jobs = new JobsRepository(deps.db.knex);
  // Vectors written for this version before the cancel are not searchable (no chunk rows) but must not linger.
  for (const { alias, version } of await new ModelsRepository(deps.db.knex).liveEmbedVersions()) {
    await deps.vectors.deleteByDocument(scope, collectionFor(alias, version), [payload.documentId], { only: payload.version }).catch(() => undefined);
  }
  const canceled = await jobs.transition(scope, job.id, 'canceled', { error: null, errorCode: null });
  await settleDocumentStatus(deps, scope, payload, 'canceled');
  if (canceled) deps.publishJob(canceled);
}

async function finishFailed(deps: PipelineDeps, scope: TenantScope, job: JobRow, payload: IngestPayload, err: unknown): Promise<void> {
  const jobs = new JobsRepository(deps.db.knex);
  const message = (err as Error)?.message ?? String(err);
  const code = errorCodeOf(err);
  const attempts = job.attempts;
  if (isRetryable(err) && attempts < deps.maxAttempts) {
    const delayMs = retryDelayMs(deps.backoffMs, attempts);
    deps.logger.warn({ err, jobId: job.id, attempts, retryInMs: delayMs }, 'ingest step failed; retrying');
    const queued = await jobs.transition(scope, job.id, 'queued', { error: `${message} (retrying in ${Math.round(delayMs / 1000)} s)`, errorCode: code });
    if (queued) {
      await deps.queue.publish('ingest', { jobId: job.id, tenantId: scope.tenantId, type: 'ingest', attempt: attempts + 1, enqueuedAt: new Date().toISOString() }, { delayMs });
      deps.publishJob(queued);
    }
    return;
  }
  deps.logger.error({ err, jobId: job.id, attempts, code }, 'ingest job failed');
  const failed = await jobs.transition(scope, job.id, 'failed', { error: message, errorCode: code });
  await settleDocumentStatus(deps, scope, payload, 'failed');
  await deps.queue.deadLetter('ingest', { jobId: job.id, tenantId: scope.tenantId, type: 'ingest', attempt: attempts, enqueuedAt: new Date().toISOString() }, `${code}: ${message}`);
  if (failed) deps.publishJob(failed);
}

/** A document that has an indexed version stays `ready` (its old content still answers); a new one takes the job's fate. */
async function settleDocumentStatus(deps: PipelineDeps, scope: TenantScope, payload: IngestPayload, status: 'failed' | 'canceled'): Promise<void> {
  const documents = new DocumentsRepository(deps.db.knex);
  const document = await documents.get(scope, payload.documentId);
  if (!document) return;
  const hasIndexedVersion = document.contentHash !== payload.contentHash;
  await documents.setStatus(scope, payload.documentId, hasIndexedVersion ? 'ready' : status);
}

export async function deleteArtifacts(objects: ObjectStore, scope: TenantScope, documentId: string, version: number): Promise<void> {
  const { prefix } = artifactKeys(scope.tenantId, documentId, version);
  for await (const item of objects.list(prefix)) await objects.delete(item.key);
}

async function readJson<T>(objects: ObjectStore, key: string): Promise<T | null> {
  if (!(await objects.stat(key))) return null;
  return JSON.parse((await buffer(await objects.get(key))).toString('utf8')) as T;
}
