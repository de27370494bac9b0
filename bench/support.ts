import { cp, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildManifest, writeManifest } from '../lib/models/manifest.ts';
import { publishFolder } from '../lib/models/publish.ts';
import { ensureRandomBert, MINILM_L6, TEST_MODEL_CACHE } from '../lib/models/tiny-bert.ts';
import { ModelsRepository } from '../lib/repositories/models.ts';
import type { Stores } from '../lib/runtime/stores.ts';

/**
 * Publishes a random-weight encoder in all-MiniLM-L6-v2's shape (int8) under `alias`
 * version 1 and makes it the active version: what benchmarks measure throughput on,
 * since real weights cannot be installed here and speed depends on the shape alone.
 */
export async function publishBenchEncoder(stores: Stores, alias: string, maxTokens: number) {
  const bert = await ensureRandomBert(TEST_MODEL_CACHE, { ...MINILM_L6, precision: 'int8' });
  const folder = await mkdtemp(path.join(os.tmpdir(), 'bench-model-'));
  await cp(bert.dir, folder, { recursive: true });
  const manifest = await buildManifest(folder, {
    name: 'random-weight MiniLM-L6 shape (int8)',
    alias,
    version: '1',
    kind: 'embed',
    embed: { engine: 'onnx', dimension: MINILM_L6.hidden, pooling: 'mean', normalize: true, maxTokens, queryPrefix: '', passagePrefix: '', precision: 'int8', model: 'model.onnx', tokenizer: 'tokenizer.json', tokenizerConfig: 'tokenizer_config.json' },
  });
  await writeManifest(folder, manifest);
  await publishFolder(await stores.models(), folder);
  const repo = new ModelsRepository((await stores.db()).knex);
  await repo.register(manifest);
  await repo.switchTo(alias, '1', 'bench');
  return { bert, manifest };
}
