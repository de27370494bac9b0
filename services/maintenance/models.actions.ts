import os from 'node:os';
import type { ServiceBroker, ServiceSchema } from 'moleculer';
import { appError, RagmeshError } from '../../lib/errors.ts';
import { whenUp } from '../../lib/adapters/dependency-health.ts';
import { cancelJob, relaySoon } from '../../lib/jobs/commands.ts';
import { jobsContext, type JobsContext } from '../../lib/jobs/context.ts';
import { JOB_CANCEL_EVENT, JOB_UPDATED_EVENT, jobView } from '../../lib/jobs/model.ts';
import { REINDEX_JOB } from '../../lib/jobs/types/index.ts';
import { JobCanceled, runJobDelivery, WorkerShutdown } from '../../lib/jobs/worker.ts';
import { validateManifest, type ModelManifest } from '../../lib/models/manifest.ts';
import { reindexHandler, stageReindex } from '../../lib/models/reindex.ts';
import type { Consumer } from '../../lib/ports/job-queue.ts';
import {
  MODELS_DELETED_EVENT,
  MODELS_SWITCHED_EVENT,
  modelLoader,
  modelsRepository,
  type ModelsDeletedPayload,
  type ModelsSwitchedPayload,
} from '../../lib/models/runtime-access.ts';
import { collectionFor } from '../../lib/ports/vector-store.ts';
import { tenantScope } from '../../lib/ports/tenant-scope.ts';
import { AuditRepository } from '../../lib/repositories/audit.ts';
import type { ModelReindexRepository, ReindexRow } from '../../lib/repositories/model-reindex.ts';
import type { FlagChange, ModelFlag, ModelVersionRow } from '../../lib/repositories/models.ts';
import { currentRequest } from '../../lib/logging.ts';
import { requireAllowed } from './admin.ts';
import { can } from '../../lib/auth/permissions.ts';
import type { RagmeshContext, Runtime } from '../../lib/runtime/service-kit.ts';
import type { EmbedParams, EmbedResult } from '../emb/emb.service.ts';

const MODELS_REFUSAL = 'only an admin can change model versions';

export interface ModelListEntry {
  alias: string;
  kind: string;
  activeVersion: string | null;
  previousVersion: string | null;
  versions: Array<Pick<ModelVersionRow, 'version' | 'status' | 'createdAt'>>;
}

export interface SwitchResult extends FlagChange {
  kind: string;
  warmedOn: string;
  /** Embedding switches: the coverage the target version had when it was switched to. */
  coverage?: TenantCoverage[];
  forced?: boolean;
}

export interface TenantCoverage {
  tenantId: string;
  chunks: number;
  vectors: number;
  /** vectors / chunks, 1 for a tenant with no chunks; never above 1. */
  coverage: number;
}

export interface ReindexView {
  alias: string;
  version: string;
  tenantId: string;
  state: ReindexRow['state'];
  done: number;
  total: number;
  progress: number;
  pass: 'first' | 'sweep';
  /** The job running (or that last ran) it: GET /api/v1/jobs/:id, cancel and retry work on it too. */
  jobId: string | null;
  error: string | null;
  startedBy: string | null;
  startedAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface StatusResult {
  models: ModelListEntry[];
  reindexes: ReindexView[];
  /** Per live embedding version: how much of each tenant's chunks its collection holds. */
  coverage: Array<{ alias: string; version: string; role: 'active' | 'previous' | 'building'; tenants: TenantCoverage[] }>;
}

export interface CompareResult {
  alias: string;
  tenantId: string;
  versions: [string, string];
  queries: Array<{ query: string; overlapAt10: number; ms: [number, number]; hits: [number, number] }>;
  /** Mean over the queries. */
  overlapAt10: number;
  latencyMs: Array<{ version: string; mean: number; p95: number }>;
}

/** Broadcast on every stored re-index batch and at each end: SSE streams and the CLI follow it. */
export const REINDEX_PROGRESS_EVENT = 'models.reindex.progress';

export function reindexView(row: ReindexRow): ReindexView {
  return {
    alias: row.alias,
    version: row.version,
    tenantId: row.tenantId,
    state: row.state,
    done: row.done,
    total: row.total,
    progress: row.total === 0 ? (row.state === 'done' ? 1 : 0) : Math.min(1, row.done / row.total),
    pass: row.passes === 0 ? 'first' : 'sweep',
    jobId: row.jobId,
    error: row.error,
    startedBy: row.startedBy,
    startedAt: row.startedAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}

interface Actor {
  id: string;
  /** tenant_admin reads only its own tenant's re-index and coverage. */
  tenantId: string | null;
}

/**
 * Model actions of the maintenance service, the one place model versions change:
 * list, status, register (publish), reindex/cancel, coverage, compare, switch,
 * rollback, delete. The CLI (`npm run models`) and the admin routes under
 * /api/v1/admin/models both land here, so the embedded default and the mesh behave
 * the same. Every change is audited with who, from, to and the request id.
 *
 * A switch first warms the target where it will serve (emb.warm; llm.warm on every
 * llm node, any of which can veto; ingest.ocrWarm) and, for an embedding alias,
 * refuses a version whose collection does not hold a vector for every chunk of every
 * tenant (the re-index builds it beside the live one); only then does it flip the
 * flag in one transaction with its audit row and broadcast `models.switched`.
 */
export interface ModelActions {
  actions: NonNullable<ServiceSchema['actions']>;
  events: NonNullable<ServiceSchema['events']>;
  /** Starts this process's consumer of re-index jobs. */
  started(broker: ServiceBroker): Promise<void>;
  stopped(): Promise<void>;
}

export function modelActions(runtime: Runtime): ModelActions {
  let consumer: Consumer | null = null;
  let jobsCtx: JobsContext | null = null;
  const running = new Map<string, AbortController>();
  const stopping = new AbortController();

  async function audit(ctx: RagmeshContext, actor: string, action: string, target: string, details: Record<string, unknown>, trx?: Parameters<AuditRepository['record']>[2]): Promise<void> {
    const db = await runtime.stores.db();
    await new AuditRepository(db.knex).record(null, { actor, action, target, details, requestId: currentRequest()?.requestId ?? ctx.requestID ?? null }, trx);
  }

  async function reindexRepo(): Promise<ModelReindexRepository> {
    return (await runtime.stores.repos()).modelReindex;
  }

  /** The job commands' context, with job changes (and a re-index's end) told to the mesh. */
  async function jobs(broker: ServiceBroker): Promise<JobsContext> {
    jobsCtx ??= await jobsContext(runtime, {
      updated: (job) => {
        void Promise.resolve(broker.broadcast(JOB_UPDATED_EVENT, jobView(job))).catch(() => undefined);
        // A run that failed or was canceled ended its row with it: the progress streams hear of it.
        if (job.type === REINDEX_JOB.type && (job.status === 'failed' || job.status === 'canceled')) {
          void reindexRepo()
            .then((repo) => repo.list({ tenantId: job.tenantId }))
            .then((rows) => rows.filter((r) => r.jobId === job.id).map((r) => broker.broadcast(REINDEX_PROGRESS_EVENT, reindexView(r))))
            .catch(() => undefined);
        }
      },
      cancelRequested: (jobId) => void Promise.resolve(broker.broadcast(JOB_CANCEL_EVENT, { jobId })).catch(() => undefined),
    });
    return jobsCtx;
  }

  async function coverageOf(alias: string, version: string, onlyTenant?: string): Promise<TenantCoverage[]> {
    const repo = await reindexRepo();
    const vectors = await runtime.stores.vectors();
    const collection = collectionFor(alias, version);
    const tenants = onlyTenant ? [onlyTenant] : await repo.tenantsWithChunks();
    const out: TenantCoverage[] = [];
    for (const tenantId of tenants) {
      const scope = tenantScope(tenantId);
      const chunks = await repo.countChunks(scope);
      const stored = chunks === 0 ? 0 : await vectors.count(scope, collection).catch(() => 0);
      out.push({ tenantId, chunks, vectors: stored, coverage: chunks === 0 ? 1 : Math.min(1, stored / chunks) });
    }
    return out;
  }

  async function list(): Promise<ModelListEntry[]> {
    const repo = await modelsRepository(runtime);
    const versions = await repo.listVersions();
    const flags = new Map<string, ModelFlag>();
    for (const alias of new Set(versions.map((v) => v.alias))) {
      const flag = await repo.getFlag(alias);
      if (flag) flags.set(alias, flag);
    }
    const byAlias = new Map<string, ModelListEntry>();
    for (const v of versions) {
      const entry = byAlias.get(v.alias) ?? {
        alias: v.alias,
        kind: v.kind,
        activeVersion: flags.get(v.alias)?.activeVersion ?? null,
        previousVersion: flags.get(v.alias)?.previousVersion ?? null,
        versions: [],
      };
      entry.versions.push({ version: v.version, status: v.status, createdAt: v.createdAt });
      byAlias.set(v.alias, entry);
    }
    return [...byAlias.values()];
  }

  async function requireVersion(alias: string, version: string): Promise<ModelVersionRow> {
    const row = await (await modelsRepository(runtime)).get(alias, version);
    if (!row) throw appError('MODEL_VERSION_NOT_FOUND', `${alias}@${version} is not registered; publish it first (npm run models -- publish <folder>)`);
    return row;
  }

  /** Every node serving `service`, each of which must accept the version. */
  async function warmEverywhere(ctx: RagmeshContext, service: string, alias: string, version: string): Promise<string[]> {
    const nodes = new Set<string>();
    for (const s of ctx.broker.registry.getServiceList({ onlyAvailable: true, skipInternal: true }) as Array<{ name: string; nodeID: string }>) {
      if (s.name === service) nodes.add(s.nodeID);
    }
    if (nodes.size === 0) throw appError('MODEL_NO_NODE', `No ${service} node is running to load ${alias}@${version}`, { service });
    const results = await Promise.allSettled([...nodes].map((nodeID) => ctx.call(`${service}.warm`, { alias, version }, { nodeID, timeout: 600_000 })));
    const vetoes = results.flatMap((r, i) => (r.status === 'rejected' ? [`${[...nodes][i]}: ${(r.reason as Error).message}`] : []));
    if (vetoes.length > 0) {
      throw appError('MODEL_SWITCH_VETOED', `${alias}@${version} was not switched: ${vetoes.length} of ${nodes.size} ${service} node(s) could not load it — ${vetoes.join('; ')}`, { vetoes });
    }
    return [...nodes];
  }

  async function switchTo(ctx: RagmeshContext, alias: string, version: string, action: 'models.switch' | 'models.rollback', force: boolean): Promise<SwitchResult> {
    const actor = requireAllowed(ctx, 'models.manage', MODELS_REFUSAL);
    const repo = await modelsRepository(runtime);
    const row = await requireVersion(alias, version);
    if (row.kind === 'rerank') throw refuseRerank(alias, version);

    let coverage: TenantCoverage[] | undefined;
    let incomplete: TenantCoverage[] = [];
    const current = await repo.getFlag(alias);
    if (action === 'models.switch' && row.kind === 'embed' && current?.activeVersion !== version) {
      coverage = await coverageOf(alias, version);
      incomplete = coverage.filter((c) => c.coverage < 1);
      if (incomplete.length > 0 && !force) {
        throw appError(
          'MODEL_COVERAGE_INCOMPLETE',
          `${alias}@${version} holds vectors for only part of the chunks — ${incomplete.map((c) => `${c.tenantId}: ${(c.coverage * 100).toFixed(1)} % (${c.vectors}/${c.chunks})`).join(', ')}; run \`npm run models -- reindex ${alias} ${version}\` and wait for it, or pass --force`,
          { coverage },
        );
      }
    }

    // Warm-up where the model will serve, so a broken or tampered version fails here.
    let warmedOn: string;
    if (row.kind === 'embed') {
      await ctx.call('emb.warm', { alias, version });
      warmedOn = 'emb';
    } else if (row.kind === 'ocr') {
      await ctx.call('ingest.ocrWarm', { alias, version });
      warmedOn = 'ingest';
    } else {
      const nodes = await warmEverywhere(ctx, 'llm', alias, version);
      warmedOn = `llm (${nodes.length} node${nodes.length === 1 ? '' : 's'})`;
    }

    const forced = force && incomplete.length > 0;
    const db = await runtime.stores.db();
    const change = await db.knex.transaction(async (trx) => {
      const flip = await repo.switchTo(alias, version, actor, trx);
      await audit(ctx, actor, forced ? 'models.switch.forced' : action, `${alias}@${version}`, { from: flip.from, to: flip.to, kind: row.kind, ...(coverage ? { coverage } : {}) }, trx);
      return flip;
    });
    if (change.from !== change.to) {
      // Qdrant: the alias named after the model alias points at the version's collection, in one call.
      if (row.kind === 'embed') {
        const vectors = await runtime.stores.vectors();
        await vectors.activate?.(alias, collectionFor(alias, version)).catch((err: unknown) => runtime.logger.warn({ err, alias, version }, 'vector store alias not updated'));
      }
      const payload: ModelsSwitchedPayload = { alias, kind: row.kind, version, previous: change.from };
      await ctx.broadcast(MODELS_SWITCHED_EVENT, payload);
    }
    return { ...change, kind: row.kind, warmedOn, ...(coverage ? { coverage } : {}), ...(forced ? { forced } : {}) };
  }

  async function status(ctx: RagmeshContext, alias?: string): Promise<StatusResult> {
    const reader = requireReader(ctx);
    const models = (await list()).filter((m) => !alias || m.alias === alias);
    const repo = await modelsRepository(runtime);
    const rows = await (await reindexRepo()).list({ ...(alias ? { alias } : {}), ...(reader.tenantId ? { tenantId: reader.tenantId } : {}) });
    const coverage: StatusResult['coverage'] = [];
    for (const live of await repo.liveEmbedVersions(alias)) {
      const entry = models.find((m) => m.alias === live.alias);
      const role = entry?.activeVersion === live.version ? 'active' : entry?.previousVersion === live.version ? 'previous' : 'building';
      coverage.push({ ...live, role, tenants: await coverageOf(live.alias, live.version, reader.tenantId ?? undefined) });
    }
    return { models, reindexes: rows.map(reindexView), coverage };
  }

  const actions: NonNullable<ServiceSchema['actions']> = {
    'models.list': {
      async handler(ctx: RagmeshContext): Promise<ModelListEntry[]> {
        requireReader(ctx);
        return list();
      },
    },

    'models.status': {
      params: { alias: { type: 'string', optional: true } },
      handler(ctx: RagmeshContext<{ alias?: string }>): Promise<StatusResult> {
        return status(ctx, ctx.params.alias);
      },
    },

    /**
     * Registers a version whose files are already in the models bucket (the CLI
     * uploads them first): the bucket copy is fetched and verified file by file
     * against the manifest before the version exists for anyone.
     */
    'models.register': {
      params: { manifest: { type: 'object' } },
      async handler(ctx: RagmeshContext<{ manifest: ModelManifest }>): Promise<{ alias: string; version: string; kind: string; created: boolean }> {
        const actor = requireAllowed(ctx, 'models.manage', MODELS_REFUSAL);
        const manifest = validateManifest(ctx.params.manifest);
        if (manifest.kind === 'rerank') throw refuseRerank(manifest.alias, manifest.version);
        await (await modelLoader(runtime)).materialize(manifest);
        const repo = await modelsRepository(runtime);
        const existed = await repo.get(manifest.alias, manifest.version);
        await repo.register(manifest);
        if (!existed) await audit(ctx, actor, 'models.publish', `${manifest.alias}@${manifest.version}`, { kind: manifest.kind, files: manifest.files.length });
        return { alias: manifest.alias, version: manifest.version, kind: manifest.kind, created: !existed };
      },
    },

    'models.reindex': {
      params: { alias: { type: 'string', min: 1 }, version: { type: 'string', min: 1 }, tenantId: { type: 'string', optional: true } },
      async handler(ctx: RagmeshContext<{ alias: string; version: string; tenantId?: string }>): Promise<{ started: ReindexView[] }> {
        const actor = requireAllowed(ctx, 'models.manage', MODELS_REFUSAL);
        const { alias, version, tenantId } = ctx.params;
        const row = await requireVersion(alias, version);
        if (row.kind !== 'embed') throw appError('NOT_AN_EMBEDDING_MODEL', `${alias}@${version} is a ${row.kind} model; only embedding versions are re-indexed`);
        // Opened on emb first: a version that cannot load fails here, not in the worker.
        await ctx.call('emb.warm', { alias, version });
        const repo = await reindexRepo();
        const tenants = tenantId ? [tenantScope(tenantId).tenantId] : await repo.tenantsWithChunks();
        const ctxJobs = await jobs(ctx.broker);
        const active = (await ctxJobs.repos.models.getFlag(alias))?.activeVersion ?? null;
        const staged: string[] = [];
        const started = await ctxJobs.repos.transaction(async (trx) => {
          const rows: ReindexRow[] = [];
          for (const t of tenants) {
            // One open run per tenant: a re-index already running keeps its job; a new (or restarted) one gets its own.
            const { row, stagedJobId } = await stageReindex(ctxJobs, tenantScope(t), { alias, version }, actor, trx);
            if (stagedJobId) staged.push(stagedJobId);
            rows.push(row);
          }
          await audit(ctx, actor, 'models.reindex.start', `${alias}@${version}`, { from: active, to: version, tenants, jobs: rows.map((r) => r.jobId) }, trx);
          return rows;
        });
        if (staged.length > 0) relaySoon(ctxJobs, staged);
        for (const r of started) await ctx.broadcast(REINDEX_PROGRESS_EVENT, reindexView(r));
        return { started: started.map(reindexView) };
      },
    },

    'models.reindexCancel': {
      params: { alias: { type: 'string', min: 1 }, version: { type: 'string', min: 1 }, tenantId: { type: 'string', optional: true } },
      async handler(ctx: RagmeshContext<{ alias: string; version: string; tenantId?: string }>): Promise<{ canceled: number }> {
        const actor = requireAllowed(ctx, 'models.manage', MODELS_REFUSAL);
        const { alias, version, tenantId } = ctx.params;
        await requireVersion(alias, version);
        const ctxJobs = await jobs(ctx.broker);
        const rows = await ctxJobs.repos.transaction(async (trx) => {
          const changed = await (await reindexRepo()).cancel(alias, version, tenantId, trx);
          await audit(ctx, actor, 'models.reindex.cancel', `${alias}@${version}`, { tenantId: tenantId ?? null, canceled: changed.length, jobs: changed.map((r) => r.jobId) }, trx);
          return changed;
        });
        // The rows are canceled now (ingest stops writing to the version); their jobs stop through the job module.
        const requestId = currentRequest()?.requestId ?? ctx.requestID ?? null;
        for (const r of rows) {
          if (!r.jobId) continue;
          await cancelJob(ctxJobs, tenantScope(r.tenantId), r.jobId, { userId: actor, requestId }).catch((err: unknown) => {
            if ((err as RagmeshError)?.type !== 'JOB_FINISHED' && (err as RagmeshError)?.type !== 'JOB_NOT_FOUND') throw err;
          });
        }
        for (const r of await (await reindexRepo()).list({ alias, version, ...(tenantId ? { tenantId } : {}) })) await ctx.broadcast(REINDEX_PROGRESS_EVENT, reindexView(r));
        const canceled = rows.length;
        return { canceled };
      },
    },

    'models.coverage': {
      params: { alias: { type: 'string', min: 1 }, version: { type: 'string', min: 1 } },
      async handler(ctx: RagmeshContext<{ alias: string; version: string }>): Promise<{ alias: string; version: string; tenants: TenantCoverage[] }> {
        const reader = requireReader(ctx);
        await requireVersion(ctx.params.alias, ctx.params.version);
        return { alias: ctx.params.alias, version: ctx.params.version, tenants: await coverageOf(ctx.params.alias, ctx.params.version, reader.tenantId ?? undefined) };
      },
    },

    /**
     * The same queries against two versions of an alias in one tenant: overlap of
     * their top 10 and the latency (query embedding + vector search) of each. With no
     * queries given, the tenant's most recent chat questions are used.
     */
    'models.compare': {
      params: {
        alias: { type: 'string', min: 1 },
        v1: { type: 'string', min: 1 },
        v2: { type: 'string', min: 1 },
        tenantId: { type: 'string', min: 1 },
        queries: { type: 'array', items: { type: 'string', min: 1, max: 2000 }, optional: true, max: 200 },
        sample: { type: 'number', integer: true, min: 1, max: 200, optional: true },
      },
      async handler(ctx: RagmeshContext<{ alias: string; v1: string; v2: string; tenantId: string; queries?: string[]; sample?: number }>): Promise<CompareResult> {
        requireAllowed(ctx, 'models.manage', MODELS_REFUSAL);
        const { alias, v1, v2 } = ctx.params;
        const scope = tenantScope(ctx.params.tenantId);
        for (const v of [v1, v2]) {
          const row = await requireVersion(alias, v);
          if (row.kind !== 'embed') throw appError('NOT_AN_EMBEDDING_MODEL', `${alias}@${v} is not an embedding model`);
        }
        let queries = ctx.params.queries ?? [];
        if (queries.length === 0) {
          const { knex } = await runtime.stores.db();
          const recent = await knex('messages').where({ tenant_id: scope.tenantId, role: 'user' }).orderBy('created_at', 'desc').limit(ctx.params.sample ?? 20).select('content');
          queries = [...new Set(recent.map((r: { content: string }) => r.content.trim()).filter(Boolean))] as string[];
        }
        if (queries.length === 0) throw appError('NO_SAMPLE_QUERIES', `tenant ${scope.tenantId} has no recent questions; pass queries (--query "...")`);
        const vectors = await runtime.stores.vectors();
        const one = async (version: string, query: string) => {
          const started = performance.now();
          const res = (await ctx.call('emb.embed', { alias, version, texts: [query], kind: 'query' } satisfies EmbedParams)) as EmbedResult;
          const hits = await vectors.search(scope, collectionFor(alias, version), res.vectors[0]!, { limit: 10 });
          return { ids: hits.map((h) => h.payload.chunk_id), ms: performance.now() - started };
        };
        const rows: CompareResult['queries'] = [];
        for (const query of queries) {
          const a = await one(v1, query);
          const b = await one(v2, query);
          const common = a.ids.filter((id) => b.ids.includes(id)).length;
          const denominator = Math.max(1, Math.min(10, Math.max(a.ids.length, b.ids.length)));
          rows.push({ query, overlapAt10: common / denominator, ms: [round(a.ms), round(b.ms)], hits: [a.ids.length, b.ids.length] });
        }
        const latency = (i: 0 | 1, version: string) => {
          const ms = rows.map((r) => r.ms[i]).sort((x, y) => x - y);
          return { version, mean: round(ms.reduce((s, x) => s + x, 0) / ms.length), p95: ms[Math.min(ms.length - 1, Math.ceil(ms.length * 0.95) - 1)]! };
        };
        return {
          alias,
          tenantId: scope.tenantId,
          versions: [v1, v2],
          queries: rows,
          overlapAt10: round(rows.reduce((s, r) => s + r.overlapAt10, 0) / rows.length, 3),
          latencyMs: [latency(0, v1), latency(1, v2)],
        };
      },
    },

    'models.switch': {
      params: { alias: { type: 'string', min: 1 }, version: { type: 'string', min: 1 }, force: { type: 'boolean', optional: true } },
      handler(ctx: RagmeshContext<{ alias: string; version: string; force?: boolean }>): Promise<SwitchResult> {
        return switchTo(ctx, ctx.params.alias, ctx.params.version, 'models.switch', ctx.params.force === true);
      },
    },

    /** Back to the previous version, whose collection ingest kept current: nothing to rebuild. */
    'models.rollback': {
      params: { alias: { type: 'string', min: 1 } },
      async handler(ctx: RagmeshContext<{ alias: string }>): Promise<SwitchResult> {
        requireAllowed(ctx, 'models.manage', MODELS_REFUSAL);
        const target = await (await modelsRepository(runtime)).rollbackTarget(ctx.params.alias);
        return switchTo(ctx, ctx.params.alias, target, 'models.rollback', false);
      },
    },

    /**
     * Removes a version: its re-index rows, its registry row and (embedding models)
     * its collection. The active version is refused; deleting the previous one ends
     * the possibility to roll back to it.
     */
    'models.delete': {
      params: { alias: { type: 'string', min: 1 }, version: { type: 'string', min: 1 } },
      async handler(ctx: RagmeshContext<{ alias: string; version: string }>): Promise<{ alias: string; version: string; kind: string; droppedCollection: string | null }> {
        const actor = requireAllowed(ctx, 'models.manage', MODELS_REFUSAL);
        const { alias, version } = ctx.params;
        const repo = await modelsRepository(runtime);
        const db = await runtime.stores.db();
        const removed = await db.knex.transaction(async (trx) => {
          const row = await repo.remove(alias, version, trx);
          const flag = await trx('model_flags').where({ alias }).first();
          await audit(ctx, actor, 'models.delete', `${alias}@${version}`, { from: version, to: null, active: flag?.active_version ?? null, kind: row.kind }, trx);
          return row;
        });
        let dropped: string | null = null;
        if (removed.kind === 'embed') {
          dropped = collectionFor(alias, version);
          await (await runtime.stores.vectors()).dropCollection(dropped);
        }
        const payload: ModelsDeletedPayload = { alias, kind: removed.kind, version };
        await ctx.broadcast(MODELS_DELETED_EVENT, payload);
        return { alias, version, kind: removed.kind, droppedCollection: dropped };
      },
    },
  };

  const events: NonNullable<ServiceSchema['events']> = {
    /** A cancel asked through the api (or the models cancel) reaches the run, on whichever node it is. */
    [JOB_CANCEL_EVENT]: {
      handler(ctx: RagmeshContext<{ jobId: string }>) {
        running.get(ctx.params.jobId)?.abort(new JobCanceled());
      },
    },
  };

  return {
    actions,
    events,
    async started(broker) {
      const { models } = runtime.config;
      const ctxJobs = await jobs(broker);
      const [db, queue] = await Promise.all([runtime.stores.db(), runtime.stores.queue()]);
      const handler = reindexHandler({
        repos: ctxJobs.repos,
        vectors: () => runtime.stores.vectors(),
        batch: models.reindexBatch,
        logger: runtime.logger,
        embed: async (alias, version, texts) =>
          (await broker.call('emb.embed', { alias, version, texts, kind: 'passage', priority: 'background' } satisfies EmbedParams, { timeout: 600_000 })) as EmbedResult,
        onProgress: (row) => void Promise.resolve(broker.broadcast(REINDEX_PROGRESS_EVENT, reindexView(row))).catch(() => undefined),
      });
      const workerId = `${broker.nodeID ?? 'node'}:${process.pid}:${os.hostname()}:reindex`;
      // One re-index run at a time per process: it is background work, queries and ingest go first.
      consumer = await queue.consume(
        REINDEX_JOB.queue,
        (delivery) => whenUp([db.health], () => runJobDelivery(ctxJobs, handler, delivery, { workerId, running }), stopping.signal),
        { prefetch: 1 },
      );
    },
    async stopped() {
      stopping.abort(new WorkerShutdown());
      for (const controller of running.values()) controller.abort(new WorkerShutdown());
      await consumer?.close();
      consumer = null;
    },
  };
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function refuseRerank(alias: string, version: string): RagmeshError {
  return appError(
    'RERANK_NOT_SUPPORTED',
    `${alias}@${version} is a rerank model: ragmesh has no cross-encoder stage yet, so a rerank model cannot be published or switched to (it would be stored but never used)`,
  );
}

/** Admins read everything; a tenant_admin reads the models and its own tenant's re-index. */
function requireReader(ctx: RagmeshContext): Actor {
  const auth = ctx.meta.auth;
  if (!auth) return { id: 'system', tenantId: null };
  if (can(auth, 'deployment.read')) return { id: auth.userId, tenantId: null };
  if (can(auth, 'models.read')) return { id: auth.userId, tenantId: auth.tenantId };
  throw appError('ADMIN_ONLY', 'only an admin or a tenant admin can read model state');
}
