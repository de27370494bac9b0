import UTIF from 'utif2';
import { appError, RagmeshError } from '../errors.ts';
import { throwIfAborted, tooManyPages, unreadable } from './errors.ts';
import { encodeGrayPng } from './png.ts';

/**
 * A picture OCR would have to hold in memory several times over: 100 megapixels is an
 * A0 poster at 300 dpi; a header claiming more is a decompression bomb or a mistake.
 */
export const MAX_IMAGE_PIXELS = 100_000_000;

export interface ImagePage {
  /** 1-based for multi-page TIFF; null for a single picture. */
  page: number | null;
  /** What the OCR function takes: PNG or JPEG bytes, decoded only when asked (one TIFF page at a time). */
  load(): Buffer;
}

function tooLarge(width: number, height: number): RagmeshError {
  return appError('IMAGE_TOO_LARGE', `The image is ${width}×${height} pixels; at most ${MAX_IMAGE_PIXELS} pixels are accepted`, { width, height });
}

/**
 * The pictures to OCR in an image file, checked before anything is decoded: PNG and JPEG
 * go as they are (their header's size checked), a TIFF is split into its pages and each
 * converted to grayscale PNG (OCR engines read TIFF poorly, and a scanner's multi-page
 * TIFF is a document with page numbers).
 */
export function imagePages(bytes: Buffer, maxPages: number, signal?: AbortSignal): ImagePage[] {
  const png = bytes.length >= 24 && bytes.readUInt32BE(0) === 0x89504e47;
  if (png) {
    if (bytes.toString('latin1', 12, 16) !== 'IHDR') throw unreadable('the PNG has no header');
    checkPixels(bytes.readUInt32BE(16), bytes.readUInt32BE(20));
    return [{ page: null, load: () => bytes }];
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    const size = jpegSize(bytes);
    if (!size) throw unreadable('the JPEG has no frame header (truncated?)');
    checkPixels(size.width, size.height);
    return [{ page: null, load: () => bytes }];
  }
  if (bytes.toString('latin1', 0, 4) === 'II*\0' || bytes.toString('latin1', 0, 4) === 'MM\0*') return tiffPages(bytes, maxPages, signal);
  throw appError('UNSUPPORTED_TYPE', 'Unsupported image type: send PNG, JPEG or TIFF');
}

function checkPixels(width: number, height: number): void {
  if (!(width > 0 && height > 0)) throw unreadable(`the image header gives a size of ${width}×${height}`);
  if (width * height > MAX_IMAGE_PIXELS) throw tooLarge(width, height);
}

/** Width and height from the first SOF marker, walking segment lengths (no decoding). */
function jpegSize(bytes: Buffer): { width: number; height: number } | null {
  let at = 2;
  while (at + 9 < bytes.length) {
    if (bytes[at] !== 0xff) return null;
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at++;
      continue;
    }
    // SOF0–SOF15 but DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: bytes.readUInt16BE(at + 5), width: bytes.readUInt16BE(at + 7) };
    }
    at += 2 + bytes.readUInt16BE(at + 2);
  }
  return null;
}

function tiffPages(bytes: Buffer, maxPages: number, signal?: AbortSignal): ImagePage[] {
  let ifds: UTIF.IFD[];
  try {
    ifds = UTIF.decode(bytes);
  } catch (err) {
    throw unreadable(`the TIFF cannot be parsed (${(err as Error).message})`);
  }
  // EXIF thumbnails and masks are sub-IFDs; pages are the top-level IFDs with pixels.
  const pages = ifds.filter((ifd) => ifd.t256 !== undefined && ifd.t257 !== undefined);
  if (pages.length === 0) throw unreadable('the TIFF has no image');
  if (pages.length > maxPages) throw tooManyPages(pages.length, maxPages);
  for (const ifd of pages) checkPixels(Number((ifd.t256 as number[])[0]), Number((ifd.t257 as number[])[0]));
  return pages.map((ifd, i) => ({ page: pages.length > 1 ? i + 1 : null, load: () => tiffPage(bytes, ifd, i, signal) }));
}

function tiffPage(bytes: Buffer, ifd: UTIF.IFD, i: number, signal?: AbortSignal): Buffer {
  throwIfAborted(signal);
  let rgba: Uint8Array;
  try {
    UTIF.decodeImage(bytes, ifd);
    rgba = UTIF.toRGBA8(ifd);
  } catch (err) {
    throw unreadable(`page ${i + 1} of the TIFF cannot be decoded (${(err as Error).message})`);
  }
  const { width, height } = ifd;
  if (rgba.length < width * height * 4) throw unreadable(`page ${i + 1} of the TIFF is truncated`);
  const gray = new Uint8Array(width * height);
  for (let p = 0, o = 0; p < gray.length; p++, o += 4) {
    // Transparent pixels are paper.
    gray[p] = rgba[o + 3]! < 128 ? 255 : (rgba[o]! * 299 + rgba[o + 1]! * 587 + rgba[o + 2]! * 114) / 1000;
  }
  // The decoded pixels hang on the directory object; let them go with this page.
  (ifd as { data?: unknown }).data = undefined;
  return encodeGrayPng(gray, width, height);
}
