import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable, Transform } from 'node:stream';
import busboy from 'busboy';
import type { Principal } from '../../lib/auth/jwt.ts';
import { appError, RagmeshError } from '../../lib/errors.ts';
import { sniffType } from '../../lib/extract/sniff.ts';
import type { Database } from '../../lib/adapters/db/database.ts';
import type { JobQueue } from '../../lib/ports/job-queue.ts';
import type { ObjectStore } from '../../lib/ports/object-store.ts';
import type { TenantScope } from '../../lib/ports/tenant-scope.ts';
import { DocumentsRepository, type DocumentRow } from '../../lib/repositories/documents.ts';
import { JobsRepository, type JobRow } from '../../lib/repositories/jobs.ts';
import { ingestIdempotencyKey, jobView, type IngestPayload, type JobView } from '../ingest/job-model.ts';

const HEAD_BYTES = 64 * 1024;

export interface StoredUpload {
  objectKey: string;
  sizeBytes: number;
  sha256: string;
  /** The first 64 KiB, for sniffing the type from content. */
  head: Buffer;
  filename: string | null;
}

export interface UploadFields {
  sourceId?: string;
  tags?: string[];
  title?: string;
  /** Queue an analysis of the document once its text is indexed (`analyze=true`). */
  analyze?: boolean;
}

export interface UploadResult {
  document: ReturnType<typeof documentView>;
  job: JobView | null;
  /** The same content was already there: nothing new was stored or queued. */
  duplicate: boolean;
}

export function uploadKey(scope: TenantScope): string {
  return `tenants/${scope.tenantId}/uploads/${randomUUID()}`;
}

/**
 * Streams `body` into the object store while hashing it, counting it and keeping its
 * head; the file never sits whole in memory. Over `maxBytes` the object is removed
 * and the caller gets 413.
 */
export async function storeStream(objects: ObjectStore, key: string, body: Readable, maxBytes: number): Promise<Omit<StoredUpload, 'filename'>> {
  const meter = new ContentMeter();
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (meter.size + chunk.length > maxBytes) return done(tooLarge(maxBytes));
      meter.add(chunk);
      done(null, chunk);
    },
  });
  // The store attaches its own handlers only after an await; an early error must not go unhandled.
  let tapError: unknown = null;
  tap.on('error', (err) => (tapError ??= err));
  body.on('error', (err) => tap.destroy(err));
  try {
    await objects.put(key, body.pipe(tap));
    if (tapError) throw tapError;
  } catch (caught) {
    const err = tapError ?? caught;
    // Drain the rest, so a multipart request can still be read to its end and answered.
    body.unpipe(tap);
    tap.destroy();
    body.resume();
    await objects.delete(key).catch(() => undefined);
    throw err;
  }
  return { objectKey: key, ...meter.result() };
}

/** Size, SHA-256 and the first 64 KiB (for sniffing) of bytes passing through. */
class ContentMeter {
  size = 0;
  private readonly hash = createHash('sha256');
  private readonly head: Buffer[] = [];
  private headLength = 0;

  add(chunk: Buffer): void {
    this.size += chunk.length;
    this.hash.update(chunk);
    if (this.headLength < HEAD_BYTES) {
      const part = chunk.subarray(0, HEAD_BYTES - this.headLength);
      this.head.push(part);
      this.headLength += part.length;
    }
  }

  result(): { sizeBytes: number; sha256: string; head: Buffer } {
    return { sizeBytes: this.size, sha256: this.hash.digest('hex'), head: Buffer.concat(this.head) };
  }
}

/** Measures an object already in the store (a presigned upload): what was stored, not what the client says. */
export async function measureStored(objects: ObjectStore, key: string): Promise<{ sizeBytes: number; sha256: string; head: Buffer }> {
  const meter = new ContentMeter();
  for await (const chunk of await objects.get(key)) meter.add(chunk as Buffer);
  return meter.result();
}

export function tooLarge(maxBytes: number): RagmeshError {
  return appError('FILE_TOO_LARGE', `The file is larger than the limit of ${maxBytes} bytes`, { maxBytes });
}

/**
 * Receives a multipart/form-data request: each file part streams to the object store
 * as it arrives; fields (`source_id`, `tags`, `title`) may come before or after it.
 * Anything wrong with one part rejects the request and removes every stored part.
 */
export async function receiveMultipart(
  req: IncomingMessage,
  options: { objects: ObjectStore; scope: TenantScope; maxBytes: number; maxFiles: number },
): Promise<{ files: StoredUpload[]; fields: UploadFields }> {
  const contentType = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(contentType)) {
    throw appError('EXPECTED_MULTIPART', 'Send the file as multipart/form-data (field "file")');
  }
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: req.headers, limits: { files: options.maxFiles, fields: 20, fieldSize: 64 * 1024, fileSize: options.maxBytes + 1 } });
  } catch (err) {
    throw appError('MALFORMED_MULTIPART', `Malformed multipart request: ${(err as Error).message}`);
  }
  const raw: Record<string, string> = {};
  const stored: Array<Promise<StoredUpload>> = [];
  let failure: RagmeshError | null = null;

  await new Promise<void>((resolve, reject) => {
    parser.on('file', (_name, stream, info) => {
      const key = uploadKey(options.scope);
      stored.push(
        storeStream(options.objects, key, stream, options.maxBytes).then((s) => ({ ...s, filename: safeFilename(info.filename) })),
      );
      // Keep the parser moving even if a store failed: the request must be read to the end.
      stored.at(-1)!.catch(() => stream.resume());
    });
    parser.on('field', (name, value) => {
      raw[name] = value;
    });
    parser.on('filesLimit', () => {
      failure ??= appError('TOO_MANY_FILES', `At most ${options.maxFiles} files per request`);
    });
    parser.on('error', (err: Error) => reject(appError('MALFORMED_MULTIPART', `Malformed multipart request: ${err.message}`)));
    parser.on('close', () => resolve());
    req.on('aborted', () => reject(appError('UPLOAD_ABORTED', 'The client closed the connection during the upload')));
    req.pipe(parser);
  });

  const settled = await Promise.allSettled(stored);
  const files = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const firstError = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')?.reason;
  failure ??= firstError ?? (files.length === 0 ? appError('NO_FILE', 'The request has no file part (field "file")') : null);
  if (failure) {
    await Promise.all(files.map((f) => options.objects.delete(f.objectKey).catch(() => undefined)));
    throw failure;
  }
  return { files, fields: parseFields(raw) };
}

const SOURCE_ID = /^[\p{L}\p{N}._:@\/-]{1,256}$/u;
const TAG = /^[\p{L}\p{N}._:-]{1,64}$/u;

export function parseFields(raw: Record<string, unknown>): UploadFields {
  const fields: UploadFields = {};
  const sourceId = raw.source_id ?? raw.sourceId;
  if (sourceId !== undefined && sourceId !== '') {
    if (typeof sourceId !== 'string' || !SOURCE_ID.test(sourceId)) {
      throw appError('INVALID_SOURCE_ID', 'source_id: 1-256 letters, digits and ._:@/-');
    }
    fields.sourceId = sourceId;
  }
  const tags = raw.tags;
  if (tags !== undefined && tags !== '') {
    const list = Array.isArray(tags) ? tags : String(tags).split(',');
    const clean = [...new Set(list.map((t) => String(t).trim()).filter(Boolean))];
    if (clean.length > 32 || clean.some((t) => !TAG.test(t))) throw appError('INVALID_TAGS', 'tags: at most 32, each 1-64 letters, digits and ._:-');
    fields.tags = clean;
  }
  if (typeof raw.title === 'string' && raw.title.trim()) fields.title = raw.title.trim().slice(0, 500);
  if (raw.analyze !== undefined && raw.analyze !== '') fields.analyze = raw.analyze === true || raw.analyze === 'true' || raw.analyze === '1';
  return fields;
}

/** A file name as metadata only (object keys never derive from it): last path segment, no control characters. */
export function safeFilename(name: string | undefined): string | null {
  if (!name) return null;
  const base = name.split(/[\\/]/).pop()!.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return base && base !== '.' && base !== '..' ? base.slice(0, 255) : null;
}

export function documentView(d: DocumentRow) {
  return {
    id: d.id,
    sourceId: d.sourceId,
    title: d.title,
    filename: d.filename,
    mime: d.mime,
    sizeBytes: d.sizeBytes,
    contentHash: d.contentHash,
    tags: d.tags,
    status: d.status,
    version: d.version,
    createdBy: d.createdBy,
    createdAt: d.createdAt.toISOString(),
    updatedAt: d.updatedAt.toISOString(),
  };
}

export interface RegisterDeps {
  db: Database;
  objects: ObjectStore;
  queue: JobQueue;
  maxAttempts: number;
  publishJob: (job: JobRow) => void;
}

/**
 * Turns a stored upload into a document (or a new version of one, by source id) and
 * a queued ingest job, in one transaction, then queues the job. The same content for
 * the same tenant is answered with the existing document and nothing is stored.
 * Returns once the job is recorded and its message confirmed by the queue.
 */
export async function registerUpload(deps: RegisterDeps, scope: TenantScope, principal: Principal, file: StoredUpload, fields: UploadFields): Promise<UploadResult> {
  let type: { kind: string; mime: string };
  try {
    type = sniffType(file.head, file.filename ?? undefined);
  } catch (err) {
    await deps.objects.delete(file.objectKey).catch(() => undefined);
    throw err;
  }
  const documents = new DocumentsRepository(deps.db.knex);
  const jobs = new JobsRepository(deps.db.knex);
  const sourceId = fields.sourceId ?? `sha256:${file.sha256}`;

  const outcome: { duplicateOf?: string; documentId?: string; job?: JobRow } = await deps.db.knex.transaction(async (trx) => {
    const sameContent = await trx('documents').where({ tenant_id: scope.tenantId, content_hash: file.sha256 }).first('id');
    if (sameContent) return { duplicateOf: sameContent.id as string };

    const existing = await trx('documents').where({ tenant_id: scope.tenantId, source_id: sourceId }).forUpdate().first('id', 'version');
    let documentId: string;
    let version: number;
    if (existing) {
      documentId = existing.id as string;
      version = (existing.version as number) + 1;
    } else {
      const [row] = await trx('documents')
        .insert({
          tenant_id: scope.tenantId,
          source_id: sourceId,
          title: fields.title ?? file.filename,
          filename: file.filename,
          mime: type.mime,
          size_bytes: file.sizeBytes,
          content_hash: file.sha256,
          object_key: file.objectKey,
          tags: fields.tags ?? [],
          created_by: principal.userId,
        })
        .onConflict(['tenant_id', 'content_hash'])
        .ignore()
        .returning('id');
      // Lost a race with an identical upload: that one is the document.
      if (!row) {
        const winner = await trx('documents').where({ tenant_id: scope.tenantId, content_hash: file.sha256 }).first('id');
        return { duplicateOf: winner.id as string };
      }
      documentId = row.id as string;
      version = 1;
    }
    const payload: IngestPayload = {
      documentId,
      sourceId,
      version,
      objectKey: file.objectKey,
      contentHash: file.sha256,
      sizeBytes: file.sizeBytes,
      mime: type.mime,
      kind: type.kind,
      filename: file.filename,
      tags: fields.tags ?? [],
    };
    const { job, created } = await jobs.create(scope, {
      type: 'ingest',
      idempotencyKey: ingestIdempotencyKey(documentId, sourceId, file.sha256),
      documentId,
      payload: payload as unknown as Record<string, unknown>,
      maxAttempts: deps.maxAttempts,
      createdBy: principal.userId,
    }, trx);
    if (!created) return { duplicateOf: documentId, job };
    await documents.setStatus(scope, documentId, 'queued', trx);
    return { documentId, job };
  });

  if (outcome.duplicateOf !== undefined) {
    await deps.objects.delete(file.objectKey).catch(() => undefined);
    const document = (await documents.get(scope, outcome.duplicateOf))!;
    const job = outcome.job ?? (await jobs.list(scope, { documentId: document.id, limit: 1 }))[0] ?? null;
    return { document: documentView(document), job: job ? jobView(job) : null, duplicate: true };
  }
  const job = outcome.job!;
  await deps.queue.publish('ingest', { jobId: job.id, tenantId: scope.tenantId, type: 'ingest', attempt: 1, enqueuedAt: new Date().toISOString() });
  deps.publishJob(job);
  const document = (await documents.get(scope, outcome.documentId!))!;
  return { document: documentView(document), job: jobView(job), duplicate: false };
}
