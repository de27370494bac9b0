import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildManifest, readManifest, writeManifest, type ModelManifest } from '../../lib/models/manifest.ts';

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
  /** llama.cpp architecture; `qwen2` adds the q/k/v biases and ties the output to the embedding. Default llama. */
  architecture?: 'llama' | 'qwen2';
  /** Key/value heads (grouped-query attention); default = heads. */
  kvHeads?: number;
  /** Vocabulary from llama.cpp's vocab-only files: llama-spm (32k, default) or qwen2 (152k BPE). */
  vocab?: 'llama-spm' | 'qwen2';
  /** Weight type of the matrices: f32 (default) or q8_0, as small models are served. */
  weights?: 'f32' | 'q8_0';
  ropeFreqBase?: number;
}

/** ≈17 MB (the 32k × 64 embedding and output matrices); about a thousand tokens a second on one core. */
export const TINY_LLAMA: TinyLlamaShape = { embedding: 64, layers: 2, heads: 4, feedForward: 128, contextLength: 8192, seed: 1 };

/**
 * Qwen2.5-0.5B's shape (494M parameters: 24 layers, 896 wide, 14 query and 2 key/value
 * heads, 4864 feed-forward, its 151,936-token vocabulary) in q8_0, ≈530 MB: what
 * bench:llm measures speed on, since speed depends on the shape, not on the weights.
 */
export const QWEN25_05B_SHAPE: TinyLlamaShape = {
  embedding: 896,
  layers: 24,
  heads: 14,
  kvHeads: 2,
  feedForward: 4864,
  contextLength: 32768,
  seed: 1,
  architecture: 'qwen2',
  vocab: 'qwen2',
  weights: 'q8_0',
  ropeFreqBase: 1_000_000,
};

const GENERATOR_VERSION = 2;

const WRITER = String.raw`
import json, sys
src, out, shape = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, src + '/gguf-py')
import numpy as np
import gguf

arch = shape.get('architecture', 'llama')
vocab = gguf.GGUFReader(src + '/models/ggml-vocab-' + shape.get('vocab', 'llama-spm') + '.gguf')
n_vocab = len(vocab.fields['tokenizer.ggml.tokens'].data)
e, heads, layers, ff = shape['embedding'], shape['heads'], shape['layers'], shape['feedForward']
kv_heads = shape.get('kvHeads', heads)
head_dim = e // heads
quantized = shape.get('weights', 'f32') == 'q8_0'
w = gguf.GGUFWriter(out, arch)
w.add_name('ragmesh tiny random ' + arch + ' (tests only)')
w.add_context_length(shape['contextLength'])
w.add_embedding_length(e)
w.add_block_count(layers)
w.add_feed_forward_length(ff)
w.add_head_count(heads)
w.add_head_count_kv(kv_heads)
w.add_layer_norm_rms_eps(1e-5 if arch == 'llama' else 1e-6)
if 'ropeFreqBase' in shape:
    w.add_rope_freq_base(float(shape['ropeFreqBase']))
if arch == 'llama':
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(n_vocab)
w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if quantized else gguf.LlamaFileType.ALL_F32)
for key, field in vocab.fields.items():
    if not key.startswith('tokenizer.'):
        continue
    if field.types[0] == gguf.GGUFValueType.ARRAY:
        w.add_key_value(key, field.contents(), field.types[0], sub_type=field.types[-1])
    else:
        w.add_key_value(key, field.contents(), field.types[0])
rng = np.random.default_rng(shape['seed'])
def tensor(name, *dims, ones=False, matrix=False):
    if ones:
        data = np.ones(dims, dtype=np.float32)
    else:
        data = rng.standard_normal(dims, dtype=np.float32) * np.float32(0.05)
    if matrix and quantized:
        w.add_tensor(name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    else:
        w.add_tensor(name, data)
tensor('token_embd.weight', n_vocab, e, matrix=True)
tensor('output_norm.weight', e, ones=True)
if arch == 'llama':
    tensor('output.weight', n_vocab, e, matrix=True)
for i in range(layers):
    tensor(f'blk.{i}.attn_norm.weight', e, ones=True)
    tensor(f'blk.{i}.attn_q.weight', e, e, matrix=True)
    tensor(f'blk.{i}.attn_k.weight', kv_heads * head_dim, e, matrix=True)
    tensor(f'blk.{i}.attn_v.weight', kv_heads * head_dim, e, matrix=True)
    tensor(f'blk.{i}.attn_output.weight', e, e, matrix=True)
    if arch == 'qwen2':
        tensor(f'blk.{i}.attn_q.bias', e)
        tensor(f'blk.{i}.attn_k.bias', kv_heads * head_dim)
        tensor(f'blk.{i}.attn_v.bias', kv_heads * head_dim)
    tensor(f'blk.{i}.ffn_norm.weight', e, ones=True)
    tensor(f'blk.{i}.ffn_gate.weight', ff, e, matrix=True)
    tensor(f'blk.{i}.ffn_up.weight', ff, e, matrix=True)
    tensor(f'blk.{i}.ffn_down.weight', e, ff, matrix=True)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
`;

/** llama.cpp's gguf-py and the llama SentencePiece vocab, checked out of node-llama-cpp's bundle once. */
async function llamaCppSources(): Promise<string> {
  const dir = path.join(ROOT, '.cache/llama.cpp-gguf-py');
  const marker = path.join(dir, '.complete');
  if (await exists(marker)) {
    // Copies made before the qwen2 vocabulary was needed: add it from the same bundle.
    if (!(await exists(path.join(dir, 'models/ggml-vocab-qwen2.gguf')))) await run('git', ['-C', dir, 'checkout', '-q', 'HEAD', '--', 'models/ggml-vocab-qwen2.gguf']);
    return dir;
  }
  // The package exports only dist/index.js, which sits one folder below the package root.
  const bundle = path.join(path.dirname(fileURLToPath(import.meta.resolve('node-llama-cpp'))), '../llama/gitRelease.bundle');
  const tmp = `${dir}.${process.pid}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await run('git', ['clone', '-q', '--no-checkout', bundle, tmp]);
  await run('git', ['-C', tmp, 'checkout', '-q', 'HEAD', '--', 'gguf-py', 'models/ggml-vocab-llama-spm.gguf', 'models/ggml-vocab-qwen2.gguf']);
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
