import { createHash, hash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';

/** A pass-through that counts bytes and hashes them as they stream by. */
export class Hashing extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

/** One-shot: no Hash object per call (a backup hashes every object whole). */
export const sha256 = (body: Buffer): string => hash('sha256', body, 'hex');

/** Reads a stream to its end, returning its size and SHA-256; nothing is kept in memory. */
export async function hashStream(stream: Readable): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}
