import path from 'node:path';
import type { Config } from '../config/env.ts';
import { migrateLatest, openDatabase, type Database } from '../adapters/db/database.ts';
import type { KeyValueStore } from '../ports/key-value.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { VectorStore } from '../ports/vector-store.ts';
import type { JobQueue } from '../ports/job-queue.ts';
import { Repositories } from '../repositories/index.ts';
import type { Logger } from 'pino';
import { degradations, type DependencyHealth } from '../adapters/dependency-health.ts';

export type StoreName = 'db' | 'kv' | 'objects' | 'models' | 'vectors' | 'queue' | 'backups';

/**
 * The adapters of one process, each opened on first use and then shared by every
 * service in the process. Which adapter serves a port is decided by the *_DRIVER
 * variables alone. A process that runs only `llm` never opens a database.
 */
export class Stores {
  private readonly opened = new Map<StoreName, Promise<unknown>>();
  private repositories: Promise<Repositories> | null = null;

  private readonly stopLoggingDegradations: () => void;

  constructor(
    readonly config: Config,
    private readonly logger: Logger,
  ) {
    this.stopLoggingDegradations = logDegradations(logger);
  }

  db(): Promise<Database> {
    return this.once('db', async () => {
      const db = await openDatabase(this.config);
      logHealth(db.health, this.logger);
      if (this.config.db.migrateOnStart) {
        const applied = await migrateLatest(db);
        if (applied.length > 0) this.logger.info({ applied }, 'database migrations applied');
      }
      return db;
    });
  }

  /** The repositories over `db()`, made once for the process and shared. */
  repos(): Promise<Repositories> {
    this.repositories ??= this.db().then((db) => new Repositories(db.knex));
    // A failed open must not stick: the next call tries again.
    this.repositories.catch(() => (this.repositories = null));
    return this.repositories;
  }

  kv(): Promise<KeyValueStore> {
    return this.once('kv', async () => {
      if (this.config.kv.driver === 'redis') {
        const { RedisKeyValueStore } = await import('../adapters/kv/redis.ts');
        const kv = await RedisKeyValueStore.connect(this.config.kv.url!, this.config.kv.prefix);
        logHealth(kv.health, this.logger);
        return kv;
      }
      const { MemoryKeyValueStore } = await import('../adapters/kv/memory.ts');
      return new MemoryKeyValueStore();
    });
  }

  /** Uploads and artifacts. */
  objects(): Promise<ObjectStore> {
    return this.once('objects', () => this.openBucket(this.config.objects.bucket));
  }

  /** Model files and their manifest.json. */
  models(): Promise<ObjectStore> {
    return this.once('models', () => this.openBucket(this.config.objects.modelsBucket));
  }

  /** Where backups are written: a folder (BACKUP_DIR) or a bucket (BACKUP_BUCKET). */
  backups(): Promise<ObjectStore> {
    return this.once('backups', async () => {
      const { driver, dir, bucket } = this.config.backup;
      if (driver === 's3') return this.openBucket(bucket);
      const { FsObjectStore } = await import('../adapters/objects/fs.ts');
      const store = new FsObjectStore(path.dirname(dir), path.basename(dir));
      await store.ensureBucket();
      return store;
    });
  }

  vectors(): Promise<VectorStore> {
    return this.once('vectors', async () => {
      if (this.config.vectors.driver === 'qdrant') {
        const { QdrantVectorStore } = await import('../adapters/vectors/qdrant.ts');
        return new QdrantVectorStore(this.config.vectors.qdrantUrl!, this.config.vectors.qdrantApiKey);
      }
      if (this.config.vectors.driver === 'usearch') {
        const { UsearchVectorStore } = await import('../adapters/vectors/usearch.ts');
        return new UsearchVectorStore(await this.db());
      }
      const { PgVectorStore } = await import('../adapters/vectors/pgvector.ts');
      return new PgVectorStore(await this.db(), this.config.vectors.driver);
    });
  }

  /** Durable job queues: RabbitMQ in the mesh, in-process in the embedded profile. */
  queue(): Promise<JobQueue> {
    return this.once('queue', async () => {
      if (this.config.queue.driver === 'amqp') {
        const { AmqpJobQueue } = await import('../adapters/queue/amqp.ts');
        return AmqpJobQueue.connect(this.config.queue.url!, {
          prefix: this.config.queue.prefix,
          heartbeatS: this.config.queue.heartbeatS,
          // A worker that dies on a message this often means the message kills it.
          deliveryLimit: this.config.queue.maxAttempts * 2,
          logger: this.logger,
        });
      }
      const { MemoryJobQueue } = await import('../adapters/queue/memory.ts');
      return new MemoryJobQueue();
    });
  }

  /** Pings each named store; opening one that was never used counts as checking it. */
  async check(names: StoreName[]): Promise<Record<string, { ok: boolean; ms: number; error?: string }>> {
    const entries = await Promise.all(
      names.map(async (name) => {
        const started = performance.now();
        try {
          // A failed open is forgotten by once(), so the next check opens it again; an
          // open store whose ping fails is kept: its client reconnects by itself, and
          // re-opening would leak its pool (and re-run migrations) on every outage.
          const store = (await this[name]()) as { ping(): Promise<void> };
          await withTimeout(store.ping(), 3000, `${name} ping`);
          return [name, { ok: true, ms: round(performance.now() - started) }] as const;
        } catch (err) {
          return [name, { ok: false, ms: round(performance.now() - started), error: (err as Error).message }] as const;
        }
      }),
    );
    return Object.fromEntries(entries);
  }

  async close(): Promise<void> {
    this.stopLoggingDegradations();
    this.repositories = null;
    // The vector store may sit on the database, so it closes first.
    const order: StoreName[] = ['queue', 'vectors', 'objects', 'models', 'backups', 'kv', 'db'];
    for (const name of order) {
      const pending = this.opened.get(name);
      if (!pending) continue;
      this.opened.delete(name);
      try {
        await ((await pending) as { close(): Promise<void> }).close();
      } catch (err) {
        this.logger.warn({ err, store: name }, 'closing store failed');
      }
    }
  }

  private once<T>(name: StoreName, open: () => Promise<T>): Promise<T> {
    let pending = this.opened.get(name) as Promise<T> | undefined;
    if (!pending) {
      pending = open();
      this.opened.set(name, pending);
      pending.catch(() => this.opened.get(name) === pending && this.opened.delete(name));
    }
    return pending;
  }

  private async openBucket(bucket: string): Promise<ObjectStore> {
    let store: ObjectStore;
    if (this.config.objects.driver === 's3') {
      const { S3ObjectStore } = await import('../adapters/objects/s3.ts');
      store = new S3ObjectStore(this.config.objects.s3!, bucket);
    } else {
      const { FsObjectStore } = await import('../adapters/objects/fs.ts');
      store = new FsObjectStore(path.join(this.config.dataDir, 'objects'), bucket);
    }
    await store.ensureBucket();
    if ('health' in store) logHealth((store as { health: DependencyHealth }).health, this.logger);
    return store;
  }
}

/** One line when a dependency goes down and one when it is back, with how long it was gone. */
function logHealth(health: DependencyHealth, logger: Logger): void {
  health.on('down', (err) => logger.warn({ dependency: health.name, err: err.message }, 'dependency unreachable'));
  health.on('up', (downMs) => logger.info({ dependency: health.name, downMs }, 'dependency reachable again'));
}

/** Degraded operations (e.g. a cache read without Redis) logged at most once per use every 10 s, with the count. */
function logDegradations(logger: Logger): () => void {
  const last = new Map<string, { at: number; logged: number }>();
  const listener = (event: { dependency: string; use: string; error: string }) => {
    const key = `${event.dependency}:${event.use}`;
    const total = degradations.snapshot()[key] ?? 0;
    const seen = last.get(key);
    if (seen && Date.now() - seen.at < 10_000) return;
    logger.warn({ dependency: event.dependency, use: event.use, total, since: total - (seen?.logged ?? 0), err: event.error }, 'running degraded: dependency unavailable');
    last.set(key, { at: Date.now(), logged: total });
  };
  degradations.on('degraded', listener);
  return () => degradations.off('degraded', listener);
}

const round = (ms: number) => Math.round(ms * 10) / 10;

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
