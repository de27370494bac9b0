import type { Logger } from 'pino';
import { chunkDocument } from '../../lib/chunking/index.ts';
import { appError } from '../../lib/errors.ts';
import { uuidFromParts } from '../../lib/ids.ts';
import { extractDocument, type ExtractedDocument } from '../../lib/extract/index.ts';
import type { JobsContext } from '../../lib/jobs/context.ts';
import type { IngestPayload } from '../../lib/jobs/types/ingest.ts';
import type { JobHandler, JobRun } from '../../lib/jobs/worker.ts';
import { invalidateAnswersForDocuments } from '../../lib/llm/answer-cache.ts';
import type { KeyValueStore } from '../../lib/ports/key-value.ts';
import type { ObjectStore } from '../../lib/ports/object-store.ts';
import type { TenantScope } from '../../lib/ports/tenant-scope.ts';
import { collectionFor, type VectorPoint, type VectorStore } from '../../lib/ports/vector-store.ts';
import type { NewChunk } from '../../lib/repositories/chunks.ts';
import type { DocumentsRepository } from '../../lib/repositories/documents.ts';
import type { Repositories } from '../../lib/repositories/index.ts';
import type { JobRow } from '../../lib/repositories/jobs.ts';
import { artifactKeys, STEP_PROGRESS_END, type IngestStep } from './job-model.ts';
import { readAll } from '../../lib/streams.ts';

export interface PipelineDeps {
  jobs: JobsContext;
  repos: Repositories;
  objects: ObjectStore;
  vectors: VectorStore;
  kv: KeyValueStore;
  logger: Logger;
  chunking: { targetTokens: number; overlapTokens: number };
  /** OCR_ENABLED: false = pages without a text layer are marked in the document, not read. */
  ocr: boolean;
  /** ctx.call bound to a job's principal, so emb and ocr see tenant and request id. */
  callerFor: (job: JobRow) => Call;
  /** Chunk rows were committed (the search tables' statistics may need a refresh: lib/search/upkeep.ts). */
  chunksWritten?: () => void;
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

/**
 * The ingest job type's handler: extract → chunk → embed → index → ready. Each step
 * stores its result as an object before the job moves on, so a retry or a resumed
 * lease starts at the first step without a stored result. Claiming, leases,
 * retries, dead letters and cancels are the jobs module's (lib/jobs/worker.ts).
 */
export function ingestHandler(deps: PipelineDeps): JobHandler<'ingest'> {
  return {
    type: 'ingest',
    async run(run) {
      const { scope, job, payload, signal } = run;
      await deps.repos.documents.setStatus(scope, payload.documentId, 'running');
      let lastStep: IngestStep | null = null;
      let lastReport = 0;
      const progress = async (step: IngestStep, fraction: number) => {
        if (signal.aborted) throw signal.reason;
        if (step === lastStep && fraction < 1 && Date.now() - lastReport < PROGRESS_EVERY_MS) return;
        lastStep = step;
        lastReport = Date.now();
        const start = step === 'extract' ? 0 : STEP_PROGRESS_END[previousStep(step)];
        await run.progress(step, start + (STEP_PROGRESS_END[step] - start) * Math.min(Math.max(fraction, 0), 1));
      };
      const call = deps.callerFor(job);
      const extracted = await stepExtract(deps, call, scope, payload, signal, progress, run.resumable);
      const chunks = await stepChunk(deps, scope, payload, extracted, progress, run.resumable);
      const embeddings = await stepEmbed(deps, call, scope, payload, chunks, signal, progress, run.resumable);
      await stepIndex(deps, run, chunks, embeddings, extracted.pagesWithoutText ?? [], progress);
    },
    /** Vectors written for this version before the cancel are not searchable (no chunk rows) but must not linger. */
    async onCanceled({ scope, payload }) {
      for (const { alias, version } of await deps.repos.models.liveEmbedVersions()) {
        await deps.vectors.deleteByDocument(scope, collectionFor(alias, version), [payload.documentId], { only: payload.version }).catch(() => undefined);
      }
    },
  };
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
  const bytes = await readAll(await deps.objects.get(payload.objectKey));
  const extracted = await extractDocument(bytes, {
    kind: payload.kind as ExtractedDocument['kind'],
    signal,
    ocr: deps.ocr ? (png) => call<{ text: string; confidence: number }>('ingest.ocr', { image: png.toString('base64') }, { timeout: 120_000 }) : null,
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
    // Named by what they are, not at random: a second run of this job (a redelivery
    // while the first still ran) writes its vectors under the same ids, so none are orphaned.
    .map((c, ord) => ({ ...c, ord, id: uuidFromParts('chunk', scope.tenantId, payload.documentId, payload.version, ord, c.contentHash) }));
  if (chunks.length === 0) {
    const unread = extracted.pagesWithoutText ?? [];
    if (unread.length > 0) throw appError('NO_TEXT', `The file has no text layer and OCR is off in this deployment (OCR_ENABLED=false): ${unread.length} page(s) not read`, { documentId: payload.documentId, pagesWithoutText: unread });
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
  const live = await deps.repos.models.liveEmbedVersions();
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
      const raw = await readAll(await deps.objects.get(keys.embeddings(collection)));
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
async function stepIndex(deps: PipelineDeps, run: JobRun<'ingest'>, chunks: StoredChunk[], embeddings: Embeddings[], extractedPagesWithoutText: number[], progress: Progress): Promise<void> {
  const { scope, payload, signal } = run;
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

  const { documents, chunks: chunksRepo } = deps.repos;
  let previous: Awaited<ReturnType<DocumentsRepository['commitVersion']>> = null;
  await deps.repos.transaction(async (trx) => {
    // Fenced by the lease: a worker that lost the job to another changes nothing.
    await run.markReady(trx, { step: 'index', progress: 1 });
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
      pagesWithoutText: extractedPagesWithoutText,
    }, trx);
    if (!previous) throw appError('DOCUMENT_DELETED', 'The document was deleted while it was being indexed');
  });
  deps.chunksWritten?.();

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

export async function deleteArtifacts(objects: ObjectStore, scope: TenantScope, documentId: string, version: number): Promise<void> {
  const { prefix } = artifactKeys(scope.tenantId, documentId, version);
  for await (const item of objects.list(prefix)) await objects.delete(item.key);
}

async function readJson<T>(objects: ObjectStore, key: string): Promise<T | null> {
  if (!(await objects.stat(key))) return null;
  return JSON.parse((await readAll(await objects.get(key))).toString('utf8')) as T;
}
