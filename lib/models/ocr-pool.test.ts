import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PassThrough } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import * as PImage from 'pureimage';
import { FsObjectStore } from '../adapters/objects/fs.ts';
import { ModelLoader } from './loader.ts';
import { buildManifest, writeManifest } from './manifest.ts';
import { OcrRuntime } from './ocr-pool.ts';
import { publishFolder } from './publish.ts';

// Debian: tesseract-ocr-eng, tesseract-ocr-rus (traineddata) and fonts-dejavu-core (the font).
const TESSDATA = process.env.TESSDATA_DIR ?? '/usr/share/tesseract-ocr/5/tessdata';
const FONT = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf';

/**
 * A line of black text on white, as a scanner would give it, PNG-encoded. pureimage
 * rasterises in plain JavaScript: no native canvas, whose per-platform binaries the
 * registry here does not all carry (npm ci would refuse the lockfile).
 */
async function renderLine(text: string): Promise<Buffer> {
  const measure = PImage.make(10, 10).getContext('2d');
  measure.font = '34px TestSans';
  const width = Math.ceil(measure.measureText(text).width) + 60;
  const image = PImage.make(width, 80);
  const g = image.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, width, 80);
  g.fillStyle = '#000000';
  g.font = '34px TestSans';
  g.fillText(text, 30, 52);
  const out = new PassThrough();
  const png = buffer(out);
  await PImage.encodePNGToStream(image, out);
  return png;
}

const words = (s: string) => s.toLowerCase().replace(/[^\p{L}\p{N} ]/gu, '').split(/\s+/).filter(Boolean);

describe('OCR pool (tesseract.js, eng+rus traineddata verified as an ocr model)', () => {
  let root: string;
  let ocr: OcrRuntime;

  before(async () => {
    PImage.registerFont(FONT, 'TestSans').loadSync();
    root = await mkdtemp(path.join(os.tmpdir(), 'ocr-'));
    const folder = path.join(root, 'src');
    await mkdir(folder);
    for (const lang of ['eng', 'rus']) await copyFile(path.join(TESSDATA, `${lang}.traineddata`), path.join(folder, `${lang}.traineddata`));
    const manifest = await buildManifest(folder, { name: 'tessdata', alias: 'ocr', version: 'test', kind: 'ocr', ocr: { engine: 'tesseract', languages: ['eng', 'rus'] } });
    await writeManifest(folder, manifest);
    const store = new FsObjectStore(path.join(root, 'objects'), 'models');
    await publishFolder(store, folder);
    ocr = new OcrRuntime(new ModelLoader(store, path.join(root, 'cache')), { workers: 1, queueLimit: 4 });
    await ocr.activate(manifest);
  });
  after(async () => {
    await ocr?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('reads a generated English line', async () => {
    const text = 'The quick brown fox jumps over 13 lazy dogs.';
    const pool = await ocr.ensure(async () => null);
    const result = await pool.recognize(await renderLine(text));
    assert.deepEqual(words(result.text), words(text));
    assert.ok(result.confidence > 70, `confidence ${result.confidence}`);
    assert.equal(result.version, 'test');
  });

  it('reads a generated Russian line', async () => {
    const text = 'Съешь же ещё этих мягких французских булок, да выпей чаю.';
    const pool = await ocr.ensure(async () => null);
    const result = await pool.recognize(await renderLine(text));
    assert.deepEqual(words(result.text), words(text));
    assert.ok(result.confidence > 70, `confidence ${result.confidence}`);
  });

  it('answers a broken image with a 400, not a crash', async () => {
    const pool = await ocr.ensure(async () => null);
    await assert.rejects(pool.recognize(Buffer.from('definitely not an image')), (err: Error & { code?: number }) => err.code === 400);
  });
});
