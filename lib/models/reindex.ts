import type { Logger } from 'pino';
import type { Knex } from 'knex';
import { isRetryable } from '../errors.ts';
import { stageJob } from '../jobs/commands.ts';
import type { JobsContext } from '../jobs/context.ts';
import { JobCanceled, LeaseLost, type JobHandler } from '../jobs/worker.ts';
import type { TenantScope } from '../ports/tenant-scope.ts';
import { collectionFor, type VectorPoint, type VectorStore } from '../ports/vector-store.ts';
import type { Repositories } from '../repositories/index.ts';
import type { ReindexChunk, ReindexRow } from '../repositories/model-reindex.ts';

type Embedded = { dimension: number; vectors: number[][] };

/** Embeds passages with exactly `alias@version`, at background priority. */
export type EmbedPassages = (alias: string, version: string, texts: string[], signal: AbortSignal) => Promise<{ dimension: number; vectors: number[][] }>;

export interface ReindexDeps {
  repos: Repositories;
  vectors: () => Promise<VectorStore>;
  embed: EmbedPassages;
  batch: number;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Called after every stored batch and at each end (progress events). */
  onProgress?: (row: ReindexRow) => void;
}

/**
 * Starts (or restarts) the re-index of `alias@version` for one tenant in the caller's
 * transaction: its row, and — unless a run of it is already queued or running — a
 * `reindex` job with its message in the outbox (relay it after the commit). A
 * finished, failed or canceled re-index starts over from the beginning.
 */
export async function stageReindex(ctx: JobsContext, scope: TenantScope, target: { alias: string; version: string }, actor: string, trx: Knex): Promise<{ row: ReindexRow; stagedJobId: string | null }> {
  const repo = ctx.repos.modelReindex;
  const row = await repo.start(target.alias, target.version, scope, actor, trx);
  const current = row.jobId ? await ctx.repos.jobs.get(scope, row.jobId, trx) : null;
  if (current && (current.status === 'queued' || current.status === 'running')) return { row, stagedJobId: null };
  const { job } = await stageJob(ctx, scope, { type: 'reindex', payload: { alias: target.alias, version: target.version }, createdBy: actor }, trx);
  await repo.setJob(row, job.id, trx);
  return { row: { ...row, jobId: job.id }, stagedJobId: job.id };
}

/** Tries of one batch's embedding within a run before the job's own retry (backoff, attempts) takes over. */
const EMBED_TRIES = 5;

/**
 * The `reindex` job type's handler: builds a new embedding version's vectors beside
 * the live ones for one tenant. Claiming, lease, heartbeat, retries, dead letters and
 * cancel are the job module's (lib/jobs/worker.ts).
 *
 * Each step reads the next chunks after the row's cursor, embeds them with exactly the
 * target version (background priority: queries and ingest go first), stores them
 * under the chunk ids in the version's own collection, and only then advances the
 * cursor — in a transaction that holds the job's lease, so a run that lost it writes
 * no progress. A run killed between the write and the cursor update redoes that one
 * batch, which overwrites the same point ids: the collection never holds a chunk
 * twice, and `done` counts each chunk once. A first pass walks every chunk; a second
 * one revisits chunks created since the start, whose ingest may have read the list
 * of live versions just before the re-index began.
 */
export function reindexHandler(deps: ReindexDeps): JobHandler<'reindex'> {
  const { repos, batch } = deps;
  const reindex = repos.modelReindex;
  return {
    type: 'reindex',
    async run(run) {
      const { scope, job, payload, signal } = run;
      const owner = job.leaseOwner!;
      const key = { alias: payload.alias, version: payload.version, tenantId: scope.tenantId };
      let row: ReindexRow | null = await reindex.get(key.alias, key.version, key.tenantId);
      // The version was deleted, or the re-index restarted under another job: this run has nothing left to do.
      if (!row || row.jobId !== job.id) throw new JobCanceled();
      if (row.state === 'done') return;
      if (row.state !== 'running') {
        // A retry or replay of this job after it failed or was canceled: go on from the cursor.
        if (!(await reindex.reopen(key, job.id))) throw new JobCanceled();
        row = (await reindex.get(key.alias, key.version, key.tenantId))!;
      }
      const collection = collectionFor(key.alias, key.version);
      const vectors = await deps.vectors();
      let ensured = false;
      let lastReported = 0;
      const report = async (current: ReindexRow, force = false) => {
        const now = Date.now();
        if (!force && now - lastReported < 250) return;
        lastReported = now;
        deps.onProgress?.(current);
        await run.progress(current.passes === 0 ? 'first pass' : 'sweep', current.total === 0 ? 0 : Math.min(1, current.done / current.total));
      };
      /** One write of the row under the job's lease; false when the row is no longer this run's. */
      const guarded = (write: (trx: Parameters<Parameters<Repositories['transaction']>[0]>[0]) => Promise<boolean>) =>
        repos.transaction(async (trx) => {
          const held = await repos.jobs.holdsLease(scope, job.id, owner, trx);
          if (!held) throw new LeaseLost();
          if (held.cancelRequested) throw new JobCanceled();
          if (!(await write(trx))) throw new JobCanceled();
        });

      deps.logger.info({ jobId: job.id, alias: key.alias, version: key.version, tenant: key.tenantId, cursor: row.cursor, done: row.done, pass: row.passes }, 're-index run started');
      /** The chunks after `cursor` (in this pass) with their vectors; no vectors when the pass is over. */
      const load = async (cursor: string | null, since: Date | undefined): Promise<{ chunks: ReindexChunk[]; embedded: Embedded | null }> => {
        const chunks = await reindex.nextChunks(scope, cursor, batch, since);
        return { chunks, embedded: chunks.length === 0 ? null : await embedWithRetries(deps, key.alias, key.version, chunks.map((c) => c.text), signal) };
      };
      let next: Promise<{ chunks: ReindexChunk[]; embedded: Embedded | null }> | null = null;
      for (;;) {
        if (signal.aborted) throw signal.reason;
        const since = row.passes > 0 ? row.startedAt : undefined;
        const loaded: { chunks: ReindexChunk[]; embedded: Embedded | null } = await (next ?? load(row.cursor, since));
        const { chunks, embedded } = loaded;
        next = null;
        if (chunks.length === 0 || !embedded) {
          if (row.passes === 0) {
            const current = row;
            await guarded((trx) => reindex.nextPass(current, job.id, trx));
            row = { ...row, cursor: null, passes: row.passes + 1 };
            continue;
          }
          await repos.transaction(async (trx) => {
            if (!(await reindex.endRun(key, job.id, 'done', null, trx))) throw new JobCanceled();
            await run.markReady(trx, { step: 'done', progress: 1 });
          });
          const finished = (await reindex.get(key.alias, key.version, key.tenantId))!;
          deps.onProgress?.(finished);
          deps.logger.info({ jobId: job.id, alias: key.alias, version: key.version, tenant: key.tenantId, done: finished.done }, 're-index finished');
          return;
        }
        const cursor: string = chunks[chunks.length - 1]!.id;
        // The next batch is read and embedded while this one is written, so emb is never
        // idle waiting for the database; its cursor advances only after this one's.
        next = load(cursor, since);
        next.catch(() => undefined);
        if (!ensured) {
          await vectors.ensureCollection({ name: collection, dimension: embedded.dimension });
          ensured = true;
        }
        const updatedAt = new Date().toISOString();
        const points: VectorPoint[] = chunks.map((c, i) => ({
          id: c.id,
          vector: embedded.vectors[i]!,
          payload: {
            source_id: c.sourceId,
            document_id: c.documentId,
            chunk_id: c.id,
            page: c.page,
            lang: c.lang,
            mime: c.mime,
            version: c.documentVersion,
            updated_at: updatedAt,
            tags: c.tags,
            embed_model_alias: key.alias,
            embed_model_version: key.version,
          },
        }));
        await vectors.upsert(scope, collection, points);
        // The sweep pass only rewrites chunks that may have been missed; they were counted already.
        const added: number = row.passes === 0 ? chunks.length : 0;
        await guarded((trx) => reindex.advance(key, job.id, cursor, added, trx));
        row = { ...row, cursor, done: row.done + added, updatedAt: new Date() };
        await report(row);
      }
    },
    // A run that fails or is canceled ends its row through the job type's `settle` (lib/jobs/types/reindex.ts).
  };
}

async function embedWithRetries(deps: ReindexDeps, alias: string, version: string, texts: string[], signal: AbortSignal): Promise<{ dimension: number; vectors: number[][] }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await deps.embed(alias, version, texts, signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (!isRetryable(err) || attempt >= EMBED_TRIES) throw err;
      deps.logger.warn({ err, alias, version, attempt }, 're-index batch embedding failed; trying again');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(200 * 2 ** attempt, 5000));
        signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
      });
    }
  }
}
