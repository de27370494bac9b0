import { copyFile, mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { appError } from '../errors.ts';
import { openEmbedder } from './embedder.ts';
import { buildManifest, verifyFolder, writeManifest, type ModelManifest, type OnnxEmbedSpec } from './manifest.ts';

/**
 * `npm run models -- import <folder|file.gguf>`: turns a folder laid out as a Hugging
 * Face model repository (or one GGUF file) into a verified model version folder.
 * Everything the files say is read from them; only what they do not say is asked
 * (or taken from flags), and a file that contradicts what ragmesh needs is refused
 * with the file, the field and what was expected.
 */

/** What the operator may give (flags, or answers to questions). */
export interface ImportAnswers {
  alias?: string;
  version?: string;
  name?: string;
  license?: string;
  /** embed: when several ONNX graphs are in the repository. */
  onnx?: string;
  dimension?: number;
  pooling?: 'mean' | 'cls';
  maxTokens?: number;
  queryPrefix?: string;
  passagePrefix?: string;
  normalize?: boolean;
}

/** A question the files left open; `choices` when only some answers make sense. */
export interface ImportQuestion {
  field: keyof ImportAnswers;
  flag: string;
  prompt: string;
  choices?: string[];
}

export interface ImportPlan {
  kind: 'embed' | 'llm';
  /** Relative source path → relative path in the version folder. */
  files: Array<{ from: string; to: string }>;
  /** What the files said, field by field, with the file that said it. */
  found: Array<{ field: string; value: string | number | boolean; from: string }>;
  answers: ImportAnswers;
  missing: ImportQuestion[];
  source: string;
}

export class ImportRefused extends Error {
  constructor(
    readonly file: string,
    readonly field: string | null,
    readonly expected: string,
    detail?: string,
  ) {
    super(`${file}${field ? ` → ${field}` : ''}: ${detail ? `${detail}; ` : ''}expected ${expected}`);
    this.name = 'ImportRefused';
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function readJson(root: string, rel: string): Promise<Record<string, unknown> | null> {
  const file = path.join(root, rel);
  if (!(await exists(file))) return null;
  try {
    const value = JSON.parse(await readFile(file, 'utf8')) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ImportRefused(rel, null, 'a JSON object');
    return value as Record<string, unknown>;
  } catch (err) {
    if (err instanceof ImportRefused) throw err;
    throw new ImportRefused(rel, null, 'valid JSON', (err as Error).message);
  }
}

function positiveInt(value: unknown, file: string, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new ImportRefused(file, field, 'a positive integer', `found ${JSON.stringify(value)}`);
  return value;
}

/** Reads a model repository folder or a .gguf file and says what is known and what is missing. */
export async function planImport(source: string, given: ImportAnswers = {}): Promise<ImportPlan> {
  const info = await stat(source).catch(() => null);
  if (!info) throw new ImportRefused(source, null, 'a model folder (Hugging Face layout) or a .gguf file', 'not found');
  if (info.isFile()) {
    if (!source.toLowerCase().endsWith('.gguf')) throw new ImportRefused(path.basename(source), null, 'a .gguf file or a model folder', 'unknown file type');
    return planGguf(source, given);
  }
  return planHuggingFace(source, given);
}

async function planHuggingFace(root: string, given: ImportAnswers): Promise<ImportPlan> {
  const found: ImportPlan['found'] = [];
  const answers: ImportAnswers = { ...given };
  const files: ImportPlan['files'] = [];

  // The ONNX graph: onnx/model*.onnx or model*.onnx at the root.
  const candidates: string[] = [];
  for (const dir of ['onnx', '.']) {
    const names = await readdir(path.join(root, dir)).catch(() => [] as string[]);
    for (const n of names) if (/^model.*\.onnx$/i.test(n)) candidates.push(dir === '.' ? n : `${dir}/${n}`);
  }
  const ggufs = (await readdir(root)).filter((n) => n.toLowerCase().endsWith('.gguf'));
  if (candidates.length === 0 && ggufs.length === 1) return planGguf(path.join(root, ggufs[0]!), given);
  if (candidates.length === 0) throw new ImportRefused(path.basename(root), 'onnx/model.onnx', 'an ONNX export of the model at onnx/model*.onnx or model.onnx (optimum-cli export onnx --task feature-extraction)', 'no ONNX graph found');
  let onnx: string | undefined;
  if (given.onnx) {
    onnx = candidates.find((c) => c === given.onnx || path.basename(c) === given.onnx);
    if (!onnx) throw new ImportRefused(given.onnx, null, `one of ${candidates.join(', ')}`, 'not in the repository');
  } else if (candidates.length === 1) onnx = candidates[0];
  else {
    // The plain export is the safe default; quantized variants are an explicit choice.
    onnx = candidates.find((c) => path.basename(c) === 'model.onnx');
    if (onnx) found.push({ field: 'onnx', value: onnx, from: `${candidates.length} graphs; model.onnx preferred (--onnx to choose)` });
  }
  const missing: ImportQuestion[] = [];
  if (!onnx) missing.push({ field: 'onnx', flag: '--onnx', prompt: 'Which ONNX graph', choices: candidates });
  else files.push({ from: onnx, to: 'model.onnx' });

  if (!(await exists(path.join(root, 'tokenizer.json')))) {
    throw new ImportRefused('tokenizer.json', null, 'the fast-tokenizer file tokenizer.json at the repository root (vocab.txt or sentencepiece.bpe.model alone are not read)', 'missing');
  }
  files.push({ from: 'tokenizer.json', to: 'tokenizer.json' });
  const tokenizerConfig = await readJson(root, 'tokenizer_config.json');
  if (tokenizerConfig) files.push({ from: 'tokenizer_config.json', to: 'tokenizer_config.json' });

  const config = await readJson(root, 'config.json');
  if (!config) throw new ImportRefused('config.json', null, "the model's config.json (hidden_size, max_position_embeddings)", 'missing');
  files.push({ from: 'config.json', to: 'config.json' });
  const hidden = positiveInt(config.hidden_size ?? config.d_model ?? config.dim, 'config.json', 'hidden_size');
  const positions = positiveInt(config.max_position_embeddings, 'config.json', 'max_position_embeddings');
  if (typeof config.model_type === 'string') found.push({ field: 'model_type', value: config.model_type, from: 'config.json' });
  if (given.name === undefined && typeof config._name_or_path === 'string' && config._name_or_path) answers.name = config._name_or_path;

  // sentence-transformers: modules.json names the pooling folder and whether it normalizes.
  const modules = await readFileJsonArray(root, 'modules.json');
  let poolingDir: string | null = null;
  if (modules) {
    files.push({ from: 'modules.json', to: 'modules.json' });
    for (const m of modules) {
      const type = String(m.type ?? '');
      if (type.endsWith('.Pooling')) poolingDir = String(m.path ?? '1_Pooling');
      if (type.endsWith('.Normalize') && answers.normalize === undefined) {
        answers.normalize = true;
        found.push({ field: 'normalize', value: true, from: 'modules.json (Normalize module)' });
      }
      if (type.endsWith('.Dense')) throw new ImportRefused('modules.json', `${m.path ?? 'Dense'}`, 'Transformer → Pooling (→ Normalize) only', 'a Dense projection module is not part of the ONNX graph ragmesh runs');
    }
    if (answers.normalize === undefined) {
      answers.normalize = false;
      found.push({ field: 'normalize', value: false, from: 'modules.json (no Normalize module)' });
    }
  }
  const poolingRel = `${poolingDir ?? '1_Pooling'}/config.json`;
  const pooling = await readJson(root, poolingRel);
  if (pooling) {
    files.push({ from: poolingRel, to: '1_Pooling/config.json' });
    const modes = Object.entries(pooling).filter(([k, v]) => k.startsWith('pooling_mode_') && v === true).map(([k]) => k);
    const mode = modes.length === 1 && modes[0] === 'pooling_mode_mean_tokens' ? 'mean' : modes.length === 1 && modes[0] === 'pooling_mode_cls_token' ? 'cls' : null;
    if (!mode) throw new ImportRefused(poolingRel, modes.join('+') || 'pooling_mode_*', 'exactly one of pooling_mode_mean_tokens or pooling_mode_cls_token true');
    if (given.pooling && given.pooling !== mode) throw new ImportRefused(poolingRel, 'pooling mode', `--pooling ${mode} (what the file says)`, `--pooling ${given.pooling} contradicts it`);
    answers.pooling = mode;
    found.push({ field: 'pooling', value: mode, from: poolingRel });
    const width = positiveInt(pooling.word_embedding_dimension, poolingRel, 'word_embedding_dimension');
    if (width && hidden && width !== hidden) throw new ImportRefused(poolingRel, 'word_embedding_dimension', `${hidden} (config.json hidden_size)`, `found ${width}`);
  } else if (poolingDir) {
    throw new ImportRefused(poolingRel, null, 'the pooling config that modules.json names', 'missing');
  }

  if (hidden) {
    if (given.dimension && given.dimension !== hidden) throw new ImportRefused('config.json', 'hidden_size', `--dimension ${hidden}`, `--dimension ${given.dimension} contradicts it`);
    answers.dimension = hidden;
    found.push({ field: 'dimension', value: hidden, from: 'config.json hidden_size' });
  }

  // Max tokens: sentence-transformers' max_seq_length, else the tokenizer's model_max_length, capped by positions.
  const sbert = await readJson(root, 'sentence_bert_config.json');
  if (sbert) files.push({ from: 'sentence_bert_config.json', to: 'sentence_bert_config.json' });
  const seq = positiveInt(sbert?.max_seq_length, 'sentence_bert_config.json', 'max_seq_length');
  const tokMax = typeof tokenizerConfig?.model_max_length === 'number' && tokenizerConfig.model_max_length < 1e6 ? Math.floor(tokenizerConfig.model_max_length) : undefined;
  const maxFromFiles = seq ?? tokMax ?? positions;
  if (given.maxTokens === undefined && maxFromFiles) {
    answers.maxTokens = positions ? Math.min(maxFromFiles, positions) : maxFromFiles;
    found.push({ field: 'maxTokens', value: answers.maxTokens, from: seq ? 'sentence_bert_config.json max_seq_length' : tokMax ? 'tokenizer_config.json model_max_length' : 'config.json max_position_embeddings' });
  }
  if (positions && answers.maxTokens && answers.maxTokens > positions) throw new ImportRefused('config.json', 'max_position_embeddings', `--max-tokens ≤ ${positions}`, `--max-tokens ${answers.maxTokens} is more than the model has positions`);

  // Prefixes: sentence-transformers' prompts when present.
  const stConfig = await readJson(root, 'config_sentence_transformers.json');
  if (stConfig) files.push({ from: 'config_sentence_transformers.json', to: 'config_sentence_transformers.json' });
  const prompts = (stConfig?.prompts ?? null) as Record<string, unknown> | null;
  if (prompts && typeof prompts === 'object') {
    const q = prompts.query;
    const p = prompts.passage ?? prompts.document ?? prompts.corpus;
    if (given.queryPrefix === undefined && typeof q === 'string') {
      answers.queryPrefix = q;
      found.push({ field: 'queryPrefix', value: q, from: 'config_sentence_transformers.json prompts.query' });
    }
    if (given.passagePrefix === undefined && typeof p === 'string') {
      answers.passagePrefix = p;
      found.push({ field: 'passagePrefix', value: p, from: 'config_sentence_transformers.json prompts' });
    }
    if (given.passagePrefix === undefined && answers.passagePrefix === undefined && typeof q === 'string') {
      answers.passagePrefix = '';
      found.push({ field: 'passagePrefix', value: '', from: 'config_sentence_transformers.json (no passage prompt)' });
    }
  }

  if (!answers.alias) missing.push({ field: 'alias', flag: '--alias', prompt: 'Alias callers use (e.g. e5-small)' });
  if (!answers.version) missing.push({ field: 'version', flag: '--version', prompt: 'Version (e.g. 2026-11-30-fp32)' });
  if (!answers.dimension) missing.push({ field: 'dimension', flag: '--dimension', prompt: 'Output dimension' });
  if (!answers.pooling) missing.push({ field: 'pooling', flag: '--pooling', prompt: 'Pooling (model card)', choices: ['mean', 'cls'] });
  if (!answers.maxTokens) missing.push({ field: 'maxTokens', flag: '--max-tokens', prompt: 'Max tokens per input' });
  if (answers.queryPrefix === undefined) missing.push({ field: 'queryPrefix', flag: '--query-prefix', prompt: 'Query prefix ("" for none; e5: "query: ")' });
  if (answers.passagePrefix === undefined) missing.push({ field: 'passagePrefix', flag: '--passage-prefix', prompt: 'Passage prefix ("" for none; e5: "passage: ")' });
  if (answers.normalize === undefined) answers.normalize = true;
  return { kind: 'embed', files, found, answers, missing, source: root };
}

async function readFileJsonArray(root: string, rel: string): Promise<Array<Record<string, unknown>> | null> {
  const file = path.join(root, rel);
  if (!(await exists(file))) return null;
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new ImportRefused(rel, null, 'valid JSON', (err as Error).message);
  }
  if (!Array.isArray(value)) throw new ImportRefused(rel, null, 'a JSON array of modules');
  return value as Array<Record<string, unknown>>;
}

async function planGguf(file: string, given: ImportAnswers): Promise<ImportPlan> {
  const found: ImportPlan['found'] = [];
  const answers: ImportAnswers = { ...given };
  const rel = path.basename(file);
  const head = Buffer.alloc(4);
  const fh = await import('node:fs/promises').then((fs) => fs.open(file, 'r'));
  try {
    await fh.read(head, 0, 4, 0);
  } finally {
    await fh.close();
  }
  if (head.toString('latin1') !== 'GGUF') throw new ImportRefused(rel, 'magic', '"GGUF" in the first 4 bytes', `found ${JSON.stringify(head.toString('latin1'))}`);
  const { readGgufFileInfo } = await import('node-llama-cpp');
  let metadata: Record<string, unknown>;
  try {
    metadata = (await readGgufFileInfo(file, { readTensorInfo: false })).metadata as unknown as Record<string, unknown>;
  } catch (err) {
    throw new ImportRefused(rel, null, 'a readable GGUF header', (err as Error).message);
  }
  const general = (metadata.general ?? {}) as Record<string, unknown>;
  const arch = typeof general.architecture === 'string' ? general.architecture : null;
  if (!arch) throw new ImportRefused(rel, 'general.architecture', 'a model architecture (llama, qwen2, …)', 'missing');
  found.push({ field: 'architecture', value: arch, from: `${rel} general.architecture` });
  const archMeta = (metadata[arch] ?? {}) as Record<string, unknown>;
  if (typeof archMeta.context_length === 'number') found.push({ field: 'contextLength', value: archMeta.context_length, from: `${rel} ${arch}.context_length` });
  if (typeof archMeta.embedding_length === 'number') found.push({ field: 'embeddingLength', value: archMeta.embedding_length, from: `${rel} ${arch}.embedding_length` });
  if (given.name === undefined && typeof general.name === 'string' && general.name) answers.name = general.name;
  if (given.license === undefined && typeof general.license === 'string') answers.license = general.license;
  const missing: ImportQuestion[] = [];
  if (!answers.alias) missing.push({ field: 'alias', flag: '--alias', prompt: 'Alias (the LLM_MODEL the llm service loads)' });
  if (!answers.version) missing.push({ field: 'version', flag: '--version', prompt: 'Version' });
  return { kind: 'llm', files: [{ from: rel, to: 'model.gguf' }], found, answers, missing, source: path.dirname(file) };
}

/**
 * Copies the planned files into `dest`, writes and checks the manifest, and for an
 * embedding model opens it and runs one inference, so a wrong dimension or an unusable
 * graph is refused here rather than at switch time.
 */
export async function buildImport(plan: ImportPlan, dest: string): Promise<ModelManifest> {
  const still = plan.missing.filter((q) => plan.answers[q.field] === undefined);
  if (still.length > 0) throw appError('IMPORT_INCOMPLETE', `missing ${still.map((q) => `${q.field} (${q.flag})`).join(', ')}`);
  const a = plan.answers;
  await rm(dest, { recursive: true, force: true });
  for (const f of plan.files) {
    await mkdir(path.dirname(path.join(dest, f.to)), { recursive: true });
    await copyFile(path.join(plan.source, f.from), path.join(dest, f.to));
  }
  const base = { name: a.name ?? a.alias!, alias: a.alias!, version: a.version!, ...(a.license ? { license: a.license } : {}) };
  let manifest: ModelManifest;
  if (plan.kind === 'embed') {
    const onnxFrom = plan.files.find((f) => f.to === 'model.onnx')?.from ?? '';
    const embed: OnnxEmbedSpec = {
      engine: 'onnx',
      dimension: a.dimension!,
      pooling: a.pooling!,
      normalize: a.normalize ?? true,
      maxTokens: a.maxTokens!,
      queryPrefix: a.queryPrefix ?? '',
      passagePrefix: a.passagePrefix ?? '',
      precision: /quant|int8|uint8|q8/i.test(onnxFrom) ? 'int8' : 'fp32',
      model: 'model.onnx',
      tokenizer: 'tokenizer.json',
      ...(plan.files.some((f) => f.to === 'tokenizer_config.json') ? { tokenizerConfig: 'tokenizer_config.json' } : {}),
    };
    manifest = await buildManifest(dest, { ...base, kind: 'embed', embed });
  } else {
    manifest = await buildManifest(dest, { ...base, kind: 'llm' });
  }
  await writeManifest(dest, manifest);
  const problems = await verifyFolder(dest, manifest);
  if (problems.length > 0) throw appError('MODEL_FOLDER_MISMATCH', `copied files do not match: ${problems.map((p) => p.path).join(', ')}`);
  if (manifest.kind === 'embed') {
    let embedder;
    try {
      embedder = await openEmbedder(dest, manifest, { threads: 1, maxBatch: 1, queueLimit: 4 });
    } catch (err) {
      throw new ImportRefused(plan.files.find((f) => f.to === 'model.onnx')!.from, null, `a graph taking input_ids/attention_mask and giving [batch, tokens, ${a.dimension}] or [batch, ${a.dimension}]`, (err as Error).message);
    }
    try {
      const [v] = await embedder.embed(['ragmesh import check'], 'passage');
      if (!v || v.length !== a.dimension) throw new ImportRefused('config.json', 'hidden_size', `the graph's output width (${v?.length})`, `manifest says ${a.dimension}`);
    } finally {
      await embedder.close();
    }
  }
  return manifest;
}
