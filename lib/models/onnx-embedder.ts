import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import { defaultProcessEnv } from '../config/env.ts';
import type { OnnxEmbedSpec } from './manifest.ts';

// onnxruntime-node reports nothing outward on Linux, but this makes the intent explicit
// for every process that loads a model, whatever the caller's environment says.
defaultProcessEnv('ORT_DISABLE_TELEMETRY', '1');

export type TextKind = 'query' | 'passage';

/** A tokenized input: what the batcher sorts by (`ids.length`) and what ORT eats. */
export interface Encoded {
  ids: number[];
  typeIds: number[];
}

export interface SessionOptions {
  /** Intra-op threads of the one session of this model. */
  threads: number;
}

/**
 * A BERT/XLM-R-family sentence encoder: tokenizer.json → ONNX Runtime → pooling →
 * L2 normalization. One persistent session per model version. onnxruntime-node runs
 * a call synchronously on the calling thread (its intra-op threads help, but the
 * caller waits): the event loop is held for the whole batch, which is why background
 * batches get a session on a thread of their own (BackgroundLane).
 */
export class OnnxSentenceEncoder {
  private constructor(
    readonly spec: OnnxEmbedSpec,
    private readonly tokenizer: Tokenizer,
    private readonly session: ort.InferenceSession,
    private readonly wantsTypeIds: boolean,
    private readonly outputName: string,
    private readonly padId: number,
  ) {}

  static async open(folder: string, spec: OnnxEmbedSpec, options: SessionOptions): Promise<OnnxSentenceEncoder> {
    const tokenizerJson = JSON.parse(await readFile(path.join(folder, spec.tokenizer), 'utf8')) as Record<string, unknown>;
    const tokenizerConfig = spec.tokenizerConfig
      ? (JSON.parse(await readFile(path.join(folder, spec.tokenizerConfig), 'utf8')) as Record<string, unknown>)
      : {};
    const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    const session = await ort.InferenceSession.create(path.join(folder, spec.model), {
      intraOpNumThreads: options.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      // Spinning intra-op threads keep cores busy after each run; on small shared
      // machines that steals the CPU the event loop (tokenizing the next batch) and
      // other sessions need.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    const outputName = session.outputNames.includes('last_hidden_state') ? 'last_hidden_state' : session.outputNames[0]!;
    const padToken = typeof tokenizerConfig.pad_token === 'string' ? tokenizerConfig.pad_token : undefined;
    const padId = (padToken ? tokenizer.token_to_id(padToken) : undefined) ?? tokenizer.token_to_id('[PAD]') ?? tokenizer.token_to_id('<pad>') ?? 0;
    const encoder = new OnnxSentenceEncoder(spec, tokenizer, session, session.inputNames.includes('token_type_ids'), outputName, padId);
    // One real inference proves the file is a working encoder of the declared width
    // before anyone is switched to it.
    const [probe] = await encoder.run([encoder.encode('warm-up', 'passage')]);
    if (probe!.length !== spec.dimension) {
      await encoder.close();
      throw new Error(`model output has dimension ${probe!.length}, manifest declares ${spec.dimension}`);
    }
    return encoder;
  }

  encode(text: string, kind: TextKind): Encoded {
    const prefix = kind === 'query' ? this.spec.queryPrefix : this.spec.passagePrefix;
    // A token covers at least one character, so this cut never shortens what the
    // model would have seen; it only spares tokenizing megabytes that get truncated.
    const input = prefix + text.slice(0, this.spec.maxTokens * 32);
    const enc = this.tokenizer.encode(input, { return_token_type_ids: true });
    let ids = enc.ids;
    let typeIds = enc.token_type_ids;
    const max = this.spec.maxTokens;
    if (ids.length > max) {
      // Keep the closing special token ([SEP] / </s>): models were trained with it.
      ids = [...ids.slice(0, max - 1), ids[ids.length - 1]!];
      typeIds = typeIds.slice(0, max);
    }
    return { ids, typeIds };
  }

  /** Runs one padded batch; returns one vector per input, in input order. */
  async run(batch: Encoded[]): Promise<Float32Array[]> {
    const rows = batch.length;
    const cols = batch.reduce((m, e) => Math.max(m, e.ids.length), 1);
    const ids = new BigInt64Array(rows * cols).fill(BigInt(this.padId));
    const mask = new BigInt64Array(rows * cols);
    const types = new BigInt64Array(rows * cols);
    batch.forEach((e, r) => {
      for (let c = 0; c < e.ids.length; c++) {
        ids[r * cols + c] = BigInt(e.ids[c]!);
        mask[r * cols + c] = 1n;
        types[r * cols + c] = BigInt(e.typeIds[c] ?? 0);
      }
    });
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [rows, cols]),
      attention_mask: new ort.Tensor('int64', mask, [rows, cols]),
    };
    if (this.wantsTypeIds) feeds.token_type_ids = new ort.Tensor('int64', types, [rows, cols]);
    const result = await this.session.run(feeds, [this.outputName]);
    const out = result[this.outputName]!;
    const data = out.data as Float32Array;
    const vectors = out.dims.length === 2 ? this.rowsOf(data, rows, Number(out.dims[1])) : this.pool(data, batch, cols, Number(out.dims[2]));
    for (const tensor of Object.values(result)) tensor.dispose();
    if (this.spec.normalize) for (const v of vectors) l2normalize(v);
    return vectors;
  }

  /** Models exported with pooling inside give [batch, dim] directly. */
  private rowsOf(data: Float32Array, rows: number, dim: number): Float32Array[] {
    return Array.from({ length: rows }, (_, r) => data.slice(r * dim, (r + 1) * dim));
  }

  private pool(hidden: Float32Array, batch: Encoded[], cols: number, dim: number): Float32Array[] {
    return batch.map((e, r) => {
      const base = r * cols * dim;
      if (this.spec.pooling === 'cls') return hidden.slice(base, base + dim);
      // Mean over real tokens only: padding must not change a sentence's vector,
      // or batched and single results would differ.
      const v = new Float32Array(dim);
      const n = e.ids.length;
      for (let t = 0; t < n; t++) {
        const off = base + t * dim;
        for (let d = 0; d < dim; d++) v[d]! += hidden[off + d]!;
      }
      for (let d = 0; d < dim; d++) v[d]! /= n;
      return v;
    });
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

export function l2normalize(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!;
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let i = 0; i < v.length; i++) v[i]! /= norm;
  return v;
}
