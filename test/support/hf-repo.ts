import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ensureRandomBert, TEST_MODEL_CACHE, TINY_BERT } from './tiny-bert.ts';

/** A sentence-transformers repository as the Hub lays it out, around the random-weight BERT. */
export async function writeHfRepo(dir: string, options: { hidden?: number; seed?: number; pooling?: Record<string, boolean>; prompts?: Record<string, string> } = {}): Promise<string> {
  const bert = await ensureRandomBert(TEST_MODEL_CACHE, { ...TINY_BERT, seed: options.seed ?? TINY_BERT.seed });
  await mkdir(path.join(dir, 'onnx'), { recursive: true });
  await mkdir(path.join(dir, '1_Pooling'), { recursive: true });
  await copyFile(path.join(bert.dir, 'model.onnx'), path.join(dir, 'onnx', 'model.onnx'));
  await copyFile(path.join(bert.dir, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  await copyFile(path.join(bert.dir, 'tokenizer_config.json'), path.join(dir, 'tokenizer_config.json'));
  await writeFile(path.join(dir, 'config.json'), JSON.stringify({ _name_or_path: 'acme/tiny-bert', model_type: 'bert', hidden_size: options.hidden ?? TINY_BERT.hidden, max_position_embeddings: TINY_BERT.maxPositions }));
  await writeFile(
    path.join(dir, 'modules.json'),
    JSON.stringify([
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
      { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
    ]),
  );
  await writeFile(
    path.join(dir, '1_Pooling', 'config.json'),
    JSON.stringify({ word_embedding_dimension: TINY_BERT.hidden, pooling_mode_cls_token: false, pooling_mode_mean_tokens: true, pooling_mode_max_tokens: false, ...options.pooling }),
  );
  await writeFile(path.join(dir, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 64, do_lower_case: false }));
  if (options.prompts) await writeFile(path.join(dir, 'config_sentence_transformers.json'), JSON.stringify({ prompts: options.prompts }));
  // What a Hub snapshot also holds and ragmesh does not need.
  await writeFile(path.join(dir, 'README.md'), '# tiny\n');
  return dir;
}
