import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FsObjectStore } from '../adapters/objects/fs.ts';
import { EmbeddingModels } from './embed-runtime.ts';
import { ModelIntegrityError, ModelLoader, modelMetrics } from './loader.ts';
import type { ModelManifest } from './manifest.ts';
import { readCatalog } from './publish.ts';
import { publishRandomBert } from '../../test/support/models.ts';
import { TINY_BERT } from '../../test/support/tiny-bert.ts';

describe('model loader', () => {
  let root: string;
  let store: FsObjectStore;
  let loader: ModelLoader;
  let models: EmbeddingModels;
  const versions: Record<string, ModelManifest> = {};

  /** Publishes the tiny BERT as tiny@<version> (the bytes of every version are the same). */
  async function publishVersion(version: string): Promise<ModelManifest> {
    const manifest = await publishRandomBert(store, path.join(root, 'src', version), {
      alias: 'tiny',
      version,
      embed: { pooling: 'cls', maxTokens: 32 },
    });
    versions[version] = manifest;
    return manifest;
  }

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'loader-'));
    store = new FsObjectStore(path.join(root, 'objects'), 'models');
    loader = new ModelLoader(store, path.join(root, 'cache'));
    models = new EmbeddingModels(loader, { threads: 1, maxBatch: 8, queueLimit: 64 });
    await publishVersion('1');
    await publishVersion('2');
  });
  after(async () => {
    await models.close();
    await rm(root, { recursive: true, force: true });
  });

  it('publishes files, the version manifest and the bucket catalog', async () => {
    assert.deepEqual(await loader.fetchManifest('tiny', '1'), versions['1']);
    assert.deepEqual((await readCatalog(store)).models.map((m) => `${m.alias}@${m.version}`), ['tiny@1', 'tiny@2']);
  });

  it('copies a version to the cache, verified, and serves it', async () => {
    const loaded = await models.activate(versions['1']!);
    assert.deepEqual(loaded, { alias: 'tiny', version: '1', previous: null });
    const folder = loader.folderOf(versions['1']!);
    assert.deepEqual(await readFile(path.join(folder, 'tokenizer.json')), await readFile(path.join(root, 'src', '1', 'tokenizer.json')));
    const [v] = await models.get('tiny').embed(['hello'], 'query');
    assert.equal(v!.length, TINY_BERT.hidden);
  });

  it('refuses a tampered file, naming the file and both hashes, and the old version keeps serving', async () => {
    const failuresBefore = modelMetrics.model_integrity_failures_total;
    const key = 'tiny/2/model.onnx';
    const original = await readFile(path.join(root, 'objects', 'models', key));
    const tampered = Buffer.from(original);
    tampered[tampered.length - 5]! ^= 0xff; // same size, different bytes: only the hash can tell
    await store.put(key, tampered);

    await assert.rejects(models.activate(versions['2']!), (err: ModelIntegrityError) => {
      assert.ok(err instanceof ModelIntegrityError);
      assert.equal(err.type, 'MODEL_INTEGRITY');
      assert.equal(err.file, 'model.onnx');
      assert.match(err.message, new RegExp(versions['2']!.files.find((f) => f.path === 'model.onnx')!.sha256));
      assert.match(err.message, /model\.onnx/);
      assert.notEqual(err.actual.sha256, err.expected.sha256);
      assert.match(err.message, new RegExp(err.actual.sha256));
      return true;
    });
    assert.equal(modelMetrics.model_integrity_failures_total, failuresBefore + 1);
    assert.equal(models.get('tiny').version, '1');
    const [v] = await models.get('tiny').embed(['still serving'], 'passage');
    assert.equal(v!.length, TINY_BERT.hidden);

    // Restored bytes load fine: a refusal is not remembered.
    await store.put(key, original);
    assert.equal((await models.activate(versions['2']!)).version, '2');
    assert.equal(models.get('tiny').version, '2');
  });

  it('re-fetches a corrupt cache entry once', async () => {
    const refetches = modelMetrics.model_cache_refetches_total;
    const cached = path.join(loader.folderOf(versions['1']!), 'tokenizer.json');
    await writeFile(cached, '{"corrupted": true}');
    await loader.materialize(versions['1']!);
    assert.equal(modelMetrics.model_cache_refetches_total, refetches + 1);
    assert.deepEqual(await readFile(cached), await readFile(path.join(root, 'src', '1', 'tokenizer.json')));
    // A second load finds the cache good and fetches nothing.
    await loader.materialize(versions['1']!);
    assert.equal(modelMetrics.model_cache_refetches_total, refetches + 1);
  });
});
