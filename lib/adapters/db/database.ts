import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import knexPkg, { type Knex } from 'knex';
import type { Config } from '../../config/env.ts';
import { appError, RagmeshError } from '../../errors.ts';
import { DependencyHealth } from '../dependency-health.ts';
import { queryPreparedPglite } from './prepared.ts';
import { createPglite, PgliteThread } from './pglite-thread.ts';

/** The system of record: one knex instance over PostgreSQL or PGlite, chosen by DB_DRIVER. */
export interface Database {
  readonly backend: 'pglite' | 'pg';
  readonly knex: Knex;
  /** The PGlite instance under knex (embedded only): backups dump its data directory. */
  readonly pglite?: PgliteHandle;
  /** Down after a connection-class failure until a probe answers; workers wait on it. */
  readonly health: DependencyHealth;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** What backups need of PGlite: a consistent tarball of its data directory. */
export interface PgliteHandle {
  exec(sql: string): Promise<unknown>;
  dumpDataDir(compression?: 'gzip' | 'none' | 'auto'): Promise<Blob>;
}

export async function openDatabase(config: Pick<Config, 'db' | 'dataDir'>): Promise<Database> {
  const health = new DependencyHealth('db', async () => {
    await knex.raw('select 1');
  });
  const { knex, pglite } =
    config.db.driver === 'pg' ? { knex: openPg(config.db.url!, config.db.poolMax, health), pglite: undefined } : await openPglite(config.dataDir, config.db.pgliteThread ?? 'main');
  return {
    backend: config.db.driver,
    knex,
    pglite,
    health,
    async ping() {
      await knex.raw('select 1');
    },
    async close() {
      health.close();
      await knex.destroy();
    },
  };
}

/**
 * Bounds on waiting for PostgreSQL, so a request never hangs on it: connecting (a
 * dropped network answers nothing), getting a connection from the pool (all busy or
 * none can be made), and one statement (a lock held by someone else). A stopped
 * server refuses at once; these only bound the silent cases, and stay generous because
 * a process whose event loop is starved (busy boot, 2 cores) fires its timers late.
 */
export const PG_TIMEOUTS = { connectMs: 10_000, acquireMs: 10_000, statementMs: 60_000 } as const;

/** Node's socket errors that mean the server cannot be reached. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);
/** SQLSTATEs of a server going away or refusing new work: class 08 plus admin shutdown, crash shutdown, cannot connect now, too many connections. */
const UNAVAILABLE_STATES = /^(08...|57P0[123]|53300)$/;
const CONNECTION_MESSAGES = /Connection terminated|connection error and is not queryable|timeout exceeded when trying to connect|Connection ended unexpectedly|Timeout acquiring a connection|the database system is (shutting down|starting up|in recovery mode)/i;

/** True when `err` means "PostgreSQL cannot be reached right now", not "this statement is wrong". */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; name?: string; message?: string } | null;
  if (!e) return false;
  if (typeof e.code === 'string' && (NETWORK_CODES.has(e.code) || UNAVAILABLE_STATES.test(e.code))) return true;
  if (e.name === 'KnexTimeoutError') return true;
  return CONNECTION_MESSAGES.test(String(e.message ?? ''));
}

/**
 * Classifies at the origin: an unreachable database becomes a retryable 503
 * DATABASE_UNAVAILABLE (and marks the health down); a statement stopped by the
 * statement timeout a retryable 503 DATABASE_TIMEOUT. Anything else passes unchanged.
 */
export function classifyDatabaseError(err: unknown, health?: DependencyHealth): unknown {
  if (err instanceof RagmeshError) return err;
  if (isDatabaseUnavailable(err)) {
    health?.reportDown(err as Error);
    // The cause's code (ECONNREFUSED, 57P01, KnexTimeoutError) says which outage without echoing hosts or SQL.
    const e = err as { code?: unknown; name?: string };
    const why = typeof e.code === 'string' ? e.code : (e.name ?? 'Error');
    return Object.assign(appError('DATABASE_UNAVAILABLE', `The database is unreachable right now (${why}); retry shortly`), { cause: err });
  }
  if ((err as { code?: unknown } | null)?.code === '57014' && /statement timeout/i.test(String((err as Error).message))) {
    return Object.assign(appError('DATABASE_TIMEOUT', 'A database statement took too long; retry shortly'), { cause: err });
  }
  return err;
}

const requireCjs = createRequire(import.meta.url);
type KnexClientClass = new (config: Knex.Config) => {
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): Promise<void>;
  query(connection: unknown, query: unknown): Promise<unknown>;
};

/** What a pooled node-pg connection answers a named statement with (the part read here). */
interface PgQueryable {
  query(config: { name: string; text: string; values: readonly unknown[] }): Promise<{ rows: Array<Record<string, unknown>> }>;
}

function openPg(url: string, poolMax: number, health: DependencyHealth): Knex {
  // knex's PostgreSQL client with every connection acquisition and statement
  // classified; subclassed (not patched) because transactions build their client
  // from the class's prototype.
  const ClientPg = requireCjs('knex/lib/dialects/postgres/index.js') as KnexClientClass;
  class ClassifyingClientPg extends ClientPg {
    override async acquireConnection(): Promise<unknown> {
      try {
        return await super.acquireConnection();
      } catch (err) {
        throw classifyDatabaseError(err, health);
      }
    }
    override async query(connection: unknown, query: unknown): Promise<unknown> {
      try {
        return await super.query(connection, query);
      } catch (err) {
        throw classifyDatabaseError(err, health);
      }
    }
    /**
     * A named statement ($n placeholders) on a connection of the pool, straight to node-pg:
     * what lib/repositories/prepared.ts's preparedQuery runs on PostgreSQL. knex's builder
     * and runner around the same statement (the raw's compile, its binding rewrite, the
     * runner's promise chain, the response's processing) cost 50–80 µs of CPU a statement,
     * measured here; a chat answer runs three, one of them before its first token.
     */
    async queryPrepared(name: string, text: string, values: readonly unknown[]): Promise<{ rows: Array<Record<string, unknown>> }> {
      const connection = (await this.acquireConnection()) as PgQueryable;
      try {
        return await connection.query({ name, text, values });
      } catch (err) {
        throw classifyDatabaseError(err, health);
      } finally {
        await this.releaseConnection(connection);
      }
    }
  }
  return knexPkg.knex({
    client: ClassifyingClientPg as unknown as typeof knexPkg.Client,
    connection: {
      connectionString: url,
      application_name: 'ragmesh',
      connectionTimeoutMillis: PG_TIMEOUTS.connectMs,
      statement_timeout: PG_TIMEOUTS.statementMs,
      // Dead peers (a cut network) are noticed by TCP instead of waiting forever.
      keepAlive: true,
    } as Knex.PgConnectionConfig,
    pool: { min: 0, max: poolMax },
    acquireConnectionTimeout: PG_TIMEOUTS.acquireMs,
    // knex prints every failed connection attempt; an outage is reported once, by the health.
    log: {
      warn: (message: unknown) => {
        if (!/Acquire connection error|Connection Error/i.test(String(message))) console.warn(message);
      },
    },
  });
}

/** Where the embedded profile keeps its database. */
export const pgliteDir = (dataDir: string) => path.join(dataDir, 'pg');

async function openPglite(dataDir: string, threading: 'worker' | 'main'): Promise<{ knex: Knex; pglite: PgliteHandle }> {
  const { default: ClientPgLite } = await import('knex-pglite');
  const dir = pgliteDir(dataDir);
  await mkdir(dir, { recursive: true });
  const pglite = threading === 'worker' ? await PgliteThread.open(dir) : await createPglite(dir);
  // knex-pglite 0.14 names a delete's command "DEL", so knex returns the raw result
  // instead of the deleted-row count; calling it "delete" restores the count.
  type QueryObject = { method?: string; sql: string; bindings?: unknown[]; options?: { name?: string }; response?: unknown };
  class PgliteClient extends (ClientPgLite as unknown as new (config: Knex.Config) => {
    processResponse(obj: { method?: string }, runner: unknown): unknown;
    _query(connection: unknown, obj: QueryObject): Promise<QueryObject>;
  }) {
    override processResponse(obj: { method?: string }, runner: unknown): unknown {
      return super.processResponse(obj.method === 'del' ? { ...obj, method: 'delete' } : obj, runner);
    }
    // A statement named by preparedRaw runs as PREPARE once and EXECUTE after (prepared.ts).
    override async _query(connection: unknown, obj: QueryObject): Promise<QueryObject> {
      const name = obj.options?.name;
      if (name && obj.sql) {
        const response = await queryPreparedPglite(connection as Parameters<typeof queryPreparedPglite>[0], name, obj.sql, obj.bindings ?? []);
        if (response !== null) {
          obj.response = response;
          return obj;
        }
      }
      return super._query(connection, obj);
    }
  }
  // knex-pglite closes the PGlite instance in knex.destroy().
  const knex = knexPkg.knex({
    client: PgliteClient as unknown as typeof knexPkg.Client,
    dialect: 'postgres',
    connection: (() => ({ pglite })) as unknown as Knex.StaticConnectionConfig,
  });
  return { knex, pglite: pglite as unknown as PgliteHandle };
}

const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../migrations');

/**
 * Reads migrations/ at run time and imports each file; one list for PGlite and
 * PostgreSQL. Files are `YYYYMMDDNN_name.ts` exporting `up` and `down`.
 */
class FolderMigrationSource implements Knex.MigrationSource<string> {
  async getMigrations(): Promise<string[]> {
    const files = await readdir(MIGRATIONS_DIR);
    return files.filter((f) => /^\d+_[a-z0-9_]+\.ts$/.test(f)).sort();
  }
  getMigrationName(file: string): string {
    return file;
  }
  async getMigration(file: string): Promise<Knex.Migration> {
    return import(pathToFileURL(path.join(MIGRATIONS_DIR, file)).href) as Promise<Knex.Migration>;
  }
}

/**
 * What a process sees when another one is migrating the same database right now:
 * knex's lock, or — before the lock table exists — both creating knex's own tables.
 */
const LOCKED = /already locked|pg_type_typname_nsp_index|"knex_migrations(_lock)?" already exists/i;
/** Any constant: every ragmesh process takes the same advisory lock around its migrations. */
const MIGRATION_LOCK = 4_726_173_301;

/**
 * Applies pending migrations. Processes of the mesh boot together: all but one fail
 * on knex's lock (or on creating its tables), and those wait and try again.
 */
export async function migrateLatest(db: Database, timeoutMs = 60_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const migrate = async () => ((await db.knex.migrate.latest({ migrationSource: new FolderMigrationSource() })) as [number, string[]])[1];
      if (db.backend !== 'pg') return await migrate();
      // Processes booting together queue on a PostgreSQL advisory lock (held by this
      // transaction's connection) instead of racing to create knex's own tables.
      return await db.knex.transaction(async (trx) => {
        await trx.raw('select pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
        return migrate();
      });
    } catch (err) {
      // A database restarting (or slow to hand out a first connection) while this
      // process boots is waited for too, within the same deadline.
      const waitable = LOCKED.test(String((err as Error).message)) || (err as RagmeshError).type === 'DATABASE_UNAVAILABLE';
      if (!waitable || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

export async function migrateRollbackAll(db: Database): Promise<void> {
  await db.knex.migrate.rollback({ migrationSource: new FolderMigrationSource() }, true);
}

/** The newest applied migration and how many there are, next to what this app knows. */
export async function migrationState(db: Database): Promise<{ latest: string | null; applied: number; known: string[] }> {
  const source = new FolderMigrationSource();
  const [completed] = (await db.knex.migrate.list({ migrationSource: source })) as [Array<{ name: string } | string>, unknown];
  const names = completed.map((c) => (typeof c === 'string' ? c : c.name)).sort();
  return { latest: names.at(-1) ?? null, applied: names.length, known: await source.getMigrations() };
}

/** The migrations this app ships, in order (a backup from a newer app names one this list lacks). */
export function knownMigrations(): Promise<string[]> {
  return new FolderMigrationSource().getMigrations();
}
