import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { BackgroundLane, type BackgroundLaneOptions } from './background-lane.ts';
import { MicroBatcher, type ForegroundGate, type Priority } from './batcher.ts';
import { DEFAULT_NGRAM_CONFIG, HashedNgramEncoder, type HashedNgramConfig } from './hashed-ngrams.ts';
import type { ModelManifest } from './manifest.ts';
import { OnnxSentenceEncoder, type Encoded, type TextKind } from './onnx-embedder.ts';
import { appError, overloaded } from '../errors.ts';
import type { Metrics } from '../metrics/metrics.ts';

export interface EmbedderOptions {
  threads: number;
  maxBatch: number;
  queueLimit: number;
  /** The process's metrics, when it exports them. */
  metrics?: Pick<Metrics, 'embBatchSize' | 'embQueueWait'>;
  /** Largest batch of background (re-index) inputs; defaults to maxBatch. */
  backgroundBatch?: number;
  /** Shared by the models of a process (EmbeddingModels makes one). */
  gate?: ForegroundGate;
  /**
   * Background batches of an ONNX model run on a session of their own on a worker
   * thread (see BackgroundLane); without this they share the foreground session.
   */
  backgroundLane?: BackgroundLaneOptions;
}

/** One loaded, verified version of an embedding model, ready to serve. */
export interface Embedder {
  readonly alias: string;
  readonly version: string;
  readonly dimension: number;
  readonly manifest: ModelManifest;
  embed(texts: string[], kind: TextKind, priority?: Priority): Promise<Float32Array[]>;
  /** Inputs accepted and not yet answered (for draining before close, and metrics). */
  readonly depth: number;
  close(): Promise<void>;
}

/** Opens the model in `folder` (already verified against `manifest`). */
export async function openEmbedder(folder: string, manifest: ModelManifest, options: EmbedderOptions): Promise<Embedder> {
  const spec = manifest.embed;
  if (manifest.kind !== 'embed' || !spec) throw appError('NOT_AN_EMBEDDING_MODEL', `${manifest.alias}@${manifest.version} is not an embedding model`);
  if (spec.engine === 'hashed-ngrams') {
    const config = { ...DEFAULT_NGRAM_CONFIG, ...(JSON.parse(await readFile(path.join(folder, spec.config), 'utf8')) as Partial<HashedNgramConfig>) };
    return new NgramEmbedder(manifest, new HashedNgramEncoder(spec, config), options.queueLimit, options.metrics);
  }
  const encoder = await OnnxSentenceEncoder.open(folder, spec, { threads: options.threads });
  const lane = options.backgroundLane ? new BackgroundLane(folder, spec, options.backgroundLane) : null;
  return new OnnxEmbedder(manifest, encoder, options, lane);
}

class OnnxEmbedder implements Embedder {
  readonly alias: string;
  readonly version: string;
  readonly dimension: number;
  private readonly batcher: MicroBatcher<Encoded, Float32Array>;

  constructor(
    readonly manifest: ModelManifest,
    private readonly encoder: OnnxSentenceEncoder,
    options: EmbedderOptions,
    private readonly lane: BackgroundLane | null = null,
  ) {
    this.alias = manifest.alias;
    this.version = manifest.version;
    this.dimension = encoder.spec.dimension;
    this.batcher = new MicroBatcher((batch) => encoder.run(batch), {
      maxBatch: options.maxBatch,
      queueLimit: options.queueLimit,
      ...(options.backgroundBatch ? { backgroundBatch: options.backgroundBatch } : {}),
      ...(options.gate ? { gate: options.gate } : {}),
      ...(lane ? { runBackground: (batch: Encoded[]) => lane.run(batch) } : {}),
      name: `embedding model ${manifest.alias}`,
      onBatch: options.metrics
        ? (size, waited) => {
            const labels = { model: manifest.alias };
            options.metrics!.embBatchSize.observe(labels, size);
            for (const seconds of waited) options.metrics!.embQueueWait.observe(labels, seconds);
          }
        : undefined,
    });
  }

  get depth(): number {
    return this.batcher.depth;
  }

  async embed(texts: string[], kind: TextKind, priority: Priority = 'foreground'): Promise<Float32Array[]> {
    // Refuse before tokenizing when the queue is already full: cheap rejection is the
    // point of backpressure. (submit() checks again, exactly, after tokenizing.)
    this.batcher.assertCapacity(texts.length);
    return this.batcher.submit(texts.map((t) => this.encoder.encode(t, kind)), priority);
  }

  async close(): Promise<void> {
    await this.lane?.close();
    await this.encoder.close();
  }
}

class NgramEmbedder implements Embedder {
  readonly alias: string;
  readonly version: string;
  readonly dimension: number;
  depth = 0;

  constructor(
    readonly manifest: ModelManifest,
    private readonly encoder: HashedNgramEncoder,
    private readonly queueLimit: number,
    private readonly metrics?: EmbedderOptions['metrics'],
  ) {
    this.alias = manifest.alias;
    this.version = manifest.version;
    this.dimension = encoder.spec.dimension;
  }

  async embed(texts: string[], kind: TextKind, priority: Priority = 'foreground'): Promise<Float32Array[]> {
    // Cheap CPU work with no queue: background callers only yield more often.
    const yieldEvery = priority === 'background' ? 16 : 64;
    if (texts.length > this.queueLimit) throw appError('BATCH_TOO_LARGE', `embedding model ${this.alias}: at most ${this.queueLimit} inputs per call (got ${texts.length})`);
    if (this.depth + texts.length > this.queueLimit) throw overloaded(`embedding model ${this.alias} is overloaded`, 1);
    this.depth += texts.length;
    // No batching here: each call is one model run that did not wait.
    this.metrics?.embBatchSize.observe({ model: this.alias }, texts.length);
    this.metrics?.embQueueWait.observe({ model: this.alias }, 0);
    try {
      const out: Float32Array[] = [];
      for (let i = 0; i < texts.length; i++) {
        out.push(this.encoder.embed(this.encoder.encode(texts[i]!, kind)));
        // Pure CPU work: yield now and then so one big call cannot starve the process.
        if (i % yieldEvery === yieldEvery - 1) await new Promise((resolve) => setImmediate(resolve));
      }
      return out;
    } finally {
      this.depth -= texts.length;
    }
  }

  async close(): Promise<void> {}
}
