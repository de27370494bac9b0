import { Inflate } from 'fflate';
import { appError, RagmeshError } from '../errors.ts';
import { unreadable } from './errors.ts';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  compressedSize: number;
  /** As the archive declares it; a bomb may lie, so inflating enforces it. */
  size: number;
  localHeaderOffset: number;
  encrypted: boolean;
}

export interface ZipLimits {
  /** Largest sum of the declared sizes of all entries, and the most one read may inflate to. */
  maxUnpackedBytes: number;
  /** Declared size over compressed size beyond which an entry (bigger than `ratioFloorBytes`) is a bomb. */
  maxRatio: number;
  ratioFloorBytes: number;
}

const EOCD = 0x06054b50;
const EOCD64_LOCATOR = 0x07064b50;
const EOCD64 = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
/** Inflate this much compressed input at a time: deflate expands at most ~1032×, so one step stays near 4 MB. */
const INFLATE_STEP = 4 * 1024;

function bomb(message: string): RagmeshError {
  return appError('ARCHIVE_BOMB', `${message}: refused as an archive bomb`);
}

/** The directory starts before the bytes given to readZipDirectory (`base` > 0: a tail of the archive). */
export class DirectoryOutOfWindow extends Error {}

/**
 * The central directory of a zip, checked before anything is inflated: the sum of the
 * declared sizes against the limit and each entry's compression ratio. Reads the
 * buffer in place (no copy). `base`: where `zip` starts in the archive, when it is only
 * the archive's tail (the upload screen keeps no more); local header offsets stay
 * offsets in the whole archive.
 */
export function readZipDirectory(zip: Buffer, limits: ZipLimits, base = 0): ZipEntry[] {
  const end = findEndOfDirectory(zip);
  let count = zip.readUInt16LE(end + 10);
  let offset = zip.readUInt32LE(end + 16) - base;
  if (end >= 20 && zip.readUInt32LE(end - 20) === EOCD64_LOCATOR) {
    const at = Number(zip.readBigUInt64LE(end - 12)) - base;
    if (at < 0) throw new DirectoryOutOfWindow();
    if (at + 56 > zip.length || zip.readUInt32LE(at) !== EOCD64) throw unreadable('the zip64 directory is damaged');
    count = Number(zip.readBigUInt64LE(at + 32));
    offset = Number(zip.readBigUInt64LE(at + 48)) - base;
  }
  if (offset < 0) throw new DirectoryOutOfWindow();
  const entries: ZipEntry[] = [];
  let declared = 0;
  for (let i = 0; i < count; i++) {
    if (offset + 46 > zip.length || zip.readUInt32LE(offset) !== CENTRAL) throw unreadable('the zip directory is damaged');
    const flags = zip.readUInt16LE(offset + 8);
    const method = zip.readUInt16LE(offset + 10);
    let compressedSize = zip.readUInt32LE(offset + 20);
    let size = zip.readUInt32LE(offset + 24);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    let localHeaderOffset = zip.readUInt32LE(offset + 42);
    const nameEnd = offset + 46 + nameLength;
    if (nameEnd + extraLength > zip.length) throw unreadable('the zip directory is damaged');
    const name = zip.toString(flags & 0x800 ? 'utf8' : 'latin1', offset + 46, nameEnd);
    if (size === 0xffffffff || compressedSize === 0xffffffff || localHeaderOffset === 0xffffffff) {
      // Zip64: the real values sit in the extra field, in this order, only for the fields that overflowed.
      for (let p = nameEnd; p + 4 <= nameEnd + extraLength; ) {
        const id = zip.readUInt16LE(p);
        const length = zip.readUInt16LE(p + 2);
        if (id === 0x0001) {
          let q = p + 4;
          const next = () => {
            const value = q + 8 <= p + 4 + length ? Number(zip.readBigUInt64LE(q)) : NaN;
            q += 8;
            return value;
          };
          if (size === 0xffffffff) size = next();
          if (compressedSize === 0xffffffff) compressedSize = next();
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = next();
        }
        p += 4 + length;
      }
      if (![size, compressedSize, localHeaderOffset].every(Number.isFinite)) throw unreadable('the zip64 sizes are damaged');
    }
    declared += size;
    if (declared > limits.maxUnpackedBytes) {
      throw bomb(`The archive declares more than ${limits.maxUnpackedBytes} bytes once unpacked (limit)`);
    }
    if (size > limits.ratioFloorBytes && size > Math.max(1, compressedSize) * limits.maxRatio) {
      throw bomb(`The archive entry ${JSON.stringify(name.slice(0, 100))} expands ${Math.round(size / Math.max(1, compressedSize))}× (${size} bytes from ${compressedSize})`);
    }
    entries.push({ name, method, compressedSize, size, localHeaderOffset, encrypted: (flags & 1) === 1 });
    offset = nameEnd + extraLength + commentLength;
  }
  return entries;
}

function findEndOfDirectory(zip: Buffer): number {
  // The end record is 22 bytes plus a comment of up to 65535 bytes, at the very end.
  const lowest = Math.max(0, zip.length - 22 - 65535);
  for (let at = zip.length - 22; at >= lowest; at--) {
    if (zip.readUInt32LE(at) === EOCD) return at;
  }
  throw unreadable('the zip archive is damaged (no central directory: truncated?)');
}

/**
 * One entry's bytes, inflated step by step: a stream that produces more than its declared
 * size (a lying header) or than the limit is stopped at once, so nothing past either is
 * ever held. `checkAbort` runs between steps.
 */
export function readZipEntry(zip: Buffer, entry: ZipEntry, limits: ZipLimits, checkAbort?: () => void): Buffer {
  if (entry.encrypted) throw unreadable(`the archive entry ${entry.name} is encrypted`);
  const at = entry.localHeaderOffset;
  if (at + 30 > zip.length || zip.readUInt32LE(at) !== LOCAL) throw unreadable(`the archive entry ${entry.name} is damaged`);
  const start = at + 30 + zip.readUInt16LE(at + 26) + zip.readUInt16LE(at + 28);
  const stop = start + entry.compressedSize;
  if (stop > zip.length) throw unreadable(`the archive entry ${entry.name} is truncated`);
  const cap = Math.min(entry.size, limits.maxUnpackedBytes);
  if (entry.method === 0) {
    if (entry.compressedSize > cap) throw bomb(`The archive entry ${entry.name} is larger than declared`);
    return zip.subarray(start, stop);
  }
  if (entry.method !== 8) throw unreadable(`the archive entry ${entry.name} uses compression method ${entry.method}`);
  const out = Buffer.allocUnsafe(cap);
  let written = 0;
  let finished = false;
  const inflater = new Inflate((chunk, final) => {
    if (written + chunk.length > cap) {
      throw bomb(`The archive entry ${entry.name} inflates past its declared ${entry.size} bytes`);
    }
    out.set(chunk, written);
    written += chunk.length;
    if (final) finished = true;
  });
  for (let p = start; p < stop; p += INFLATE_STEP) {
    checkAbort?.();
    const end = Math.min(stop, p + INFLATE_STEP);
    try {
      inflater.push(zip.subarray(p, end), end === stop);
    } catch (err) {
      if (err instanceof RagmeshError) throw err;
      throw unreadable(`the archive entry ${entry.name} is damaged (${(err as Error).message})`);
    }
  }
  if (!finished) throw unreadable(`the archive entry ${entry.name} is truncated`);
  return out.subarray(0, written);
}
