import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable, Transform } from 'node:stream';
import busboy from 'busboy';
import type { Principal } from '../../lib/auth/jwt.ts';
import { appError, RagmeshError } from '../../lib/errors.ts';
import { declaredTypeProblem, UploadScreen } from '../../lib/extract/screen.ts';
import { sniffType } from '../../lib/extract/sniff.ts';
import { relaySoon, stageJob } from '../../lib/jobs/commands.ts';
import type { JobsContext } from '../../lib/jobs/context.ts';
import { jobView, type JobView } from '../../lib/jobs/model.ts';
import type { IngestPayload } from '../../lib/jobs/types/ingest.ts';
import type { DocumentKind } from '../../lib/extract/types.ts';
import type { ObjectStore } from '../../lib/ports/object-store.ts';
import type { TenantScope } from '../../lib/ports/tenant-scope.ts';
import type { DocumentRow } from '../../lib/repositories/documents.ts';
import type { JobRow } from '../../lib/repositories/jobs.ts';

const HEAD_BYTES = 64 * 1024;

export interface StoredUpload {
  objectKey: string;
  sizeBytes: number;
  sha256: string;
  /** The first 64 KiB, for sniffing the type from content. */
  head: Buffer;
  /** Why the upload screen refuses the bytes (lib/extract/screen.ts), or null. */
  refusal: RagmeshError | null;
  filename: string | null;
  /** The content type the client declared for the file (a multipart part's), if any. */
  declaredType?: string | null;
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
export async function storeStream(objects: ObjectStore, key: string, body: Readable, maxBytes: number): Promise<Omit<StoredUpload, 'filename' | 'declaredType'>> {
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

/** Size, SHA-256, the first 64 KiB (for sniffing) and the screen's verdict of bytes passing through. */
class ContentMeter {
  size = 0;
  private readonly hash = createHash('sha256');
  private readonly screen = new UploadScreen();
  private readonly head: Buffer[] = [];
  private headLength = 0;

  add(chunk: Buffer): void {
    this.size += chunk.length;
    this.hash.update(chunk);
    this.screen.push(chunk);
    if (this.headLength < HEAD_BYTES) {
      const part = chunk.subarray(0, HEAD_BYTES - this.headLength);
      this.head.push(part);
      this.headLength += part.length;
    }
  }

  result(): { sizeBytes: number; sha256: string; head: Buffer; refusal: RagmeshError | null } {
    return { sizeBytes: this.size, sha256: this.hash.digest('hex'), head: Buffer.concat(this.head), refusal: this.screen.verdict() };
  }
}

/** Measures an object already in the store (a presigned upload): what was stored, not what the client says. */
export async function measureStored(objects: ObjectStore, key: string): Promise<{ sizeBytes: number; sha256: string; head: Buffer; refusal: RagmeshError | null }> {
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
        storeStream(options.objects, key, stream, options.maxBytes).then((s) => ({ ...s, filename: safeFilename(info.filename), declaredType: info.mimeType ?? null })),
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
    /** Pages without a text layer left unread because OCR is off in this deployment. */
    pagesWithoutText: d.pagesWithoutText,
    createdBy: d.createdBy,
    createdAt: d.createdAt.toISOString(),
    updatedAt: d.updatedAt.toISOString(),
  };
}

/**
 * What a stored upload is, or the refusal that keeps it from becoming a document: its
 * type from its bytes (415 UNSUPPORTED_TYPE), the upload screen's verdict (ENCRYPTED_PDF,
 * ACTIVE_CONTENT, POLYGLOT, ARCHIVE_BOMB, UNSAFE_ARCHIVE) and its declared type against
 * its bytes (415 TYPE_MISMATCH). Runs before any row or job exists; the caller removes the
 * object of a refused file.
 */
export function screenUpload(file: StoredUpload): { kind: DocumentKind; mime: string } {
  const type = sniffType(file.head, file.filename ?? undefined);
  if (file.refusal) throw file.refusal;
  const mismatch = declaredTypeProblem(type.kind, { filename: file.filename, contentType: file.declaredType });
  if (mismatch) throw mismatch;
  return type;
}

/**
 * Turns a stored upload into a document (or a new version of one, by source id) and
 * a queued ingest job, in one transaction with the job's message (outbox), then
 * relays the message. The same content for the same tenant is answered with the
 * existing document and nothing is stored. Returns once the document, the job and
 * its message are durable; the queue gets the message now or when it is back.
 */
export async function registerUpload(jobs: JobsContext, scope: TenantScope, principal: Principal, file: StoredUpload, fields: UploadFields): Promise<UploadResult> {
  const objects = await jobs.objects();
  let type: { kind: string; mime: string };
  try {
    type = screenUpload(file);
  } catch (err) {
    await objects.delete(file.objectKey).catch(() => undefined);
    throw err;
  }
  const { documents } = jobs.repos;
  const sourceId = fields.sourceId ?? `sha256:${file.sha256}`;

  // Everything the answer shows is read inside the transaction: once it commits, the
  // upload is stored, and a database lost right after must not turn that into a 503.
  const outcome: { duplicate: boolean; document: DocumentRow; job: JobRow | null } = await jobs.repos.transaction(async (trx) => {
    const duplicateOf = async (id: string, job?: JobRow) => {
      const document = (await documents.get(scope, id, trx))!;
      return { duplicate: true, document, job: job ?? (await jobs.repos.jobs.list(scope, { documentId: id, limit: 1 }, trx))[0] ?? null };
    };
    const sameContent = await documents.findByContentHash(scope, file.sha256, trx);
    if (sameContent) return duplicateOf(sameContent.id);

    const existing = await documents.lockBySource(scope, sourceId, trx);
    let documentId: string;
    let version: number;
    if (existing) {
      documentId = existing.id;
      version = existing.version + 1;
    } else {
      const inserted = await documents.insertIfNewContent(scope, {
        sourceId,
        title: fields.title ?? file.filename,
        filename: file.filename,
        mime: type.mime,
        sizeBytes: file.sizeBytes,
        contentHash: file.sha256,
        objectKey: file.objectKey,
        tags: fields.tags ?? [],
        createdBy: principal.userId,
      }, trx);
      // Lost a race with an identical upload: that one is the document.
      if (!inserted) return duplicateOf((await documents.findByContentHash(scope, file.sha256, trx))!.id);
      documentId = inserted.id;
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
    const { job, created } = await stageJob(jobs, scope, { type: 'ingest', payload, createdBy: principal.userId }, trx);
    if (!created) return duplicateOf(documentId, job);
    await documents.setStatus(scope, documentId, 'queued', trx);
    return { duplicate: false, document: (await documents.get(scope, documentId, trx))!, job };
  });

  if (outcome.duplicate) {
    await objects.delete(file.objectKey).catch(() => undefined);
    return { document: documentView(outcome.document), job: outcome.job ? jobView(outcome.job) : null, duplicate: true };
  }
  const job = outcome.job!;
  relaySoon(jobs, [job.id]);
  jobs.notify.updated(job);
  return { document: documentView(outcome.document), job: jobView(job), duplicate: false };
}
