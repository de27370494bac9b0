import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildManifest, parseCatalog, readManifest, validateManifest, verifyFolder, writeManifest, type ModelManifest } from './manifest.ts';
import { BUNDLED_MODELS_DIR } from './publish.ts';

describe('model manifest', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'manifest-'));
    await mkdir(path.join(dir, 'onnx'));
    await writeFile(path.join(dir, 'onnx', 'model.onnx'), Buffer.from('not really a model, but bytes to hash'));
    await writeFile(path.join(dir, 'tokenizer.json'), '{"model":{}}');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const meta = {
    name: 'test/model',
    alias: 'test-emb',
    version: '2026-11-24',
    kind: 'embed' as const,
    embed: { engine: 'onnx' as const, dimension: 8, pooling: 'mean' as const, normalize: true, maxTokens: 64, queryPrefix: 'query: ', passagePrefix: 'passage: ', precision: 'int8' as const, model: 'onnx/model.onnx', tokenizer: 'tokenizer.json' },
  };

  it('round-trips: build hashes every file, write/read gives the same manifest, verify finds no problem', async () => {
    const built = await buildManifest(dir, meta);
    assert.deepEqual(built.files.map((f) => f.path), ['onnx/model.onnx', 'tokenizer.json']);
    assert.equal(built.files[1]!.sha256, createHash('sha256').update('{"model":{}}').digest('hex'));
    assert.equal(built.files[1]!.size, 12);
    await writeManifest(dir, built);
    const read = await readManifest(dir);
    assert.deepEqual(read, built);
    assert.deepEqual(await verifyFolder(dir, read), []);
    // Rebuilding must not hash the manifest itself.
    assert.deepEqual((await buildManifest(dir, { ...meta, createdAt: built.createdAt })).files, built.files);
  });

  it('a changed or missing file is reported with both hashes', async () => {
    const manifest = await readManifest(dir);
    await writeFile(path.join(dir, 'tokenizer.json'), '{"model":{"x":1}}');
    await rm(path.join(dir, 'onnx', 'model.onnx'));
    const problems = await verifyFolder(dir, manifest);
    assert.deepEqual(problems.map((p) => [p.path, p.reason]), [['onnx/model.onnx', 'missing'], ['tokenizer.json', 'size']]);
    assert.equal(problems[1]!.expected.sha256, manifest.files[1]!.sha256);
    assert.notEqual(problems[1]!.actual!.sha256, manifest.files[1]!.sha256);
  });

  it('refuses manifests that name missing files, unsafe paths or bad hashes', () => {
    const good = { schema: 1, createdAt: 'x', ...meta, files: [{ path: 'onnx/model.onnx', size: 1, sha256: 'a'.repeat(64) }, { path: 'tokenizer.json', size: 1, sha256: 'b'.repeat(64) }] };
    assert.doesNotThrow(() => validateManifest(good));
    const bad = (patch: Partial<ModelManifest>, pattern: RegExp) =>
      assert.throws(() => validateManifest({ ...good, ...patch }), (err: Error & { type?: string }) => err.type === 'INVALID_MANIFEST' && pattern.test(err.message));
    bad({ files: [{ path: '../etc/passwd', size: 1, sha256: 'a'.repeat(64) }] }, /not a safe relative path/);
    bad({ files: [{ path: 'tokenizer.json', size: 1, sha256: 'xyz' }] }, /no valid sha256/);
    bad({ files: [{ path: 'tokenizer.json', size: 1, sha256: 'b'.repeat(64) }] }, /embed.model "onnx\/model.onnx" is not among the files/);
    bad({ alias: 'a/b' }, /alias must match/);
    bad({ kind: 'ocr' as const }, /ocr model needs/);
  });

  it('the repo catalog models/manifest.json lists exactly the bundled version manifests', async () => {
    const catalog = parseCatalog(await readFile(path.join(BUNDLED_MODELS_DIR, 'manifest.json'), 'utf8'));
    assert.ok(catalog.models.length >= 1);
    for (const entry of catalog.models) {
      const folder = path.join(BUNDLED_MODELS_DIR, entry.alias, entry.version);
      assert.deepEqual(await readManifest(folder), entry);
      assert.deepEqual(await verifyFolder(folder, entry), []);
    }
  });
});
