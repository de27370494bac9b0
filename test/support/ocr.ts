import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FsObjectStore } from '../../lib/adapters/objects/fs.ts';
import type { OcrFunction } from '../../lib/extract/types.ts';
import { ModelLoader } from '../../lib/models/loader.ts';
import { buildManifest, writeManifest } from '../../lib/models/manifest.ts';
import { OcrRuntime } from '../../lib/models/ocr-pool.ts';
import { publishFolder } from '../../lib/models/publish.ts';

/** Debian's tesseract-ocr-eng / tesseract-ocr-rus language data. */
export const TESSDATA = process.env.TESSDATA_DIR ?? '/usr/share/tesseract-ocr/5/tessdata';

/**
 * The real OCR pool over Debian's eng+rus traineddata, published and verified as an
 * ocr model version the way the product does it.
 */
export async function startOcrRuntime(queueLimit = 16): Promise<{ runtime: OcrRuntime; close(): Promise<void> }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ragmesh-ocr-'));
  const folder = path.join(root, 'src');
  await mkdir(folder);
  for (const lang of ['eng', 'rus']) await copyFile(path.join(TESSDATA, `${lang}.traineddata`), path.join(folder, `${lang}.traineddata`));
  const manifest = await buildManifest(folder, { name: 'tessdata', alias: 'ocr', version: 'test', kind: 'ocr', ocr: { engine: 'tesseract', languages: ['eng', 'rus'] } });
  await writeManifest(folder, manifest);
  const store = new FsObjectStore(path.join(root, 'objects'), 'models');
  await publishFolder(store, folder);
  const runtime = new OcrRuntime(new ModelLoader(store, path.join(root, 'cache')), { workers: 1, queueLimit });
  await runtime.activate(manifest);
  return {
    runtime,
    async close() {
      await runtime.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** The same, as the OcrFunction extraction takes. */
export async function startOcr(): Promise<{ ocr: OcrFunction; close(): Promise<void> }> {
  const { runtime, close } = await startOcrRuntime();
  const pool = await runtime.ensure(async () => null);
  return {
    ocr: async (png) => {
      const result = await pool.recognize(png);
      return { text: result.text, confidence: result.confidence };
    },
    close,
  };
}
