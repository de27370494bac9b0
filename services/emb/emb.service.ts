import type { ServiceSchema } from 'moleculer';
import { appError } from '../../lib/errors.ts';
import { EmbeddingModels, type LoadedModelInfo } from '../../lib/models/embed-runtime.ts';
import type { Embedder } from '../../lib/models/embedder.ts';
import { MODELS_DELETED_EVENT, type ModelsDeletedPayload } from '../../lib/models/runtime-access.ts';
import { ensureBundledModels } from '../../lib/models/publish.ts';
import { MODELS_SWITCHED_EVENT, modelLoader, modelsRepository, type ModelsSwitchedPayload } from '../../lib/models/runtime-access.ts';
import type { TextKind } from '../../lib/models/onnx-embedder.ts';
import { readinessAction, type RagmeshContext, type Readiness, type Runtime } from '../../lib/runtime/service-kit.ts';

export interface EmbedParams {
  alias: string;
  texts: string[];
  kind?: TextKind;
  /**
   * When set, the answer comes from exactly this version (an index built with it must
   * not get mixed vectors): the active one, or one still live beside it (previous,
   * being re-indexed), opened on demand. Any other version fails.
   */
  version?: string;
  /**
   * `background` (the re-index) runs only while no query or ingest input waits. Unset,
   * a query runs at the next batch boundary, ahead of passages (`interactive`).
   */
  priority?: 'foreground' | 'background';
}

export interface EmbedResult {
  alias: string;
  version: string;
  dimension: number;
  vectors: number[][];
}

/**
 * Embeddings for every active embedding alias (or those in EMB_MODELS). Models are
 * loaded at start from the flags in Postgres and re-loaded on `models.switched`
 * without a restart; concurrent callers are micro-batched per model and a full queue
 * answers OVERLOADED (503 + Retry-After at the api).
 */
export default function embService(runtime: Runtime): ServiceSchema {
  const { models: cfg } = runtime.config;
  const serves = (alias: string) => cfg.embAliases.length === 0 || cfg.embAliases.includes(alias);
  let models: EmbeddingModels | null = null;
  const failures = new Map<string, string>();
  const storeReadiness = readinessAction('emb', runtime);

  const loaded = (): EmbeddingModels => {
    if (!models) throw appError('EMB_STARTING', 'emb is still starting');
    return models;
  };

  async function activate(alias: string, version: string): Promise<void> {
    const repo = await modelsRepository(runtime);
    const row = await repo.get(alias, version);
    if (!row) throw appError('MODEL_VERSION_NOT_FOUND', `${alias}@${version} is not registered`);
    try {
      await loaded().activate(row.manifest);
      failures.delete(alias);
    } catch (err) {
      // The previous version (if any) keeps serving; readiness shows the failure.
      failures.set(alias, `${version}: ${(err as Error).message}`);
      throw err;
    }
  }

  /** The embedder of one exact version, opened beside the active one if it is still live. */
  async function pinned(alias: string, version: string): Promise<Embedder> {
    const open = loaded().peek(alias, version);
    if (open) return open;
    if (!serves(alias)) throw appError('MODEL_NOT_LOADED', `this emb node does not serve alias "${alias}"`);
    const repo = await modelsRepository(runtime);
    const [row, live] = await Promise.all([repo.get(alias, version), repo.liveEmbedVersions(alias)]);
    if (!row || !live.some((v) => v.version === version)) {
      const serving = loaded().list().find((m) => m.alias === alias)?.version ?? null;
      throw appError('MODEL_VERSION_MISMATCH', `${alias} serves version ${serving}; ${version} is neither active nor being built`, { alias, serving, requested: version });
    }
    return loaded().pinned(row.manifest);
  }

  /** Loads every active embed version this node serves. */
  async function syncWithFlags(): Promise<void> {
    const repo = await modelsRepository(runtime);
    for (const { flag } of await repo.listActive('embed')) {
      if (!serves(flag.alias)) continue;
      await activate(flag.alias, flag.activeVersion).catch((err: unknown) =>
        runtime.logger.error({ err, alias: flag.alias, version: flag.activeVersion }, 'embedding model failed to load'),
      );
    }
  }

  return {
    name: 'emb',
    actions: {
      readiness: {
        visibility: 'public',
        async handler(ctx: RagmeshContext): Promise<Readiness> {
          const base = await storeReadiness.handler(ctx);
          const list = models?.list() ?? [];
          const problems = [...failures.values()];
          const ok = list.length > 0 && problems.length === 0;
          const checks = { ...base.checks, models: { ok, ms: 0, ...(ok ? {} : { error: problems.join('; ') || 'no embedding model loaded' }) } };
          return { ...base, ready: base.ready && ok, checks };
        },
      },

      embed: {
        params: {
          alias: { type: 'string', min: 1, max: 128 },
          texts: { type: 'array', items: 'string', min: 1 },
          kind: { type: 'enum', values: ['query', 'passage'], optional: true },
          version: { type: 'string', optional: true },
          priority: { type: 'enum', values: ['foreground', 'background'], optional: true },
        },
        async handler(ctx: RagmeshContext<EmbedParams>): Promise<EmbedResult> {
          const { alias, texts, kind = 'passage', version } = ctx.params;
          const embedder = version === undefined ? loaded().get(alias) : await pinned(alias, version);
          // A query is someone waiting on a search: it goes ahead of ingest's passages.
          const priority = ctx.params.priority ?? (kind === 'query' ? 'interactive' : 'foreground');
          const vectors = await embedder.embed(texts, kind, priority);
          return { alias, version: embedder.version, dimension: embedder.dimension, vectors: vectors.map((v) => Array.from(v)) };
        },
      },

      models: {
        async handler(): Promise<LoadedModelInfo[]> {
          return models?.list() ?? [];
        },
      },

      /** Verifies and opens a version without serving it: the first half of a switch. */
      warm: {
        params: { alias: 'string', version: 'string' },
        async handler(ctx: RagmeshContext<{ alias: string; version: string }>): Promise<{ alias: string; version: string; dimension: number }> {
          const repo = await modelsRepository(runtime);
          const row = await repo.get(ctx.params.alias, ctx.params.version);
          if (!row) throw appError('MODEL_VERSION_NOT_FOUND', `${ctx.params.alias}@${ctx.params.version} is not registered`);
          const embedder = await loaded().warm(row.manifest);
          return { alias: embedder.alias, version: embedder.version, dimension: embedder.dimension };
        },
      },
    },

    events: {
      [MODELS_DELETED_EVENT]: {
        async handler(ctx: RagmeshContext<ModelsDeletedPayload>): Promise<void> {
          if (ctx.params.kind === 'embed') await models?.release(ctx.params.alias, ctx.params.version);
        },
      },
      [MODELS_SWITCHED_EVENT]: {
        async handler(ctx: RagmeshContext<ModelsSwitchedPayload>): Promise<void> {
          const { alias, kind, version } = ctx.params;
          if (kind !== 'embed' || !serves(alias)) return;
          await activate(alias, version).catch((err: unknown) =>
            runtime.logger.error({ err, alias, version }, 'switch to new embedding model failed; previous version keeps serving'),
          );
        },
      },
    },

    async started() {
      models = new EmbeddingModels(await modelLoader(runtime), { threads: cfg.embThreads, maxBatch: cfg.embMaxBatch, queueLimit: cfg.embQueueLimit, backgroundBatch: cfg.embBackgroundBatch, backgroundLane: { threads: cfg.embBackgroundThreads, nice: cfg.embBackgroundNice, idleMs: 60_000 }, metrics: runtime.metrics }, runtime.logger);
      try {
        const repo = await modelsRepository(runtime);
        const bootstrap = await ensureBundledModels(await runtime.stores.models(), repo);
        if (bootstrap.published.length || bootstrap.activated.length) runtime.logger.info(bootstrap, 'bundled models published');
        await syncWithFlags();
      } catch (err) {
        // Stores may come up later; readiness reports it, a switch event retries.
        runtime.logger.error({ err }, 'emb could not load its models at start');
      }
    },

    async stopped() {
      await models?.close();
      models = null;
    },
  };
}
