import type { Logger } from 'pino';
import { isRetryable } from '../errors.ts';
import { collectionFor, type VectorPoint, type VectorStore } from '../ports/vector-store.ts';
import { tenantScope } from '../ports/tenant-scope.ts';
import type { ModelReindexRepository, ReindexRow } from '../repositories/model-reindex.ts';

/** Embeds passages with exactly `alias@version`, at background priority. */
export type EmbedPassages = (alias: string, version: string, texts: string[]) => Promise<{ dimension: number; vectors: number[][] }>;

export interface ReindexWorkerDeps {
  repo: ModelReindexRepository;
  vectors: () => Promise<VectorStore>;
  embed: EmbedPassages;
  /** Unique per process: the lease holder's name. */
  owner: string;
  batch: number;
  leaseMs: number;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Called after every stored batch and at the end (progress events, metrics). */
  onProgress?: (row: ReindexRow) => void;
}

const RETRY_LIMIT = 20;

/**
 * Builds a new embedding version's vectors beside the live ones, tenant by tenant.
 * Each step reads the next chunks after the row's cursor, embeds them with exactly the
 * target version (background priority: queries and ingest go first), stores them
 * under the chunk ids in the version's own collection, and only then advances the
 * cursor. A worker killed between the write and the cursor update redoes that one
 * batch, which overwrites the same point ids: the collection never holds a chunk
 * twice, and `done` counts each chunk once. A first pass walks every chunk; a second
 * one revisits chunks created since the start, whose ingest may have read the list of
 * live versions just before the re-index began.
 */
export class ReindexWorker {
  private stopping = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;

  constructor(private readonly deps: ReindexWorkerDeps) {}

  /** Runs until stop(): claims rows as they appear or as their leases run out. */
  start(pollMs = 2000): void {
    if (this.loop) return;
    this.stopping = false;
    this.loop = (async () => {
      while (!this.stopping) {
        let worked = false;
        try {
          worked = await this.runOnce();
        } catch (err) {
          this.deps.logger.error({ err }, 're-index step failed');
        }
        if (!worked && !this.stopping) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, pollMs);
            this.wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          this.wake = null;
        }
      }
    })();
  }

  /** A re-index was started or canceled: look now instead of at the next poll. */
  poke(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    this.loop = null;
  }

  /** Claims one row and works it to the end; `false` when nothing was claimable. */
  async runOnce(): Promise<boolean> {
    const row = await this.deps.repo.claim(this.deps.owner, this.deps.leaseMs);
    if (!row) return false;
    await this.work(row);
    return true;
  }

  private async work(claimed: ReindexRow): Promise<void> {
    const { repo, owner, leaseMs, batch } = this.deps;
    const scope = tenantScope(claimed.tenantId);
    const collection = collectionFor(claimed.alias, claimed.version);
    const vectors = await this.deps.vectors();
    let row = claimed;
    let ensured = false;
    let failures = 0;
    this.deps.logger.info({ alias: row.alias, version: row.version, tenant: row.tenantId, cursor: row.cursor, done: row.done, pass: row.passes }, 're-index claimed');
    while (!this.stopping) {
      const chunks = await repo.nextChunks(scope, row.cursor, batch, row.passes > 0 ? row.startedAt : undefined);
      if (chunks.length === 0) {
        if (row.passes === 0) {
          if (!(await repo.nextPass(row, owner))) return;
        } else {
          await repo.finish(row, owner, 'done');
        }
        const next = await repo.get(row.alias, row.version, row.tenantId);
        if (!next) return;
        row = next;
        this.deps.onProgress?.(row);
        if (row.state !== 'running') {
          this.deps.logger.info({ alias: row.alias, version: row.version, tenant: row.tenantId, done: row.done }, 're-index finished');
          return;
        }
        continue;
      }
      let embedded: { dimension: number; vectors: number[][] };
      try {
        embedded = await this.deps.embed(row.alias, row.version, chunks.map((c) => c.text));
        failures = 0;
      } catch (err) {
        const retryable = isRetryable(err);
        if (retryable && ++failures < RETRY_LIMIT) {
          await new Promise((resolve) => setTimeout(resolve, Math.min(200 * 2 ** failures, 5000)));
          // The lease must outlive the wait, or another worker takes the row over.
          if (!(await repo.advance(row, owner, row.cursor, 0, leaseMs))) return;
          continue;
        }
        this.deps.logger.error({ err, alias: row.alias, version: row.version, tenant: row.tenantId }, 're-index failed');
        await repo.finish(row, owner, 'failed', (err as Error).message);
        this.deps.onProgress?.({ ...row, state: 'failed', error: (err as Error).message });
        return;
      }
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
          embed_model_alias: row.alias,
          embed_model_version: row.version,
        },
      }));
      await vectors.upsert(scope, collection, points);
      const cursor = chunks[chunks.length - 1]!.id;
      // The sweep pass only rewrites chunks that may have been missed; they were counted already.
      const added = row.passes === 0 ? chunks.length : 0;
      if (!(await repo.advance(row, owner, cursor, added, leaseMs))) {
        this.deps.logger.info({ alias: row.alias, version: row.version, tenant: row.tenantId }, 're-index stopped: canceled or taken over');
        return;
      }
      row = { ...row, cursor, done: row.done + added, updatedAt: new Date() };
      this.deps.onProgress?.(row);
    }
  }
}
