import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client } from 'minio';
import { appError, RagmeshError } from '../../errors.ts';
import { DependencyHealth } from '../dependency-health.ts';
import type { S3Config } from '../../config/env.ts';
import { assertObjectKey, assertObjectPrefix, type ObjectInfo, type ObjectStore, type PutOptions } from '../../ports/object-store.ts';

/** MinIO or any S3 API, through the `minio` client. */
export class S3ObjectStore implements ObjectStore {
  readonly backend = 's3' as const;
  readonly health: DependencyHealth;
  private readonly client: Client;

  constructor(
    private readonly s3: S3Config,
    readonly bucket: string,
  ) {
    this.client = new Client({
      endPoint: s3.endPoint,
      port: s3.port,
      useSSL: s3.useSSL,
      accessKey: s3.accessKey,
      secretKey: s3.secretKey,
      region: s3.region,
      pathStyle: true,
    });
    this.health = new DependencyHealth('objects', () => this.rawPing());
  }

  async ensureBucket(): Promise<void> {
    return this.classified(() => this.ensureBucketRaw());
  }

  private async ensureBucketRaw(): Promise<void> {
    if (await this.client.bucketExists(this.bucket)) return;
    try {
      await this.client.makeBucket(this.bucket, this.s3.region);
    } catch (err) {
      // Another process made it first.
      const code = (err as { code?: string }).code;
      if (code !== 'BucketAlreadyOwnedByYou' && code !== 'BucketAlreadyExists') throw err;
    }
  }

  /**
   * Given no size, the minio client holds whole 64 MiB parts in memory and always
   * uses multipart, so a stream of unknown length is measured first: up to 1 MiB in
   * memory (one plain PUT), anything longer spooled to a temporary file.
   */
  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<ObjectInfo> {
    assertObjectKey(key);
    return this.classified(() => this.putRaw(key, body, options));
  }

  private async putRaw(key: string, body: Readable | Buffer, options: PutOptions): Promise<ObjectInfo> {
    const metadata = options.contentType ? { 'Content-Type': options.contentType } : {};
    let size: number;
    if (Buffer.isBuffer(body) || options.size !== undefined) {
      size = Buffer.isBuffer(body) ? body.length : options.size!;
      await this.client.putObject(this.bucket, key, body, size, metadata);
    } else {
      const { head, rest } = await readHead(body, IN_MEMORY_LIMIT);
      if (!rest) {
        size = head.length;
        await this.client.putObject(this.bucket, key, head, size, metadata);
      } else {
        const spool = path.join(tmpdir(), `ragmesh-upload-${randomUUID()}`);
        try {
          const file = createWriteStream(spool, { flags: 'wx', mode: 0o600 });
          file.write(head);
          await pipeline(rest, file);
          size = (await stat(spool)).size;
          await this.client.putObject(this.bucket, key, createReadStream(spool), size, metadata);
        } finally {
          await rm(spool, { force: true });
        }
      }
    }
    return { key, size, lastModified: new Date(), contentType: options.contentType };
  }

  async get(key: string): Promise<Readable> {
    assertObjectKey(key);
    try {
      return await this.client.getObject(this.bucket, key);
    } catch (err) {
      if (isMissing(err)) throw appError('OBJECT_NOT_FOUND', `No object "${key}" in bucket "${this.bucket}"`);
      throw this.classify(err);
    }
  }

  async readInto(key: string, into: Buffer): Promise<number | null> {
    const body = await this.get(key);
    let read = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (read + chunk.length > into.length) return null;
        chunk.copy(into, read);
        read += chunk.length;
      }
      return read;
    } finally {
      // Stops a download that did not fit (a finished one is already closed).
      body.destroy();
    }
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    assertObjectKey(key);
    try {
      const info = await this.client.statObject(this.bucket, key);
      return {
        key,
        size: info.size,
        lastModified: info.lastModified,
        contentType: (info.metaData as Record<string, string> | undefined)?.['content-type'],
      };
    } catch (err) {
      if (isMissing(err)) return null;
      throw this.classify(err);
    }
  }

  async delete(key: string): Promise<void> {
    assertObjectKey(key);
    await this.classified(() => this.client.removeObject(this.bucket, key));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertObjectPrefix(prefix);
    const stream = this.client.listObjectsV2(this.bucket, prefix, true);
    try {
      for await (const item of stream as AsyncIterable<{ name?: string; size: number; lastModified: Date }>) {
        if (item.name) yield { key: item.name, size: item.size, lastModified: item.lastModified };
      }
    } catch (err) {
      throw this.classify(err);
    }
  }

  async presignPut(key: string, expirySeconds: number): Promise<string | null> {
    assertObjectKey(key);
    return this.client.presignedPutObject(this.bucket, key, expirySeconds);
  }

  async ping(): Promise<void> {
    await this.classified(() => this.rawPing());
  }

  private async rawPing(): Promise<void> {
    if (!(await this.client.bucketExists(this.bucket))) throw new Error(`bucket "${this.bucket}" does not exist`);
  }

  /** An unreachable or failing S3 becomes a retryable 503 OBJECTS_UNAVAILABLE at its origin; answers about the request pass. */
  private classify(err: unknown): unknown {
    if (err instanceof RagmeshError || !isObjectsUnavailable(err)) return err;
    this.health.reportDown(err as Error);
    return Object.assign(appError('OBJECTS_UNAVAILABLE', 'Object storage is unreachable right now; retry shortly'), { cause: err });
  }

  private async classified<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw this.classify(err);
    }
  }

  async close(): Promise<void> {
    this.health.close();
  }
}

const IN_MEMORY_LIMIT = 1024 * 1024;

/**
 * Reads until the stream ends or `limit` bytes arrived. `rest` is null when it ended;
 * otherwise a stream of what follows.
 */
async function readHead(stream: Readable, limit: number): Promise<{ head: Buffer; rest: Readable | null }> {
  // Iterated by hand: leaving a for-await loop early would destroy the stream.
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const parts: Buffer[] = [];
  let length = 0;
  while (length < limit) {
    const { value, done } = await iterator.next();
    if (done) return { head: Buffer.concat(parts), rest: null };
    parts.push(value);
    length += value.length;
  }
  return { head: Buffer.concat(parts), rest: Readable.from({ [Symbol.asyncIterator]: () => iterator }) };
}

function isMissing(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'NoSuchKey' || code === 'NotFound' || code === 'NoSuchObject';
}

/** Node's socket errors, and S3's own "try again" answers (5xx codes). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET']);
const RETRY_LATER = new Set(['InternalError', 'ServiceUnavailable', 'SlowDown', 'RequestTimeout', 'XMinioServerNotInitialized']);

export function isObjectsUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: string; cause?: { code?: unknown } } | null;
  if (!e) return false;
  const code = typeof e.code === 'string' ? e.code : typeof e.cause?.code === 'string' ? e.cause.code : '';
  if (UNREACHABLE.has(code) || RETRY_LATER.has(code)) return true;
  return /socket hang up|ECONNREFUSED|ECONNRESET|other side closed/i.test(String(e.message ?? ''));
}
