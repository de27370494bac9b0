import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { RagmeshError } from '../errors.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { hashFile, MANIFEST_FILE, objectKeyOf, parseManifest, type ManifestFile, type ModelManifest } from './manifest.ts';

/**
 * Counters of the model runtime. A plain object for now: the Prometheus exporter
 * reads these fields when it lands, so names follow Prometheus conventions.
 */
export const modelMetrics = {
  /** Files refused because their bytes did not match the manifest. */
  model_integrity_failures_total: 0,
  /** Cache entries found corrupt and fetched again. */
  model_cache_refetches_total: 0,
  /** Model versions loaded (verified and opened). */
  model_loads_total: 0,
  /** Model versions that could not be loaded (fetch, verification or opening failed). */
  model_load_failures_total: 0,
};

/** A file's bytes differ from the manifest: the version must not be loaded. */
export class ModelIntegrityError extends RagmeshError {
  constructor(
    readonly model: string,
    readonly file: string,
    readonly expected: { size: number; sha256: string },
    readonly actual: { size: number; sha256: string },
  ) {
    super(
      'MODEL_INTEGRITY',
      `Refusing to load model ${model}: file "${file}" has sha256 ${actual.sha256} (${actual.size} bytes), manifest says ${expected.sha256} (${expected.size} bytes)`,
      { model, file, expected, actual },
    );
    this.name = 'ModelIntegrityError';
  }
}

type Log = Pick<Logger, 'warn' | 'error' | 'info'>;

/**
 * Brings a model version from the models bucket to a local folder, verified. Files
 * already in the cache are re-hashed before every load (a cache on local disk is no
 * more trusted than the bucket); a cached file that fails is fetched once more, and
 * a fetched file that fails is refused.
 */
export class ModelLoader {
  constructor(
    private readonly store: ObjectStore,
    readonly cacheDir: string,
    private readonly logger?: Log,
  ) {}

  /** The manifest published with the version (`<alias>/<version>/manifest.json`). */
  async fetchManifest(alias: string, version: string): Promise<ModelManifest> {
    const body = await this.store.get(objectKeyOf({ alias, version }, MANIFEST_FILE));
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return parseManifest(Buffer.concat(chunks).toString('utf8'));
  }

  folderOf(manifest: Pick<ModelManifest, 'alias' | 'version'>): string {
    return path.join(this.cacheDir, manifest.alias, manifest.version);
  }

  /** Returns the local folder holding every file of `manifest`, each one verified. */
  async materialize(manifest: ModelManifest): Promise<string> {
    const folder = this.folderOf(manifest);
    for (const file of manifest.files) await this.materializeFile(manifest, folder, file);
    return folder;
  }

  private async materializeFile(manifest: ModelManifest, folder: string, file: ManifestFile): Promise<void> {
    const local = path.join(folder, ...file.path.split('/'));
    const cached = await hashFile(local).catch(() => null);
    if (cached && cached.size === file.size && cached.sha256 === file.sha256) return;
    if (cached) {
      modelMetrics.model_cache_refetches_total++;
      this.logger?.warn({ model: `${manifest.alias}@${manifest.version}`, file: file.path, expected: file.sha256, actual: cached.sha256 }, 'corrupt model cache entry, fetching again');
      await rm(local, { force: true });
    }
    await mkdir(path.dirname(local), { recursive: true });
    // Written under a temporary name and hashed on the way in, so a half-written or
    // wrong file never sits at the final path.
    const tmp = `${local}.${randomUUID()}.part`;
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    try {
      await pipeline(await this.store.get(objectKeyOf(manifest, file.path)), tap, createWriteStream(tmp));
      const actual = { size, sha256: hash.digest('hex') };
      if (actual.size !== file.size || actual.sha256 !== file.sha256) {
        modelMetrics.model_integrity_failures_total++;
        const err = new ModelIntegrityError(`${manifest.alias}@${manifest.version}`, file.path, { size: file.size, sha256: file.sha256 }, actual);
        this.logger?.error({ err, ...(err.data as object) }, 'model file failed verification');
        throw err;
      }
      await rename(tmp, local);
    } finally {
      await rm(tmp, { force: true });
    }
  }
}
