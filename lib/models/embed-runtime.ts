import type { Logger } from 'pino';
import { appError } from '../errors.ts';
import { ForegroundGate } from './batcher.ts';
import { openEmbedder, type Embedder, type EmbedderOptions } from './embedder.ts';
import type { ModelLoader } from './loader.ts';
import type { ModelManifest } from './manifest.ts';
import { modelMetrics } from './loader.ts';

export interface LoadedModelInfo {
  alias: string;
  version: string;
  dimension: number;
  engine: string;
  queued: number;
}

type Log = Pick<Logger, 'info' | 'warn' | 'error'>;

/**
 * The embedding models one process serves, by alias. A new version is verified and
 * opened (warmed) while the old one keeps answering; only then is the alias
 * re-pointed, and the old version is closed once its queued inputs are answered.
 * A version that fails verification or loading never replaces anything.
 */
export class EmbeddingModels {
  private readonly active = new Map<string, Embedder>();
  /** Warmed but not yet active, keyed alias@version (a switch warms, then swaps). */
  private readonly warmed = new Map<string, Promise<Embedder>>();
  /** The warmed ones that finished opening, for a lookup without awaiting. */
  private readonly ready = new Map<string, Embedder>();

  private readonly options: EmbedderOptions;

  constructor(
    private readonly loader: ModelLoader,
    options: EmbedderOptions,
    private readonly logger?: Log,
  ) {
    // One gate for every model of the process: a re-index of one version yields to queries on another.
    this.options = { ...options, gate: options.gate ?? new ForegroundGate() };
  }

  get(alias: string): Embedder {
    const embedder = this.active.get(alias);
    if (!embedder) throw appError('MODEL_NOT_LOADED', `no embedding model is loaded for alias "${alias}"`, { alias, loaded: [...this.active.keys()] });
    return embedder;
  }

  list(): LoadedModelInfo[] {
    return [...this.active.values()].map((e) => ({
      alias: e.alias,
      version: e.version,
      dimension: e.dimension,
      engine: e.manifest.embed?.engine ?? 'unknown',
      queued: e.depth,
    }));
  }

  /** Verifies and opens a version without serving it; idempotent per version. */
  warm(manifest: ModelManifest): Promise<Embedder> {
    const current = this.active.get(manifest.alias);
    if (current?.version === manifest.version) return Promise.resolve(current);
    const key = `${manifest.alias}@${manifest.version}`;
    let pending = this.warmed.get(key);
    if (!pending) {
      pending = (async () => {
        const started = performance.now();
        const folder = await this.loader.materialize(manifest);
        const embedder = await openEmbedder(folder, manifest, this.options);
        modelMetrics.model_loads_total++;
        this.logger?.info({ model: key, ms: Math.round(performance.now() - started) }, 'embedding model loaded');
        if (this.warmed.get(key) === pending) this.ready.set(key, embedder);
        return embedder;
      })();
      this.warmed.set(key, pending);
      // A failed warm-up must not be remembered: the next switch attempt tries again.
      pending.catch(() => {
        modelMetrics.model_load_failures_total++;
        if (this.warmed.get(key) === pending) this.warmed.delete(key);
      });
    }
    return pending;
  }

  /**
   * A version other than the active one, opened on demand and kept open beside it:
   * the re-index writes a new version's vectors, and ingest writes every version
   * still live (active, previous, being built), while queries keep the active one.
   */
  pinned(manifest: ModelManifest): Promise<Embedder> {
    return this.warm(manifest);
  }

  /** The open embedder of alias@version if there is one, without loading anything. */
  peek(alias: string, version: string): Embedder | undefined {
    const active = this.active.get(alias);
    if (active?.version === version) return active;
    return this.ready.get(`${alias}@${version}`);
  }

  /** Closes a non-active version (its collection was deleted). */
  async release(alias: string, version: string): Promise<void> {
    const key = `${alias}@${version}`;
    const pending = this.warmed.get(key);
    if (!pending || this.active.get(alias)?.version === version) return;
    this.warmed.delete(key);
    this.ready.delete(key);
    const embedder = await pending.catch(() => null);
    if (embedder) await this.retire(embedder);
  }

  /** Warms `manifest`, then makes it the version served for its alias. */
  async activate(manifest: ModelManifest): Promise<{ alias: string; version: string; previous: string | null }> {
    const embedder = await this.warm(manifest);
    this.warmed.delete(`${manifest.alias}@${manifest.version}`);
    this.ready.delete(`${manifest.alias}@${manifest.version}`);
    const previous = this.active.get(manifest.alias) ?? null;
    if (previous === embedder) return { alias: manifest.alias, version: manifest.version, previous: manifest.version };
    this.active.set(manifest.alias, embedder);
    // The replaced version stays open beside the new one: ingest keeps writing its
    // collection (rollback is instant) until it is deleted.
    if (previous) {
      const key = `${previous.alias}@${previous.version}`;
      this.warmed.set(key, Promise.resolve(previous));
      this.ready.set(key, previous);
    }
    return { alias: manifest.alias, version: manifest.version, previous: previous?.version ?? null };
  }

  /** Closes a replaced version after the inputs already queued on it are answered. */
  private async retire(embedder: Embedder, maxWaitMs = 60_000): Promise<void> {
    const deadline = Date.now() + maxWaitMs;
    while (embedder.depth > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    await embedder.close().catch((err: unknown) => this.logger?.warn({ err, model: `${embedder.alias}@${embedder.version}` }, 'closing replaced model failed'));
  }

  async close(): Promise<void> {
    const all = new Set(this.active.values());
    this.active.clear();
    const warmed = await Promise.allSettled([...this.warmed.values()]);
    this.warmed.clear();
    this.ready.clear();
    for (const w of warmed) if (w.status === 'fulfilled') all.add(w.value);
    await Promise.all([...all].map((e) => e.close().catch(() => undefined)));
  }
}
