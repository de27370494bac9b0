import type { ServiceSchema } from 'moleculer';
import { appError } from '../../lib/errors.ts';
import { EmbeddingModels, type LoadedModelInfo } from '../../lib/models/embed-runtime.ts';
import { ensureBundledModels } from '../../lib/models/publish.ts';
import { MODELS_SWITCHED_EVENT, modelLoader, modelsRepository, type ModelsSwitchedPayload } from '../../lib/models/runtime-access.ts';
import type { TextKind } from '../../lib/models/onnx-embedder.ts';
import { readinessAction, type RagmeshContext, type Readiness, type Runtime } from '../../lib/runtime/service-kit.ts';

export interface EmbedParams {
  alias: string;
  texts: string[];
  kind?: TextKind;
  /** When set, the call fails instead of answering with another version (an index built with it must not get mixed vectors). */
  version?: string;
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
        },
        async handler(ctx: RagmeshContext<EmbedParams>): Promise<EmbedResult> {
          const { alias, texts, kind = 'passage', version } = ctx.params;
          const embedder = loaded().get(alias);
          if (version !== undefined && version !== embedder.version) {
            throw appError('MODEL_VERSION_MISMATCH', `${alias} serves version ${embedder.version}, not ${version}`, { alias, serving: embedder.version, requested: version });
          }
          const vectors = await embedder.embed(texts, kind);
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
      models = new EmbeddingModels(await modelLoader(runtime), { threads: cfg.embThreads, maxBatch: cfg.embMaxBatch, queueLimit: cfg.embQueueLimit, metrics: runtime.metrics }, runtime.logger);
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
