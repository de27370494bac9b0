import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import knexPkg, { type Knex } from 'knex';
import type { Config } from '../../config/env.ts';

/** The system of record: one knex instance over PostgreSQL or PGlite, chosen by DB_DRIVER. */
export interface Database {
  readonly backend: 'pglite' | 'pg';
  readonly knex: Knex;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function openDatabase(config: Pick<Config, 'db' | 'dataDir'>): Promise<Database> {
  const knex = config.db.driver === 'pg' ? openPg(config.db.url!, config.db.poolMax) : await openPglite(config.dataDir);
  return {
    backend: config.db.driver,
    knex,
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

async function openPglite(dataDir: string): Promise<Knex> {
  // Loaded only here so the mesh never pays for the WASM build.
  const [{ PGlite }, { vector }, { default: ClientPgLite }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('@electric-sql/pglite-pgvector'),
    import('knex-pglite'),
  ]);
  const dir = path.join(dataDir, 'pg');
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
  return knexPkg.knex({
    client: PgliteClient as unknown as typeof knexPkg.Client,
    dialect: 'postgres',
    connection: (() => ({ pglite })) as unknown as Knex.StaticConnectionConfig,
  });
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
