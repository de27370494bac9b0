import type { Readable } from 'node:stream';
import { appError, RagmeshError } from '../errors.ts';

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
  contentType?: string;
}

export interface PutOptions {
  contentType?: string;
  /** Known length lets S3 send one PUT instead of a multipart upload. */
  size?: number;
}

/**
 * One bucket of blobs. Keys are validated by `assertObjectKey` in every adapter so a
 * key can never climb out of its bucket (or out of DATA_DIR on the filesystem).
 */
export interface ObjectStore {
  readonly backend: 'fs' | 's3';
  readonly bucket: string;
  /** Creates the bucket if it is missing. Safe to call often. */
  ensureBucket(): Promise<void>;
  put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<ObjectInfo>;
  /** Streams the object; rejects with a 404 RagmeshError (type OBJECT_NOT_FOUND) when absent. */
  get(key: string): Promise<Readable>;
  /**
   * Reads a whole object into `into`, for a caller that reuses one buffer over many
   * objects (a backup copies hundreds: a fresh buffer each is garbage the collector
   * then spends more time on than the copy). Returns how many bytes the object has,
   * now at the start of `into`; null when it is longer than `into` (then `into` holds
   * nothing useful). Rejects like `get` when the object is absent.
   */
  readInto(key: string, into: Buffer): Promise<number | null>;
  stat(key: string): Promise<ObjectInfo | null>;
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /**
   * A URL a client can PUT the object to directly, valid for `expirySeconds`; null when
   * the backend has no such thing (the filesystem: the api receives the PUT itself).
   */
  presignPut(key: string, expirySeconds: number): Promise<string | null>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

const KEY_SEGMENT = /^[A-Za-z0-9._=+@,-]+$/;

/** Rejects keys that could escape the bucket or confuse a filesystem: `..`, absolute paths, odd bytes. */
export function assertObjectKey(key: string): string {
  const problem = objectKeyProblem(key);
  if (problem) throw appError('INVALID_OBJECT_KEY', `Invalid object key: ${problem}`);
  return key;
}

function objectKeyProblem(key: string): string | null {
  if (typeof key !== 'string' || key.length === 0) return 'empty';
  if (key.length > 512) return 'longer than 512 characters';
  if (key.startsWith('/')) return 'absolute path';
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return 'empty, "." or ".." path segment';
    if (!KEY_SEGMENT.test(segment)) return `segment "${segment.slice(0, 40)}" has characters outside [A-Za-z0-9._=+@,-]`;
  }
  return null;
}

/** Prefixes may end with "/" (list everything under a folder) or be empty (the whole bucket). */
export function assertObjectPrefix(prefix: string): string {
  if (prefix === '') return prefix;
  assertObjectKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  return prefix;
}
