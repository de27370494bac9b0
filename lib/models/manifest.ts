import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { appError } from '../errors.ts';
import { assertObjectKey } from '../ports/object-store.ts';

/**
 * manifest.json: what a model version consists of, byte for byte. A service loads a
 * model only after every file listed here matched its size and SHA-256, so the
 * manifest (as registered in Postgres at publish time) is the root of trust.
 */

export const MODEL_KINDS = ['embed', 'ocr', 'llm', 'rerank'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

export const MANIFEST_FILE = 'manifest.json';
export const CATALOG_FILE = 'manifest.json';

export interface ManifestFile {
  /** Relative to the model version's folder, "/"-separated. */
  path: string;
  size: number;
  sha256: string;
}

export interface OnnxEmbedSpec {
  engine: 'onnx';
  /** Output width; checked against the model's real output at load time. */
  dimension: number;
  pooling: 'mean' | 'cls';
  normalize: boolean;
  /** Inputs longer than this are truncated (keeping the closing special token). */
  maxTokens: number;
  /** e5-style models want "query: " / "passage: "; others want "". */
  queryPrefix: string;
  passagePrefix: string;
  precision: 'fp32' | 'int8';
  model: string;
  tokenizer: string;
  tokenizerConfig?: string;
}

export interface HashedNgramEmbedSpec {
  engine: 'hashed-ngrams';
  dimension: number;
  normalize: true;
  maxTokens: number;
  queryPrefix: string;
  passagePrefix: string;
  /** JSON file with the n-gram parameters (see hashed-ngrams.ts). */
  config: string;
}

export type EmbedSpec = OnnxEmbedSpec | HashedNgramEmbedSpec;

export interface OcrSpec {
  engine: 'tesseract';
  /** Tesseract language codes; each needs `<code>.traineddata` among the files. */
  languages: string[];
}

export interface ModelManifest {
  schema: 1;
  /** Human name / origin, e.g. "intfloat/multilingual-e5-small". */
  name: string;
  /** The alias this version serves; vectors carry alias + version. */
  alias: string;
  version: string;
  kind: ModelKind;
  license?: string;
  createdAt: string;
  files: ManifestFile[];
  embed?: EmbedSpec;
  ocr?: OcrSpec;
}

/** The bucket-level (and repo-level) index of every published model version. */
export interface ModelCatalog {
  schema: 1;
  models: ModelManifest[];
}

export interface FileDigest {
  size: number;
  sha256: string;
}

/** Streams the file, so a 500 MB model never sits in memory just to be hashed. */
export async function hashFile(file: string): Promise<FileDigest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

/** Every regular file under `folder` except the manifest itself, sorted, "/"-separated. */
export async function listModelFiles(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(folder, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .filter((rel) => rel !== MANIFEST_FILE && !rel.split('/').some((s) => s.startsWith('.')))
    .sort();
}

export type ManifestMeta = Omit<ModelManifest, 'schema' | 'files' | 'createdAt'> & { createdAt?: string };

export async function buildManifest(folder: string, meta: ManifestMeta): Promise<ModelManifest> {
  const files: ManifestFile[] = [];
  for (const rel of await listModelFiles(folder)) {
    files.push({ path: rel, ...(await hashFile(path.join(folder, rel))) });
  }
  return validateManifest({ schema: 1, ...meta, createdAt: meta.createdAt ?? new Date().toISOString(), files });
}

export async function writeManifest(folder: string, manifest: ModelManifest): Promise<void> {
  await writeFile(path.join(folder, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
}

export async function readManifest(folder: string): Promise<ModelManifest> {
  return parseManifest(await readFile(path.join(folder, MANIFEST_FILE), 'utf8'));
}

export function parseManifest(json: string): ModelManifest {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw appError('INVALID_MANIFEST', `manifest.json is not JSON: ${(err as Error).message}`);
  }
  return validateManifest(value);
}

const SEGMENT = /^[A-Za-z0-9._=+@,-]+$/;
const SHA256 = /^[0-9a-f]{64}$/;

/** Checks shape and internal consistency; lists every problem at once. */
export function validateManifest(value: unknown): ModelManifest {
  const problems: string[] = [];
  const m = value as Partial<ModelManifest> | null;
  if (typeof m !== 'object' || m === null) throw appError('INVALID_MANIFEST', 'manifest must be an object');
  if (m.schema !== 1) problems.push('schema must be 1');
  for (const field of ['alias', 'version'] as const) {
    const v = m[field];
    // Alias and version become object-key segments and cache folder names.
    if (typeof v !== 'string' || !SEGMENT.test(v) || v === '.' || v === '..') problems.push(`${field} must match ${SEGMENT}`);
  }
  if (typeof m.name !== 'string' || m.name === '') problems.push('name is required');
  if (!MODEL_KINDS.includes(m.kind as ModelKind)) problems.push(`kind must be one of ${MODEL_KINDS.join(', ')}`);
  if (!Array.isArray(m.files) || m.files.length === 0) problems.push('files must list at least one file');
  const paths = new Set<string>();
  for (const f of m.files ?? []) {
    try {
      assertObjectKey(f.path);
    } catch {
      problems.push(`file path "${String(f.path)}" is not a safe relative path`);
    }
    if (paths.has(f.path)) problems.push(`file "${f.path}" is listed twice`);
    paths.add(f.path);
    if (!Number.isSafeInteger(f.size) || f.size < 0) problems.push(`file "${f.path}" has no valid size`);
    if (typeof f.sha256 !== 'string' || !SHA256.test(f.sha256)) problems.push(`file "${f.path}" has no valid sha256`);
  }
  const needFile = (what: string, file: string | undefined) => {
    if (file === undefined || !paths.has(file)) problems.push(`${what} "${String(file)}" is not among the files`);
  };
  if (m.kind === 'embed') {
    const e = m.embed;
    if (!e) problems.push('an embed model needs an "embed" section');
    else {
      if (!Number.isInteger(e.dimension) || e.dimension < 1) problems.push('embed.dimension must be a positive integer');
      if (!Number.isInteger(e.maxTokens) || e.maxTokens < 2) problems.push('embed.maxTokens must be an integer ≥ 2');
      if (typeof e.queryPrefix !== 'string' || typeof e.passagePrefix !== 'string') problems.push('embed.queryPrefix and embed.passagePrefix must be strings ("" for none)');
      if (e.engine === 'onnx') {
        if (e.pooling !== 'mean' && e.pooling !== 'cls') problems.push('embed.pooling must be mean or cls');
        if (e.precision !== 'fp32' && e.precision !== 'int8') problems.push('embed.precision must be fp32 or int8');
        if (typeof e.normalize !== 'boolean') problems.push('embed.normalize must be true or false');
        needFile('embed.model', e.model);
        needFile('embed.tokenizer', e.tokenizer);
        if (e.tokenizerConfig !== undefined) needFile('embed.tokenizerConfig', e.tokenizerConfig);
      } else if (e.engine === 'hashed-ngrams') {
        needFile('embed.config', e.config);
      } else problems.push('embed.engine must be onnx or hashed-ngrams');
    }
  }
  if (m.kind === 'ocr') {
    const o = m.ocr;
    if (!o || o.engine !== 'tesseract' || !Array.isArray(o.languages) || o.languages.length === 0) {
      problems.push('an ocr model needs "ocr": { "engine": "tesseract", "languages": [...] }');
    } else {
      for (const lang of o.languages) needFile(`ocr language ${lang}`, `${lang}.traineddata`);
    }
  }
  if (problems.length > 0) throw appError('INVALID_MANIFEST', `Invalid model manifest: ${problems.join('; ')}`, { problems });
  return m as ModelManifest;
}

export interface FileProblem {
  path: string;
  reason: 'missing' | 'size' | 'sha256';
  expected: FileDigest;
  actual: FileDigest | null;
}

/** Compares a folder with its manifest; an empty list means every file matches. */
export async function verifyFolder(folder: string, manifest: ModelManifest): Promise<FileProblem[]> {
  const problems: FileProblem[] = [];
  for (const f of manifest.files) {
    const expected = { size: f.size, sha256: f.sha256 };
    let actual: FileDigest;
    try {
      actual = await hashFile(path.join(folder, ...f.path.split('/')));
    } catch {
      problems.push({ path: f.path, reason: 'missing', expected, actual: null });
      continue;
    }
    if (actual.size !== f.size) problems.push({ path: f.path, reason: 'size', expected, actual });
    else if (actual.sha256 !== f.sha256) problems.push({ path: f.path, reason: 'sha256', expected, actual });
  }
  return problems;
}

/** Adds or replaces one version in a catalog, keeping a stable order. */
export function upsertCatalog(catalog: ModelCatalog, manifest: ModelManifest): ModelCatalog {
  const models = catalog.models.filter((m) => !(m.alias === manifest.alias && m.version === manifest.version));
  models.push(manifest);
  models.sort((a, b) => a.alias.localeCompare(b.alias) || a.version.localeCompare(b.version));
  return { schema: 1, models };
}

export function parseCatalog(json: string): ModelCatalog {
  const value = JSON.parse(json) as ModelCatalog;
  if (value?.schema !== 1 || !Array.isArray(value.models)) throw appError('INVALID_MANIFEST', 'catalog manifest.json must be { schema: 1, models: [...] }');
  return { schema: 1, models: value.models.map((m) => validateManifest(m)) };
}

/** Object keys of a version in the models bucket: `<alias>/<version>/<path>`. */
export function objectKeyOf(manifest: Pick<ModelManifest, 'alias' | 'version'>, file: string): string {
  return assertObjectKey(`${manifest.alias}/${manifest.version}/${file}`);
}
