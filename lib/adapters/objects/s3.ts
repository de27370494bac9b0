import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client } from 'minio';
import { notFound } from '../../errors.ts';
import type { S3Config } from '../../config/env.ts';
import { assertObjectKey, assertObjectPrefix, type ObjectInfo, type ObjectStore, type PutOptions } from '../../ports/object-store.ts';

/** MinIO or any S3 API, through the `minio` client. */
export class S3ObjectStore implements ObjectStore {
  readonly backend = 's3' as const;
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
  }

  async ensureBucket(): Promise<void> {
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
   * A stream of unknown length is spooled to a temporary file first: given no size,
   * the minio client holds whole 64 MiB parts in memory and always uses multipart.
   */
  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<ObjectInfo> {
    assertObjectKey(key);
    const metadata = options.contentType ? { 'Content-Type': options.contentType } : {};
    if (Buffer.isBuffer(body) || options.size !== undefined) {
      await this.client.putObject(this.bucket, key, body, Buffer.isBuffer(body) ? body.length : options.size, metadata);
    } else {
      const spool = path.join(tmpdir(), `ragmesh-upload-${randomUUID()}`);
      try {
        await pipeline(body, createWriteStream(spool, { flags: 'wx', mode: 0o600 }));
        const { size } = await stat(spool);
        await this.client.putObject(this.bucket, key, createReadStream(spool), size, metadata);
      } finally {
        await rm(spool, { force: true });
      }
    }
    const info = await this.stat(key);
    if (!info) throw new Error(`S3 put of "${key}" succeeded but the object is not visible`);
    return info;
  }

  async get(key: string): Promise<Readable> {
    assertObjectKey(key);
    try {
      return await this.client.getObject(this.bucket, key);
    } catch (err) {
      if (isMissing(err)) throw notFound('OBJECT_NOT_FOUND', `No object "${key}" in bucket "${this.bucket}"`);
      throw err;
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
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    assertObjectKey(key);
    await this.client.removeObject(this.bucket, key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertObjectPrefix(prefix);
    const stream = this.client.listObjectsV2(this.bucket, prefix, true);
    for await (const item of stream as AsyncIterable<{ name?: string; size: number; lastModified: Date }>) {
      if (item.name) yield { key: item.name, size: item.size, lastModified: item.lastModified };
    }
  }

  async presignPut(key: string, expirySeconds: number): Promise<string | null> {
    assertObjectKey(key);
    return this.client.presignedPutObject(this.bucket, key, expirySeconds);
  }

  async ping(): Promise<void> {
    if (!(await this.client.bucketExists(this.bucket))) throw new Error(`bucket "${this.bucket}" does not exist`);
  }

  async close(): Promise<void> {}
}

function isMissing(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'NoSuchKey' || code === 'NotFound' || code === 'NoSuchObject';
}
