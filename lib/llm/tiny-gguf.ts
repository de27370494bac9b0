import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildManifest, readManifest, writeManifest, type ModelManifest } from '../models/manifest.ts';

/**
 * A random-weight llama-architecture GGUF for tests and benchmarks. No chat weights
 * can be installed here, but node-llama-cpp's package carries llama.cpp's sources as
 * a git bundle: its `gguf-py` writer and its vocab-only model files (a real 32k
 * SentencePiece vocabulary) give a genuine GGUF that llama.cpp loads and runs. Its
 * text is noise; its streaming, token counting, budget and abort are real.
 */

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Where generated models live (git-ignored). */
export const TINY_GGUF_CACHE = path.join(ROOT, '.cache/tiny-gguf');

export interface TinyLlamaShape {
  embedding: number;
  layers: number;
  heads: number;
  feedForward: number;
  contextLength: number;
  seed: number;
}

/** ≈17 MB (the 32k × 64 embedding and output matrices); about a thousand tokens a second on one core. */
export const TINY_LLAMA: TinyLlamaShape = { embedding: 64, layers: 2, heads: 4, feedForward: 128, contextLength: 8192, seed: 1 };

const GENERATOR_VERSION = 1;

const WRITER = String.raw`
import json, sys
src, out, shape = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, src + '/gguf-py')
import numpy as np
import gguf

vocab = gguf.GGUFReader(src + '/models/ggml-vocab-llama-spm.gguf')
n_vocab = len(vocab.fields['tokenizer.ggml.tokens'].data)
e, heads, layers, ff = shape['embedding'], shape['heads'], shape['layers'], shape['feedForward']
w = gguf.GGUFWriter(out, 'llama')
w.add_name('ragmesh tiny random llama (tests only)')
w.add_context_length(shape['contextLength'])
w.add_embedding_length(e)
w.add_block_count(layers)
w.add_feed_forward_length(ff)
w.add_head_count(heads)
w.add_head_count_kv(heads)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_dimension_count(e // heads)
w.add_vocab_size(n_vocab)
w.add_file_type(gguf.LlamaFileType.ALL_F32)
for key, field in vocab.fields.items():
    if not key.startswith('tokenizer.'):
        continue
    if field.types[0] == gguf.GGUFValueType.ARRAY:
        w.add_key_value(key, field.contents(), field.types[0], sub_type=field.types[-1])
    else:
        w.add_key_value(key, field.contents(), field.types[0])
rng = np.random.default_rng(shape['seed'])
def tensor(name, *dims, ones=False):
    w.add_tensor(name, np.ones(dims, dtype=np.float32) if ones else (rng.standard_normal(dims) * 0.05).astype(np.float32))
tensor('token_embd.weight', n_vocab, e)
tensor('output_norm.weight', e, ones=True)
tensor('output.weight', n_vocab, e)
for i in range(layers):
    tensor(f'blk.{i}.attn_norm.weight', e, ones=True)
    for p in ('q', 'k', 'v', 'output'):
        tensor(f'blk.{i}.attn_{p}.weight', e, e)
    tensor(f'blk.{i}.ffn_norm.weight', e, ones=True)
    tensor(f'blk.{i}.ffn_gate.weight', ff, e)
    tensor(f'blk.{i}.ffn_up.weight', ff, e)
    tensor(f'blk.{i}.ffn_down.weight', e, ff)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
`;

/** llama.cpp's gguf-py and the llama SentencePiece vocab, checked out of node-llama-cpp's bundle once. */
async function llamaCppSources(): Promise<string> {
  const dir = path.join(ROOT, '.cache/llama.cpp-gguf-py');
  const marker = path.join(dir, '.complete');
  if (await exists(marker)) return dir;
  // The package exports only dist/index.js, which sits one folder below the package root.
  const bundle = path.join(path.dirname(fileURLToPath(import.meta.resolve('node-llama-cpp'))), '../llama/gitRelease.bundle');
  const tmp = `${dir}.${process.pid}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await run('git', ['clone', '-q', '--no-checkout', bundle, tmp]);
  await run('git', ['-C', tmp, 'checkout', '-q', 'HEAD', '--', 'gguf-py', 'models/ggml-vocab-llama-spm.gguf']);
  await writeFile(path.join(tmp, '.complete'), '');
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir).catch(async (err) => {
    // Another test process won the race: use its copy.
    if (!(await exists(marker))) throw err;
    await rm(tmp, { recursive: true, force: true });
  });
  return dir;
}

/**
 * A model folder (`model.gguf` + `manifest.json`, kind `llm`) ready for publishFolder,
 * made on first use. Generation is deterministic per shape; a marker written last
 * means a crash mid-write is regenerated rather than trusted.
 */
export async function ensureTinyLlama(
  options: { alias?: string; version?: string; shape?: TinyLlamaShape; cacheRoot?: string } = {},
): Promise<{ folder: string; manifest: ModelManifest; modelPath: string }> {
  const shape = options.shape ?? TINY_LLAMA;
  const alias = options.alias ?? 'tiny-llama';
  const version = options.version ?? '1';
  const key = createHash('sha256').update(JSON.stringify({ shape, alias, version, GENERATOR_VERSION })).digest('hex').slice(0, 12);
  const folder = path.join(options.cacheRoot ?? TINY_GGUF_CACHE, key);
  const modelPath = path.join(folder, 'model.gguf');
  const marker = path.join(folder, '.complete');
  if (!(await exists(marker))) {
    const sources = await llamaCppSources();
    // Whatever a crashed run left would otherwise be listed in the manifest.
    await rm(folder, { recursive: true, force: true });
    await mkdir(folder, { recursive: true });
    const tmp = `${modelPath}.${process.pid}.tmp`;
    try {
      await run('python3', ['-c', WRITER, sources, tmp, JSON.stringify(shape)], { maxBuffer: 16 << 20 });
    } catch (err) {
      throw new Error(`Writing the tiny GGUF needs python3 with numpy (${(err as Error).message.split('\n')[0]})`);
    }
    await rename(tmp, modelPath);
    await writeManifest(folder, await buildManifest(folder, { name: 'ragmesh tiny random llama (tests only)', alias, version, kind: 'llm', license: 'MIT' }));
    await writeFile(marker, '');
  }
  return { folder, manifest: await readManifest(folder), modelPath };
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}
