import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { appError } from '../errors.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { ModelsRepository } from '../repositories/models.ts';
import {
  buildManifest,
  CATALOG_FILE,
  MANIFEST_FILE,
  objectKeyOf,
  parseCatalog,
  readManifest,
  upsertCatalog,
  verifyFolder,
  writeManifest,
  type ModelCatalog,
  type ModelManifest,
} from './manifest.ts';

/** The repo's `models/` folder: model versions that ship with ragmesh (the starter). */
export const BUNDLED_MODELS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../models');

/**
 * Uploads a verified model folder: every file, then its manifest, then the bucket's
 * catalog. The manifest goes last so a reader never finds a manifest whose files are
 * not all there yet.
 */
export async function publishFolder(store: ObjectStore, folder: string): Promise<ModelManifest> {
  const manifest = await readManifest(folder);
  const problems = await verifyFolder(folder, manifest);
  if (problems.length > 0) {
    throw appError('MODEL_FOLDER_MISMATCH', `${folder} does not match its manifest: ${problems.map((p) => `${p.path} (${p.reason})`).join(', ')}`, { problems });
  }
  await store.ensureBucket();
  for (const file of manifest.files) {
    const key = objectKeyOf(manifest, file.path);
    const existing = await store.stat(key);
    // Same size is not proof of same bytes, but re-uploading a 500 MB file on every
    // publish is worse; loads verify the hash anyway.
    if (existing && existing.size === file.size) continue;
    await store.put(key, createReadStream(path.join(folder, ...file.path.split('/'))), { size: file.size });
  }
  await store.put(objectKeyOf(manifest, MANIFEST_FILE), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), { contentType: 'application/json' });
  await updateCatalog(store, manifest);
  return manifest;
}

export async function readCatalog(store: ObjectStore): Promise<ModelCatalog> {
  if (!(await store.stat(CATALOG_FILE))) return { schema: 1, models: [] };
  const chunks: Buffer[] = [];
  for await (const chunk of await store.get(CATALOG_FILE)) chunks.push(chunk as Buffer);
  return parseCatalog(Buffer.concat(chunks).toString('utf8'));
}

async function updateCatalog(store: ObjectStore, manifest: ModelManifest): Promise<void> {
  const catalog = upsertCatalog(await readCatalog(store), manifest);
  await store.put(CATALOG_FILE, Buffer.from(`${JSON.stringify(catalog, null, 2)}\n`), { contentType: 'application/json' });
}

export interface BootstrapResult {
  published: string[];
  activated: string[];
}

/**
 * First start of a deployment: every model version in the repo's models/ catalog is
 * published (if the bucket lacks it) and registered, and an alias with no active
 * version gets this one. An operator's later switch is never overridden.
 */
export async function ensureBundledModels(store: ObjectStore, repo: ModelsRepository, dir = BUNDLED_MODELS_DIR): Promise<BootstrapResult> {
  const result: BootstrapResult = { published: [], activated: [] };
  let catalog: ModelCatalog;
  try {
    catalog = parseCatalog(await readFile(path.join(dir, CATALOG_FILE), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return result;
    throw err;
  }
  for (const entry of catalog.models) {
    const folder = path.join(dir, entry.alias, entry.version);
    if (!(await store.stat(objectKeyOf(entry, MANIFEST_FILE)))) {
      await publishFolder(store, folder);
      result.published.push(`${entry.alias}@${entry.version}`);
    }
    await activateIfUnset(repo, await readManifest(folder), result);
  }
  return result;
}

export const DEFAULT_OCR_ALIAS = 'ocr';

/**
 * Tesseract's traineddata come from Debian (tesseract-ocr-eng, -rus), not the repo. On
 * first start the installed files are published as an ocr model version named after
 * their hash, so they are verified like any other model from then on.
 */
export async function ensureSystemOcrModel(
  store: ObjectStore,
  repo: ModelsRepository,
  tessdataDir: string,
  languages: string[],
  alias = DEFAULT_OCR_ALIAS,
): Promise<BootstrapResult> {
  const result: BootstrapResult = { published: [], activated: [] };
  if (await repo.getFlag(alias)) return result;
  const staging = await mkdtemp(path.join(os.tmpdir(), 'ragmesh-ocr-'));
  try {
    for (const lang of languages) {
      await copyFile(path.join(tessdataDir, `${lang}.traineddata`), path.join(staging, `${lang}.traineddata`));
    }
    const draft = await buildManifest(staging, { name: 'tesseract tessdata (Debian)', alias, version: 'pending', kind: 'ocr', license: 'Apache-2.0', ocr: { engine: 'tesseract', languages } });
    const version = `tessdata-${createHash('sha256').update(draft.files.map((f) => f.sha256).join(',')).digest('hex').slice(0, 12)}`;
    const manifest: ModelManifest = { ...draft, version, createdAt: new Date(0).toISOString() };
    await writeManifest(staging, manifest);
    if (!(await store.stat(objectKeyOf(manifest, MANIFEST_FILE)))) {
      await publishFolder(store, staging);
      result.published.push(`${alias}@${version}`);
    }
    await activateIfUnset(repo, manifest, result);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return result;
}

async function activateIfUnset(repo: ModelsRepository, manifest: ModelManifest, result: BootstrapResult): Promise<void> {
  await repo.register(manifest);
  if (await repo.getFlag(manifest.alias)) return;
  try {
    await repo.switchTo(manifest.alias, manifest.version, 'bootstrap');
    result.activated.push(`${manifest.alias}@${manifest.version}`);
  } catch (err) {
    // Several processes boot at once; the one that lost the insert race finds the flag set.
    if (!(await repo.getFlag(manifest.alias))) throw err;
  }
}
