import { spawn } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../../config/env.ts';
import { pgliteDir, type Database } from './database.ts';
import { createPglite } from './pglite-thread.ts';
import { readAll } from '../../streams.ts';

/**
 * The database half of a backup. PostgreSQL: `pg_dump` in its custom format (the
 * client tools must match the server's major version or be newer). PGlite: a
 * tarball of its data directory, taken between two statements of the one
 * connection after a CHECKPOINT, so it is a consistent copy while the node runs.
 */
export type DumpFormat = 'pg_dump_custom' | 'pglite_tar_gz';

export interface DatabaseDump {
  format: DumpFormat;
  /**
   * What the dump holds is fixed by the time `dumpDatabase` returns (PostgreSQL: the
   * snapshot pg_dump reads is taken; PGlite: the copy is made), so anything written
   * before the call, such as an object a dumped row refers to, exists from then on.
   */
  stream: Readable;
  /** Settles when the dump tool has exited; rejects with its error output when it failed. */
  finished: Promise<void>;
}

export async function dumpDatabase(db: Database, config: Pick<Config, 'db'>): Promise<DatabaseDump> {
  if (db.backend === 'pglite') {
    if (!db.pglite) throw new Error('the PGlite database has no handle to dump');
    await db.pglite.exec('CHECKPOINT');
    const blob = await db.pglite.dumpDataDir('gzip');
    return { format: 'pglite_tar_gz', stream: Readable.from([Buffer.from(await blob.arrayBuffer())]), finished: Promise.resolve() };
  }
  // pg_dump reads a snapshot exported here rather than taking its own after it starts
  // and reads the catalog (~90 ms before its first byte): a backup copies objects from
  // the moment this returns. A snapshot can be imported only while the transaction that
  // exported it is open, so it stays open (read only, idle) until pg_dump exits.
  const exporter = await db.knex.transaction({ isolationLevel: 'repeatable read', readOnly: true });
  let snapshot: string;
  try {
    const result = (await exporter.raw('select pg_export_snapshot() as snapshot')) as { rows: Array<{ snapshot: string }> };
    snapshot = result.rows[0]!.snapshot;
  } catch (err) {
    await exporter.rollback();
    throw err;
  }
  const child = spawn('pg_dump', ['--format=custom', '--no-owner', '--no-privileges', `--snapshot=${snapshot}`, `--dbname=${config.db.url}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const finished = exited(child, 'pg_dump').finally(() => exporter.rollback().catch(() => undefined));
  return { format: 'pg_dump_custom', stream: child.stdout, finished };
}

/** True when the target holds no database yet: restore writes only into an empty deployment. */
export async function databaseIsEmpty(config: Pick<Config, 'db' | 'dataDir'>, db?: Database): Promise<boolean> {
  if (config.db.driver === 'pglite') {
    const entries = await readdir(pgliteDir(config.dataDir)).catch(() => []);
    return entries.length === 0;
  }
  const rows = (await db!.knex.raw(`select count(*)::int as n from information_schema.tables where table_schema = 'public'`)) as {
    rows: Array<{ n: number }>;
  };
  return rows.rows[0]!.n === 0;
}

/** Writes a dump into the empty database of `config`; PostgreSQL restores in one transaction. */
export async function restoreDatabase(config: Pick<Config, 'db' | 'dataDir'>, format: DumpFormat, dump: Readable): Promise<void> {
  if (format === 'pglite_tar_gz') {
    if (config.db.driver !== 'pglite') throw new Error('this backup holds a PGlite database; restore it with DB_DRIVER=pglite');
    const dir = pgliteDir(config.dataDir);
    await mkdir(dir, { recursive: true });
    const tarball = new Blob([new Uint8Array(await readAll(dump))]);
    const pglite = await createPglite(dir, tarball);
    await pglite.close();
    return;
  }
  if (config.db.driver !== 'pg') throw new Error('this backup holds a PostgreSQL dump; restore it with DB_DRIVER=pg');
  const child = spawn(
    'pg_restore',
    ['--no-owner', '--no-privileges', '--exit-on-error', '--single-transaction', `--dbname=${config.db.url}`],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  const done = exited(child, 'pg_restore');
  await Promise.all([pipeline(dump, child.stdin), done]);
}

function exited(child: ReturnType<typeof spawn>, tool: string): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.on('error', (err) => reject(new Error(`${tool} could not run: ${err.message} (install the PostgreSQL client tools)`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${tool} exited with ${code}: ${stderr.trim()}`))));
  });
}
