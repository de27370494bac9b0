import { cp } from 'node:fs/promises';
import { buildManifest, writeManifest, type ModelManifest, type OnnxEmbedSpec } from '../../lib/models/manifest.ts';
import { publishFolder } from '../../lib/models/publish.ts';
import { ensureRandomBert, TEST_MODEL_CACHE, TINY_BERT, type BertShape } from './tiny-bert.ts';
import type { ObjectStore } from '../../lib/ports/object-store.ts';

/**
 * Stages a random-weight BERT as model `alias@version` in `folder` (files, manifest
 * hashing every one of them) and publishes it to the models bucket, as an operator
 * would with `npm run models -- build … && … publish`.
 */
export async function publishRandomBert(
  store: ObjectStore,
  folder: string,
  options: { alias: string; version: string; name?: string; shape?: BertShape; embed?: Partial<OnnxEmbedSpec> },
): Promise<ModelManifest> {
  const shape = options.shape ?? TINY_BERT;
  const bert = await ensureRandomBert(TEST_MODEL_CACHE, shape);
  await cp(bert.dir, folder, { recursive: true });
  const manifest = await buildManifest(folder, {
    name: options.name ?? 'random tiny bert',
    alias: options.alias,
    version: options.version,
    kind: 'embed',
    embed: {
      engine: 'onnx',
      dimension: shape.hidden,
      pooling: 'mean',
      normalize: true,
      maxTokens: 64,
      queryPrefix: '',
      passagePrefix: '',
      precision: shape.precision,
      model: 'model.onnx',
      tokenizer: 'tokenizer.json',
      tokenizerConfig: 'tokenizer_config.json',
      ...options.embed,
    },
  });
  await writeManifest(folder, manifest);
  await publishFolder(store, folder);
  return manifest;
}
