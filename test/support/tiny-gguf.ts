import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildManifest, readManifest, writeManifest, type ModelManifest } from '../../lib/models/manifest.ts';
import { FileType, GgmlType, readKeyValues, writeGguf, type KeyValue, type TensorSpec } from './gguf-writer.ts';

/**
 * A random-weight llama-architecture GGUF for tests and benchmarks, written in
 * TypeScript (./gguf-writer.ts; no Python). No chat weights can be installed here,
 * but node-llama-cpp's package carries llama.cpp's sources as a git bundle, with its
 * vocab-only model files (a real 32k SentencePiece vocabulary, Qwen2's BPE one): with
 * one of them the file is a genuine GGUF that llama.cpp loads and runs, tokenizing as
 * a real model does. Its text is noise; its streaming, token counting, budget and
 * abort are real. Needs git (to read the bundle).
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

const GENERATOR_VERSION = 3;

/** The GGUF of `shape`: random weights (seeded), the vocabulary of llama.cpp's vocab-only file. */
async function writeTinyLlama(vocabFile: string, out: string, shape: TinyLlamaShape): Promise<void> {
  const arch = shape.architecture ?? 'llama';
  const { entries: vocab } = await readKeyValues(vocabFile, 'tokenizer.');
  const nVocab = vocab.find((e) => e.key === 'tokenizer.ggml.tokens')?.count;
  if (!nVocab) throw new Error(`${vocabFile} holds no tokenizer.ggml.tokens`);
  const { embedding: e, heads, layers, feedForward: ff } = shape;
  const kvHeads = shape.kvHeads ?? heads;
  const headDim = e / heads;
  const quantized = shape.weights === 'q8_0';
  const key = (k: string) => `${arch}.${k}`;
  const keyValues: KeyValue[] = [
    { key: 'general.architecture', type: 'string', value: arch },
    { key: 'general.name', type: 'string', value: `ragmesh tiny random ${arch} (tests only)` },
    { key: key('context_length'), type: 'u32', value: shape.contextLength },
    { key: key('embedding_length'), type: 'u32', value: e },
    { key: key('block_count'), type: 'u32', value: layers },
    { key: key('feed_forward_length'), type: 'u32', value: ff },
    { key: key('attention.head_count'), type: 'u32', value: heads },
    { key: key('attention.head_count_kv'), type: 'u32', value: kvHeads },
    { key: key('attention.layer_norm_rms_epsilon'), type: 'f32', value: arch === 'llama' ? 1e-5 : 1e-6 },
    ...(shape.ropeFreqBase !== undefined ? [{ key: key('rope.freq_base'), type: 'f32' as const, value: shape.ropeFreqBase }] : []),
    ...(arch === 'llama' ? [{ key: key('rope.dimension_count'), type: 'u32' as const, value: headDim }, { key: key('vocab_size'), type: 'u32' as const, value: nVocab }] : []),
    { key: 'general.file_type', type: 'u32', value: quantized ? FileType.MOSTLY_Q8_0 : FileType.ALL_F32 },
    ...vocab.map((v) => ({ key: v.key, raw: v.raw })),
  ];
  const random = normalSource(shape.seed);
  const tensors: TensorSpec[] = [];
  const tensor = (name: string, shapeOf: number[], kind: 'ones' | 'random' | 'matrix' = 'random') =>
    tensors.push({
      name,
      shape: shapeOf,
      type: kind === 'matrix' && quantized ? GgmlType.Q8_0 : GgmlType.F32,
      fill: (values) => (kind === 'ones' ? values.fill(1) : random(values, 0.05)),
    });
  tensor('token_embd.weight', [nVocab, e], 'matrix');
  tensor('output_norm.weight', [e], 'ones');
  // qwen2 ties the output to the embedding.
  if (arch === 'llama') tensor('output.weight', [nVocab, e], 'matrix');
  for (let i = 0; i < layers; i++) {
    tensor(`blk.${i}.attn_norm.weight`, [e], 'ones');
    tensor(`blk.${i}.attn_q.weight`, [e, e], 'matrix');
    tensor(`blk.${i}.attn_k.weight`, [kvHeads * headDim, e], 'matrix');
    tensor(`blk.${i}.attn_v.weight`, [kvHeads * headDim, e], 'matrix');
    tensor(`blk.${i}.attn_output.weight`, [e, e], 'matrix');
    if (arch === 'qwen2') {
      tensor(`blk.${i}.attn_q.bias`, [e]);
      tensor(`blk.${i}.attn_k.bias`, [kvHeads * headDim]);
      tensor(`blk.${i}.attn_v.bias`, [kvHeads * headDim]);
    }
    tensor(`blk.${i}.ffn_norm.weight`, [e], 'ones');
    tensor(`blk.${i}.ffn_gate.weight`, [ff, e], 'matrix');
    tensor(`blk.${i}.ffn_up.weight`, [ff, e], 'matrix');
    tensor(`blk.${i}.ffn_down.weight`, [e, ff], 'matrix');
  }
  await writeGguf(out, keyValues, tensors);
}

/** Normal(0, scale) values from a seeded generator (mulberry32 and Box–Muller): the same shape gives the same file. */
function normalSource(seed: number): (values: Float32Array, scale: number) => void {
  let a = Math.imul(seed, 0x9e3779b1) >>> 0;
  return (values, scale) => {
    for (let i = 0; i < values.length; i += 2) {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      const u1 = (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
      a = (a + 0x6d2b79f5) >>> 0;
      t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      const u2 = (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
      const r = Math.sqrt(-2 * Math.log(u1)) * scale;
      values[i] = r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < values.length) values[i + 1] = r * Math.sin(2 * Math.PI * u2);
    }
  };
}

/** llama.cpp's vocab-only model files (a real 32k SentencePiece and Qwen2's BPE vocabulary), checked out of node-llama-cpp's bundle once. */
/** One extraction per process: concurrent callers share it (its temp folder is per process). */
let vocabs: Promise<string> | null = null;
function llamaCppVocabs(): Promise<string> {
  vocabs ??= extractLlamaCppVocabs().catch((err: unknown) => {
    vocabs = null;
    throw err;
  });
  return vocabs;
}

async function extractLlamaCppVocabs(): Promise<string> {
  const dir = path.join(ROOT, '.cache/llama.cpp-vocab');
  const marker = path.join(dir, '.complete');
  if (await exists(marker)) return dir;
  // The package exports only dist/index.js, which sits one folder below the package root.
  const bundle = path.join(path.dirname(fileURLToPath(import.meta.resolve('node-llama-cpp'))), '../llama/gitRelease.bundle');
  const tmp = `${dir}.${process.pid}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await run('git', ['clone', '-q', '--no-checkout', bundle, tmp]);
  await run('git', ['-C', tmp, 'checkout', '-q', 'HEAD', '--', 'models/ggml-vocab-llama-spm.gguf', 'models/ggml-vocab-qwen2.gguf']);
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
    const vocabs = await llamaCppVocabs();
    // Whatever a crashed run left would otherwise be listed in the manifest.
    await rm(folder, { recursive: true, force: true });
    await mkdir(folder, { recursive: true });
    const tmp = `${modelPath}.${process.pid}.tmp`;
    await writeTinyLlama(path.join(vocabs, `models/ggml-vocab-${shape.vocab ?? 'llama-spm'}.gguf`), tmp, shape);
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
