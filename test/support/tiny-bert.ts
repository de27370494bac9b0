import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataType, encodeModel, type NodeSpec, type TensorSpec } from './onnx-writer.ts';

/**
 * Random-weight BERT-architecture encoders with a real WordPiece tokenizer.json.
 * No sentence-embedding weights can be installed on these machines, so tests and the
 * benchmark run the real path (tokenizer → ONNX Runtime → pooling) on a model whose
 * graph is a genuine BERT encoder (embeddings + LayerNorm, multi-head self-attention
 * with the padding mask, GELU feed-forward, residuals) and whose weights are
 * deterministic noise. Its vectors mean nothing; their shapes, numerics and speed do.
 */

export interface BertShape {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  maxPositions: number;
  /** fp32, or int8 the way onnxruntime's dynamic quantization writes it (MatMulInteger). */
  precision: 'fp32' | 'int8';
  seed: number;
}

/** A few kilobytes; builds in milliseconds. For tests. */
export const TINY_BERT: BertShape = { hidden: 32, layers: 2, heads: 4, intermediate: 64, maxPositions: 128, precision: 'fp32', seed: 1 };
/** all-MiniLM-L6-v2's encoder shape (vocabulary aside): an honest size for throughput. */
export const MINILM_L6: BertShape = { hidden: 384, layers: 6, heads: 12, intermediate: 1536, maxPositions: 512, precision: 'fp32', seed: 7 };

/** Where tests and the benchmark keep generated models (git-ignored). */
export const TEST_MODEL_CACHE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../.cache/tiny-bert');

export interface GeneratedBert {
  dir: string;
  shape: BertShape;
  vocabSize: number;
}

/** Writes model.onnx, tokenizer.json and tokenizer_config.json into `dir`. */
export async function writeRandomBert(dir: string, shape: BertShape): Promise<GeneratedBert> {
  const vocab = buildVocab();
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(vocab)));
  await writeFile(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ tokenizer_class: 'BertTokenizer', do_lower_case: true, model_max_length: shape.maxPositions, cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]', unk_token: '[UNK]', mask_token: '[MASK]' }),
  );
  await writeFile(path.join(dir, 'model.onnx'), buildBertOnnx(shape, vocab.length));
  return { dir, shape, vocabSize: vocab.length };
}

/**
 * The generated model in `<cacheRoot>/<shape key>/`, made on first use. Generation
 * is deterministic, so a cached copy is as good as a fresh one; a marker file written
 * last means a crash mid-write is regenerated rather than trusted.
 */
export async function ensureRandomBert(cacheRoot: string, shape: BertShape = TINY_BERT): Promise<GeneratedBert> {
  const key = createHash('sha256').update(JSON.stringify({ shape, generator: GENERATOR_VERSION })).digest('hex').slice(0, 12);
  const dir = path.join(cacheRoot, `bert-${shape.hidden}x${shape.layers}-${shape.precision}-${key}`);
  const marker = path.join(dir, '.complete');
  try {
    const info = JSON.parse(await readFile(marker, 'utf8')) as { vocabSize: number };
    return { dir, shape, vocabSize: info.vocabSize };
  } catch {
    // Not generated yet (or interrupted): build in a sibling folder, then move into place.
  }
  const staging = `${dir}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  const made = await writeRandomBert(staging, shape);
  await writeFile(path.join(staging, '.complete'), JSON.stringify({ vocabSize: made.vocabSize }));
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
  return { dir, shape, vocabSize: made.vocabSize };
}

const GENERATOR_VERSION = 1;

// ---------------------------------------------------------------------------------
// Tokenizer

const SPECIAL = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const LATIN = 'abcdefghijklmnopqrstuvwxyz';
const CYRILLIC = 'абвгдежзийклмнопрстуфхцчшщъыьэюя';
const DIGITS = '0123456789';
const PUNCT = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
// Whole words make tokenization look like a real vocabulary's (fewer pieces per word),
// so sequence lengths in the benchmark are realistic rather than one token a letter.
const WORDS = (
  'the of and to in is for that on with as by this are from be at an or it not which was have has can ' +
  'information retrieval document documents search query system systems data library research model models ' +
  'index text language languages user users question answer report analysis science use based results ' +
  'и в не на что с по как это для из к о от то же все документ документы поиск система данные запрос ' +
  'модель текст язык ответ вопрос отчет анализ библиотека информация информации пользователь результаты'
).split(' ');

function buildVocab(): string[] {
  const pieces = [...LATIN, ...CYRILLIC, ...DIGITS];
  return [...SPECIAL, ...pieces, ...PUNCT, ...pieces.map((c) => `##${c}`), ...new Set(WORDS)];
}

/** A Hugging Face tokenizer.json of the BERT-uncased kind (WordPiece). */
function tokenizerJson(vocab: string[]): object {
  const id = (token: string) => vocab.indexOf(token);
  const special = (token: string) => ({ SpecialToken: { id: token, type_id: 0 } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map((content) => ({ id: id(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [special('[CLS]'), { Sequence: { id: 'A', type_id: 0 } }, special('[SEP]')],
      pair: [special('[CLS]'), { Sequence: { id: 'A', type_id: 0 } }, special('[SEP]'), { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [id('[CLS]')], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [id('[SEP]')], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab.map((token, i) => [token, i])),
    },
  };
}

// ---------------------------------------------------------------------------------
// Graph

/** Deterministic uniform noise with BERT's initializer spread (std 0.02). */
function noise(seed: number): (n: number) => Float32Array {
  let state = seed >>> 0 || 1;
  const a = 0.02 * Math.sqrt(3);
  return (n) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      out[i] = (u * 2 - 1) * a;
    }
    return out;
  };
}

export function buildBertOnnx(shape: BertShape, vocabSize: number): Buffer {
  const { hidden: H, layers, heads, intermediate: I, maxPositions } = shape;
  if (H % heads !== 0) throw new Error(`hidden ${H} is not divisible by heads ${heads}`);
  const headDim = H / heads;
  const rand = noise(shape.seed);
  const nodes: NodeSpec[] = [];
  const inits: TensorSpec[] = [];
  const f32 = (name: string, dims: number[], data: Float32Array) => (inits.push({ name, type: DataType.FLOAT, dims, data }), name);
  const i64 = (name: string, dims: number[], values: number[]) =>
    (inits.push({ name, type: DataType.INT64, dims, data: BigInt64Array.from(values.map(BigInt)) }), name);
  const scalar = (name: string, value: number) => f32(name, [], Float32Array.of(value));
  const weight = (name: string, dims: number[]) => f32(name, dims, rand(dims.reduce((a, b) => a * b, 1)));
  const fill = (name: string, n: number, value: number) => f32(name, [n], new Float32Array(n).fill(value));
  const op = (op: string, inputs: string[], output: string, attrs?: NodeSpec['attrs']) => (nodes.push({ op, inputs, outputs: [output], attrs }), output);
  const layerNorm = (x: string, prefix: string) =>
    op('LayerNormalization', [x, fill(`${prefix}.gamma`, H, 1), fill(`${prefix}.beta`, H, 0)], `${prefix}.out`, { axis: { int: -1 }, epsilon: 1e-12 });

  // x·W + b, either in fp32 or as dynamic int8 (activations quantized per call,
  // weights per tensor, symmetric), the pattern onnxruntime's quantizer emits.
  const linear = (x: string, prefix: string, inDim: number, outDim: number) => {
    const bias = fill(`${prefix}.bias`, outDim, 0);
    if (shape.precision === 'fp32') {
      return op('Add', [op('MatMul', [x, weight(`${prefix}.weight`, [inDim, outDim])], `${prefix}.mm`), bias], `${prefix}.out`);
    }
    const w = rand(inDim * outDim);
    const maxAbs = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1;
    const scale = maxAbs / 127;
    const q = Int8Array.from(w, (v) => Math.round(v / scale));
    inits.push({ name: `${prefix}.weight_q`, type: DataType.INT8, dims: [inDim, outDim], data: q });
    inits.push({ name: `${prefix}.weight_zp`, type: DataType.INT8, dims: [], data: Int8Array.of(0) });
    scalar(`${prefix}.weight_scale`, scale);
    nodes.push({ op: 'DynamicQuantizeLinear', inputs: [x], outputs: [`${prefix}.xq`, `${prefix}.xs`, `${prefix}.xzp`] });
    const int32 = op('MatMulInteger', [`${prefix}.xq`, `${prefix}.weight_q`, `${prefix}.xzp`, `${prefix}.weight_zp`], `${prefix}.mmi`);
    const asFloat = op('Cast', [int32], `${prefix}.mmf`, { to: { int: DataType.FLOAT } });
    const combinedScale = op('Mul', [`${prefix}.xs`, `${prefix}.weight_scale`], `${prefix}.scale`);
    return op('Add', [op('Mul', [asFloat, combinedScale], `${prefix}.mm`), bias], `${prefix}.out`);
  };

  // Embeddings: word + position (0..seq-1) + token type, then LayerNorm.
  const word = op('Gather', [weight('emb.word', [vocabSize, H]), 'input_ids'], 'emb.word.out');
  const seqLen = op('Gather', [op('Shape', ['input_ids'], 'ids.shape'), i64('const.one_idx', [], [1])], 'seq_len');
  const positions = op('Range', [i64('const.zero', [], [0]), seqLen, i64('const.one', [], [1])], 'positions');
  const pos = op('Gather', [weight('emb.position', [maxPositions, H]), positions], 'emb.pos.out');
  const type = op('Gather', [weight('emb.type', [2, H]), 'token_type_ids'], 'emb.type.out');
  let x = layerNorm(op('Add', [op('Add', [word, pos], 'emb.sum1'), type], 'emb.sum'), 'emb.ln');

  // Padding positions get -10000 before the softmax, as in BERT.
  const maskF = op('Cast', ['attention_mask'], 'mask.f', { to: { int: DataType.FLOAT } });
  const inverted = op('Sub', [scalar('const.f1', 1), maskF], 'mask.inv');
  const maskBias = op('Unsqueeze', [op('Mul', [inverted, scalar('const.neg', -10000)], 'mask.neg'), i64('const.axes12', [2], [1, 2])], 'mask.bias');
  const splitHeads = i64('const.split', [4], [0, 0, heads, headDim]);
  const mergeHeads = i64('const.merge', [3], [0, 0, H]);
  const attnScale = scalar('const.scale', 1 / Math.sqrt(headDim));

  for (let l = 0; l < layers; l++) {
    const p = `l${l}`;
    const heads4 = (name: string, perm: number[]) =>
      op('Transpose', [op('Reshape', [linear(x, `${p}.${name}`, H, H), splitHeads], `${p}.${name}.4d`)], `${p}.${name}.t`, { perm: { ints: perm } });
    const q = heads4('q', [0, 2, 1, 3]);
    const k = heads4('k', [0, 2, 3, 1]);
    const v = heads4('v', [0, 2, 1, 3]);
    const scores = op('Add', [op('Mul', [op('MatMul', [q, k], `${p}.qk`), attnScale], `${p}.scaled`), maskBias], `${p}.masked`);
    const probs = op('Softmax', [scores], `${p}.probs`, { axis: { int: -1 } });
    const context = op('Transpose', [op('MatMul', [probs, v], `${p}.ctx`)], `${p}.ctx.t`, { perm: { ints: [0, 2, 1, 3] } });
    const attnOut = linear(op('Reshape', [context, mergeHeads], `${p}.ctx.3d`), `${p}.o`, H, H);
    const x1 = layerNorm(op('Add', [attnOut, x], `${p}.res1`), `${p}.ln1`);
    // GELU, erf form: 0.5·h·(1 + erf(h/√2)).
    const h = linear(x1, `${p}.ff1`, H, I);
    const erf = op('Erf', [op('Div', [h, scalar(`${p}.sqrt2`, Math.SQRT2)], `${p}.h_s`)], `${p}.erf`);
    const gelu = op('Mul', [op('Mul', [h, op('Add', [erf, scalar(`${p}.one`, 1)], `${p}.erf1`)], `${p}.hg`), scalar(`${p}.half`, 0.5)], `${p}.gelu`);
    x = layerNorm(op('Add', [linear(gelu, `${p}.ff2`, I, H), x1], `${p}.res2`), `${p}.ln2`);
  }
  op('Identity', [x], 'last_hidden_state');

  const ids = (name: string) => ({ name, type: DataType.INT64, shape: ['batch', 'sequence'] });
  return encodeModel({
    name: 'random_bert',
    producer: 'ragmesh-tiny-bert',
    opset: 17,
    nodes,
    initializers: inits,
    inputs: [ids('input_ids'), ids('attention_mask'), ids('token_type_ids')],
    outputs: [{ name: 'last_hidden_state', type: DataType.FLOAT, shape: ['batch', 'sequence', H] }],
  });
}
