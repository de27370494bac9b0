import type { Logger } from 'pino';
import type { JobQueue } from '../ports/job-queue.ts';
import type { KeyValueStore } from '../ports/key-value.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { VectorStore } from '../ports/vector-store.ts';
import type { Repositories } from '../repositories/index.ts';
import type { JobRow } from '../repositories/jobs.ts';
import type { Runtime } from '../runtime/service-kit.ts';

/** Who hears about job changes: the mesh, through moleculer events, in the services. */
export interface JobNotifier {
  /** A job's state changed (SSE streams push it). */
  updated(job: JobRow): void;
  /** A cancel was asked: whoever runs the job should abort its step. */
  cancelRequested(jobId: string): void;
  /** Chunk rows were deleted outside ingest (a document deleted): the search tables' upkeep should look (lib/search/upkeep.ts). */
  chunksDeleted?(): void;
}

export interface JobSettings {
  /** Attempts before a job fails and its message goes to the dead letters. */
  maxAttempts: number;
  /** First retry delay; each further attempt waits 4× longer (capped). */
  backoffMs: number;
  /** A worker's lease on a running job; renewed every third of it while it works. */
  leaseMs: number;
  /**
   * How long a job waits out an outage of a dependency (failures classified `outage`)
   * without spending attempts; past it such failures count like any other.
   */
  outagePatienceMs: number;
}

/**
 * What the job commands work with. Stores open lazily: a command touches only those it
 * needs, so the maintenance service relays the outbox without opening a vector store.
 */
export interface JobsContext {
  repos: Repositories;
  queue(): Promise<JobQueue>;
  objects(): Promise<ObjectStore>;
  vectors(): Promise<VectorStore>;
  kv(): Promise<KeyValueStore>;
  logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  notify: JobNotifier;
  settings: JobSettings;
}

export const SILENT: JobNotifier = { updated: () => undefined, cancelRequested: () => undefined };

/** The context of a service: the runtime's stores and repositories, events through `notify`. */
export async function jobsContext(runtime: Runtime, notify: JobNotifier = SILENT): Promise<JobsContext> {
  const { stores, config } = runtime;
  return {
    repos: await stores.repos(),
    queue: () => stores.queue(),
    objects: () => stores.objects(),
    vectors: () => stores.vectors(),
    kv: () => stores.kv(),
    logger: runtime.logger,
    notify,
    settings: {
      maxAttempts: config.queue.maxAttempts,
      backoffMs: config.queue.backoffMs,
      leaseMs: config.queue.leaseMs,
      outagePatienceMs: config.queue.outagePatienceMs,
    },
  };
}
