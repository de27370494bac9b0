import { PNG } from 'pngjs';

/**
 * One 8-bit gray channel as PNG. Speed over size: the picture goes to OCR once, so a
 * fast deflate level and one fixed row filter beat pngjs's defaults (level 9, every
 * filter tried on every row), which take seconds on a 300 dpi page.
 */
export function encodeGrayPng(gray: Uint8Array, width: number, height: number): Buffer {
  return PNG.sync.write({ width, height, data: Buffer.from(gray.buffer, gray.byteOffset, gray.byteLength) } as PNG, {
    colorType: 0,
    inputColorType: 0,
    inputHasAlpha: false,
    deflateLevel: 3,
    filterType: 2,
  });
}
