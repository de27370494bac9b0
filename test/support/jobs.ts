import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { FsObjectStore } from '../../lib/adapters/objects/fs.ts';
import { MemoryKeyValueStore } from '../../lib/adapters/kv/memory.ts';
import { MemoryJobQueue } from '../../lib/adapters/queue/memory.ts';
import { PgVectorStore } from '../../lib/adapters/vectors/pgvector.ts';
import type { JobNotifier, JobsContext, JobSettings } from '../../lib/jobs/context.ts';
import { stageJob } from '../../lib/jobs/commands.ts';
import type { IngestPayload } from '../../lib/jobs/types/ingest.ts';
import type { JobMessage, JobQueue } from '../../lib/ports/job-queue.ts';
import type { TenantScope } from '../../lib/ports/tenant-scope.ts';
import { Repositories } from '../../lib/repositories/index.ts';
import type { JobRow } from '../../lib/repositories/jobs.ts';
import type { TestDatabase } from './databases.ts';
import { tempDir } from './services.ts';

/** The in-process queue, remembering every publish (with its delay) for asserting on. */
export class RecordingQueue extends MemoryJobQueue {
  readonly published: Array<{ queue: string; message: JobMessage; delayMs: number }> = [];
  override async publish(queue: string, message: JobMessage, options: { delayMs?: number } = {}): Promise<void> {
    this.published.push({ queue, message, delayMs: options.delayMs ?? 0 });
    await super.publish(queue, message, options);
  }
}

/** Notifications a command sent, for asserting on. */
export class RecordingNotifier implements JobNotifier {
  readonly updates: JobRow[] = [];
  readonly cancels: string[] = [];
  updated(job: JobRow): void {
    this.updates.push(job);
  }
  cancelRequested(jobId: string): void {
    this.cancels.push(jobId);
  }
}

export const quietLogger = { info() {}, warn() {}, error() {}, debug() {} } as unknown as Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;

/**
 * A jobs context over a real database (PostgreSQL or PGlite) with the in-process
 * queue, a temporary object store, vectors in the same database and an in-memory KV;
 * `queue` may be swapped (a real RabbitMQ, or one that is down).
 */
export async function testJobsContext(t: TestDatabase, options: { queue?: () => Promise<JobQueue>; settings?: Partial<JobSettings> } = {}) {
  const dir = await tempDir('ragmesh-jobs-');
  const objects = new FsObjectStore(dir.value, 'test');
  await objects.ensureBucket();
  const memoryQueue = new RecordingQueue();
  const kv = new MemoryKeyValueStore();
  const vectors = new PgVectorStore(t.db, 'postgres');
  const notify = new RecordingNotifier();
  const ctx: JobsContext = {
    repos: new Repositories(t.db.knex),
    queue: options.queue ?? (async () => memoryQueue),
    objects: async () => objects,
    vectors: async () => vectors,
    kv: async () => kv,
    logger: quietLogger,
    notify,
    settings: { maxAttempts: 3, backoffMs: 20, leaseMs: 2000, outagePatienceMs: 600_000, ...options.settings },
  };
  return { ctx, notify, objects, kv, vectors, memoryQueue, dispose: () => dir.dispose() };
}

/** A document and its queued ingest job, as an upload makes them. */
export async function seedIngest(ctx: JobsContext, scope: TenantScope, over: Partial<IngestPayload> = {}) {
  const contentHash = over.contentHash ?? randomUUID().replaceAll('-', '');
  return ctx.repos.transaction(async (trx) => {
    const document = (await ctx.repos.documents.insertIfNewContent(scope, { sourceId: `src-${contentHash}`, mime: 'text/plain', sizeBytes: 5, contentHash, objectKey: `tenants/${scope.tenantId}/uploads/${contentHash}` }, trx))!;
    const payload: IngestPayload = {
      documentId: document.id,
      sourceId: document.sourceId,
      version: 1,
      objectKey: document.objectKey!,
      contentHash,
      sizeBytes: 5,
      mime: 'text/plain',
      kind: 'text',
      filename: 'a.txt',
      tags: [],
      ...over,
    };
    const { job } = await stageJob(ctx, scope, { type: 'ingest', payload, createdBy: 'alice' }, trx);
    await ctx.repos.documents.setStatus(scope, document.id, 'queued', trx);
    return { document, job, payload };
  });
}

