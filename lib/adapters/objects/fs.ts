import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';
import { appError } from '../../errors.ts';
import { assertObjectKey, assertObjectPrefix, type ObjectInfo, type ObjectStore, type PutOptions } from '../../ports/object-store.ts';

const READ_CHUNK_BYTES = 1024 * 1024;
const LIST_STAT_BATCH = 64;

/**
 * Object storage on the local disk for the embedded profile: DATA_DIR/objects/<bucket>/<key>.
 * Writes go to a temp file first and are renamed into place, so a reader never sees
 * half an object and a crash mid-upload leaves only a temp file.
 */
export class FsObjectStore implements ObjectStore {
  readonly backend = 'fs' as const;
  private readonly root: string;
  private readonly tmp: string;
  private readonly madeDirs = new Set<string>();

  constructor(
    rootDir: string,
    readonly bucket: string,
  ) {
    this.root = path.resolve(rootDir, bucket);
    this.tmp = path.resolve(rootDir, '.tmp');
  }

  async ensureBucket(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await mkdir(this.tmp, { recursive: true });
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<ObjectInfo> {
    const file = this.pathOf(key);
    const tmpFile = path.join(this.tmp, randomUUID());
    // Folders are made once per store (nothing here removes them): a round trip saved per object.
    const dir = path.dirname(file);
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      if (this.madeDirs.size > 10_000) this.madeDirs.clear();
      this.madeDirs.add(dir);
    }
    try {
      if (Buffer.isBuffer(body)) await writeFile(tmpFile, body, { flag: 'wx' });
      else await pipeline(body, createWriteStream(tmpFile, { flags: 'wx' }));
      await rename(tmpFile, file);
    } catch (err) {
      await rm(tmpFile, { force: true });
      // The folder went away under us after all: forget it, so the next put makes it.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.madeDirs.delete(dir);
      throw err;
    }
    // A buffer's size is known: no stat for it (a round trip per object in a backup); like S3, the time is now.
    if (Buffer.isBuffer(body)) return { key, size: body.length, lastModified: new Date(), contentType: options.contentType };
    const info = await stat(file);
    return { key, size: info.size, lastModified: info.mtime, contentType: options.contentType };
  }

  async get(key: string): Promise<Readable> {
    // Opened here, so a missing object fails now and the stream cannot lose a race with a delete.
    const handle = await this.open(key);
    // A small object is read whole (a few round trips through the thread pool instead of
    // a stream's many); a large one streams, 1 MiB at a time.
    const { size } = await handle.stat();
    if (size <= READ_CHUNK_BYTES) {
      try {
        return Readable.from([await handle.readFile()]);
      } finally {
        await handle.close();
      }
    }
    return handle.createReadStream({ highWaterMark: READ_CHUNK_BYTES });
  }

  async readInto(key: string, into: Buffer): Promise<number | null> {
    const handle = await this.open(key);
    try {
      // Objects are written once and renamed into place, never changed where they lie:
      // the opened file keeps the size it has now.
      const { size } = await handle.stat();
      if (size > into.length) return null;
      let read = 0;
      while (read < size) {
        const { bytesRead } = await handle.read(into, read, size - read, read);
        if (bytesRead === 0) break;
        read += bytesRead;
      }
      return read;
    } finally {
      await handle.close();
    }
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const info = await stat(this.pathOf(key));
      return info.isFile() ? { key, size: info.size, lastModified: info.mtime } : null;
    } catch {
      return null;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertObjectPrefix(prefix);
    const files = await readdir(this.root, { recursive: true, withFileTypes: true }).catch(() => []);
    const keys = files
      .filter((f) => f.isFile())
      .map((f) => path.relative(this.root, path.join(f.parentPath, f.name)).split(path.sep).join('/'))
      .filter((key) => key.startsWith(prefix))
      .sort();
    // Stats in batches: one at a time, a listing of many small objects waits on round trips.
    for (let i = 0; i < keys.length; i += LIST_STAT_BATCH) {
      const infos = await Promise.all(keys.slice(i, i + LIST_STAT_BATCH).map((key) => this.stat(key)));
      for (const info of infos) if (info) yield info;
    }
  }

  async presignPut(key: string): Promise<string | null> {
    assertObjectKey(key);
    return null;
  }

  async ping(): Promise<void> {
    await stat(this.root);
  }

  async close(): Promise<void> {}

  private async open(key: string): Promise<FileHandle> {
    const file = this.pathOf(key);
    try {
      return await open(file, 'r');
    } catch {
      throw appError('OBJECT_NOT_FOUND', `No object "${key}" in bucket "${this.bucket}"`);
    }
  }

  private pathOf(key: string): string {
    const file = path.resolve(this.root, assertObjectKey(key));
    // assertObjectKey already forbids "..": this is the belt to its braces.
    if (!file.startsWith(this.root + path.sep)) throw new Error(`object key escapes bucket: ${key}`);
    return file;
  }
}
