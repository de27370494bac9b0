import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import knexPkg, { type Knex } from 'knex';
import type { Config } from '../../config/env.ts';

/** The system of record: one knex instance over PostgreSQL or PGlite, chosen by DB_DRIVER. */
export interface Database {
  readonly backend: 'pglite' | 'pg';
  readonly knex: Knex;
  /** The PGlite instance under knex (embedded only): backups dump its data directory. */
  readonly pglite?: PgliteHandle;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** What backups need of PGlite: a consistent tarball of its data directory. */
export interface PgliteHandle {
  exec(sql: string): Promise<unknown>;
  dumpDataDir(compression?: 'gzip' | 'none' | 'auto'): Promise<Blob>;
}

export async function openDatabase(config: Pick<Config, 'db' | 'dataDir'>): Promise<Database> {
  const { knex, pglite } =
    config.db.driver === 'pg' ? { knex: openPg(config.db.url!, config.db.poolMax), pglite: undefined } : await openPglite(config.dataDir);
  return {
    backend: config.db.driver,
    knex,
    pglite,
    async ping() {
      await knex.raw('select 1');
    },
    async close() {
      await knex.destroy();
    },
  };
}

function openPg(url: string, poolMax: number): Knex {
  return knexPkg.knex({
    client: 'pg',
    connection: { connectionString: url, application_name: 'ragmesh' },
    pool: { min: 0, max: poolMax },
    acquireConnectionTimeout: 10_000,
  });
}

/** Where the embedded profile keeps its database. */
export const pgliteDir = (dataDir: string) => path.join(dataDir, 'pg');

async function openPglite(dataDir: string): Promise<{ knex: Knex; pglite: PgliteHandle }> {
  // Loaded only here so the mesh never pays for the WASM build.
  const [{ PGlite }, { vector }, { default: ClientPgLite }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('@electric-sql/pglite-pgvector'),
    import('knex-pglite'),
  ]);
  const dir = pgliteDir(dataDir);
  await mkdir(dir, { recursive: true });
  const pglite = await PGlite.create({ dataDir: dir, extensions: { vector } });
  // knex-pglite 0.14 names a delete's command "DEL", so knex returns the raw result
  // instead of the deleted-row count; calling it "delete" restores the count.
  class PgliteClient extends (ClientPgLite as unknown as new (config: Knex.Config) => { processResponse(obj: { method?: string }, runner: unknown): unknown }) {
    override processResponse(obj: { method?: string }, runner: unknown): unknown {
      return super.processResponse(obj.method === 'del' ? { ...obj, method: 'delete' } : obj, runner);
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
      if (!LOCKED.test(String((err as Error).message)) || Date.now() > deadline) throw err;
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
