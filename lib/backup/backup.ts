import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../config/env.ts';
import { knownMigrations, migrateLatest, migrationState, openDatabase, type Database } from '../adapters/db/database.ts';
import { databaseIsEmpty, dumpDatabase, restoreDatabase, type DatabaseDump, type DumpFormat } from '../adapters/db/dump.ts';
import { AuditRepository } from '../repositories/audit.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { Hashing, hashStream, sha256 } from './hashing.ts';
import {
  BACKUP_FORMAT,
  BACKUP_ID,
  newBackupId,
  parseManifest,
  sealManifest,
  type BackupFile,
  type BackupManifest,
  type BucketRole,
} from './manifest.ts';
import type { QdrantSnapshots } from './qdrant.ts';
import { readAll } from '../streams.ts';

/**
 * Backups of a whole deployment: the database, every object of the uploads and
 * models buckets, Qdrant's collections as snapshots (vectors kept in the database
 * come with its dump), and in the embedded profile the generated secrets under
 * DATA_DIR/secrets. A backup lives under `<id>/` in the backup target, with its
 * manifest written last and every file re-read and checked before it counts.
 */
export interface BackupSources {
  config: Config;
  db: Database;
  buckets: Record<BucketRole, ObjectStore>;
  target: ObjectStore;
  qdrant: QdrantSnapshots | null;
  app: { version: string; commit: string | null };
  logger: Logger;
}

/** A backup was refused or failed its check; `problems` says what is wrong, file by file. */
export class BackupError extends Error {
  constructor(
    readonly headline: string,
    readonly problems: string[],
  ) {
    super(`${headline}: ${problems.join('; ')}`);
  }
}

/** Objects copied and checked at once: small objects are bound by round trips, not bandwidth. */
const COPY_CONCURRENCY = 16;
/**
 * Objects up to this size are copied whole, through two buffers per copy in flight (the
 * bytes read, and the copy read back) kept from object to object: at most
 * 16 × 2 × 4 MiB = 128 MiB held. Larger ones stream.
 */
const WHOLE_OBJECT_BYTES = 4 * 1024 * 1024;

/**
 * One copy's buffers, reused for the next object: fresh ones for each of hundreds of
 * objects were garbage that cost the collector more time than hashing them.
 */
class Scratch {
  read = Buffer.alloc(0);
  check = Buffer.alloc(0);

  /** Grows both to hold `size` bytes (in powers of two, so a few sizes make few buffers). */
  fit(size: number): this {
    if (this.read.length < size) {
      const capacity = Math.min(WHOLE_OBJECT_BYTES, Math.max(64 * 1024, 2 ** Math.ceil(Math.log2(Math.max(size, 1)))));
      this.read = Buffer.allocUnsafe(capacity);
      this.check = Buffer.allocUnsafe(capacity);
    }
    return this;
  }
}

/** Runs `work` over `items` with at most `limit` at a time; the first failure rejects. */
async function inParallel<T>(items: AsyncIterable<T> | Iterable<T>, limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const running = new Set<Promise<void>>();
  let failed: unknown = null;
  for await (const item of items) {
    if (failed) break;
    const task: Promise<void> = work(item).catch((err: unknown) => {
      failed ??= err;
    }).finally(() => running.delete(task));
    running.add(task);
    if (running.size >= limit) await Promise.race(running);
  }
  await Promise.all(running);
  if (failed) throw failed;
}

const secretsDir = (config: Config) => path.join(config.dataDir, 'secrets');

export async function createBackup(src: BackupSources, now = new Date()): Promise<BackupManifest> {
  const id = newBackupId(now);
  const files: BackupFile[] = [];
  const started = performance.now();
  /**
   * Copies `body` (the object's bytes, in `scratch.read`) into the backup, then reads the
   * copy back into `scratch.check`: a file counts only once it reads back the same. The
   * bytes are at hand, so they are compared (a memcmp), not hashed a second time.
   */
  const writeWhole = async (file: Omit<BackupFile, 'size' | 'sha256'>, body: Buffer, scratch: Scratch): Promise<void> => {
    const key = `${id}/${file.path}`;
    const stored = src.target.put(key, body);
    // Hashed while the write is under way in the thread pool.
    const digest = sha256(body);
    await stored;
    const back = await src.target.readInto(key, scratch.check);
    if (back !== body.length || !scratch.check.subarray(0, back).equals(body)) {
      throw new BackupError(`backup ${id} did not read back`, [`${file.path} reads back other than it was written`]);
    }
    files.push({ ...file, size: body.length, sha256: digest });
  };
  /**
   * Copies `body` into the backup, hashing it on the way, then reads the copy back and
   * checks it against that hash: a file counts only once it reads back the same.
   */
  const write = async (file: Omit<BackupFile, 'size' | 'sha256'>, body: Readable): Promise<void> => {
    const key = `${id}/${file.path}`;
    const hashing = new Hashing();
    const stored = src.target.put(key, hashing);
    body.on('error', (err) => hashing.destroy(err));
    body.pipe(hashing);
    await stored;
    const written: BackupFile = { ...file, size: hashing.bytes, sha256: hashing.digest() };
    const read = await hashStream(await src.target.get(key));
    if (read.size !== written.size || read.sha256 !== written.sha256) {
      throw new BackupError(`backup ${id} did not read back`, [`${file.path} reads back as ${read.size} bytes with another SHA-256 than was written`]);
    }
    files.push(written);
  };

  let dump: DatabaseDump | undefined;
  try {
    // The database dump starts first; once dumpDatabase returns, its snapshot is taken,
    // so every object a row of it refers to (objects are stored before their rows) is
    // already in the buckets: they are copied while the dump streams.
    dump = await dumpDatabase(src.db, src.config);
    const dbPath = dump.format === 'pg_dump_custom' ? 'database.pgdump' : 'database.pglite.tar.gz';
    const database = Promise.all([write({ path: dbPath, kind: 'database' }, dump.stream), dump.finished]);
    const migrationRead = migrationState(src.db);
    const objects = (async () => {
      const scratches: Scratch[] = [];
      for (const [role, store] of Object.entries(src.buckets) as Array<[BucketRole, ObjectStore]>) {
        await inParallel(store.list(''), COPY_CONCURRENCY, async (info) => {
          const file = { path: `objects/${role}/${info.key}`, kind: 'object' as const, bucket: role, key: info.key };
          // Most objects are small: whole, they cost a few round trips instead of a stream's many.
          if (info.size <= WHOLE_OBJECT_BYTES) {
            const scratch = (scratches.pop() ?? new Scratch()).fit(info.size);
            try {
              const size = await store.readInto(info.key, scratch.read);
              if (size !== null) return await writeWhole(file, scratch.read.subarray(0, size), scratch);
            } finally {
              scratches.push(scratch);
            }
          }
          // Large, or grown past its listed size since: streamed.
          await write(file, await store.get(info.key));
        });
      }
    })();
    const settled = await Promise.allSettled([database, objects, migrationRead]);
    for (const outcome of settled) if (outcome.status === 'rejected') throw outcome.reason;
    const migration = await migrationRead;

    const collections: string[] = [];
    if (src.qdrant) {
      for (const collection of await src.qdrant.collections()) {
        const snapshot = await src.qdrant.snapshot(collection);
        try {
          await write({ path: `vectors/${collection}.snapshot`, kind: 'vectors', collection }, snapshot.stream);
        } finally {
          await snapshot.discard();
        }
        collections.push(collection);
      }
    }

    if (src.config.profile === 'embedded') {
      for (const name of await readdir(secretsDir(src.config)).catch(() => [] as string[])) {
        await write({ path: `secrets/${name}`, kind: 'secret', key: name }, Readable.from([await readFile(path.join(secretsDir(src.config), name))]));
      }
    }

    const manifest = sealManifest({
      format: BACKUP_FORMAT,
      id,
      createdAt: now.toISOString(),
      app: src.app,
      migration: { latest: migration.latest, applied: migration.applied },
      profile: src.config.profile,
      database: { backend: src.db.backend, format: dump.format, path: dbPath },
      vectors: { driver: src.config.vectors.driver, collections },
      files,
      bytes: files.reduce((sum, f) => sum + f.size, 0),
    });
    await src.target.put(`${id}/manifest.json`, Buffer.from(JSON.stringify(manifest, null, 2)), { contentType: 'application/json' });

    // Every file was read back as it was written; the manifest now is, and every file is still there at its size.
    const check = await verifyBackup(src.target, id, { contents: false });
    if (check.problems.length > 0) throw new BackupError(`backup ${id} did not read back`, check.problems);
    src.logger.info({ backup: id, files: files.length, bytes: manifest.bytes, ms: Math.round(performance.now() - started) }, 'backup written and verified');
    return manifest;
  } catch (err) {
    // A dump whose copy failed would wait on a full pipe, holding its snapshot: closed, pg_dump exits.
    dump?.stream.destroy();
    await deleteBackup(src.target, id).catch(() => undefined);
    throw err;
  }
}

/**
 * Re-reads a backup: the manifest's own checksum, then every file's presence, size and
 * (unless `contents: false`, for a backup whose files were each just read back) SHA-256.
 */
export async function verifyBackup(target: ObjectStore, id: string, options: { contents?: boolean } = {}): Promise<{ manifest: BackupManifest | null; problems: string[] }> {
  if (!BACKUP_ID.test(id)) return { manifest: null, problems: [`"${id}" is not a backup id (like 20261130T221503Z-3fa9c1)`] };
  let text: string;
  try {
    text = (await readAll(await target.get(`${id}/manifest.json`))).toString('utf8');
  } catch {
    return { manifest: null, problems: [`backup ${id} has no manifest.json (missing or incomplete)`] };
  }
  const parsed = parseManifest(text);
  if ('problem' in parsed) return { manifest: null, problems: [parsed.problem] };
  const { manifest } = parsed;
  const problems: string[] = [];
  if (manifest.id !== id) problems.push(`manifest.json names backup ${manifest.id}, not ${id}`);
  if (!manifest.files.some((f) => f.path === manifest.database.path && f.kind === 'database')) {
    problems.push(`the database dump ${manifest.database.path} is not listed`);
  }
  await inParallel(manifest.files, COPY_CONCURRENCY, async (file) => {
    const key = `${id}/${file.path}`;
    const info = await target.stat(key);
    if (!info) {
      problems.push(`${file.path} is missing`);
      return;
    }
    if (info.size !== file.size) {
      problems.push(`${file.path} has ${info.size} bytes, the manifest says ${file.size} (truncated?)`);
      return;
    }
    if (options.contents === false) return;
    const read = await hashStream(await target.get(key));
    if (read.sha256 !== file.sha256) problems.push(`${file.path} does not match its SHA-256 (damaged)`);
  });
  return { manifest, problems: problems.sort() };
}

export interface BackupSummary {
  id: string;
  createdAt: string;
  bytes: number;
  files: number;
  app: string;
  migration: string | null;
}

/** Complete backups (those with a readable manifest), newest first. */
export async function listBackups(target: ObjectStore): Promise<BackupSummary[]> {
  const ids = new Set<string>();
  for await (const info of target.list('')) {
    const [id, rest] = [info.key.split('/')[0]!, info.key.split('/').slice(1).join('/')];
    if (BACKUP_ID.test(id) && rest === 'manifest.json') ids.add(id);
  }
  const out: BackupSummary[] = [];
  for (const id of ids) {
    const parsed = parseManifest((await readAll(await target.get(`${id}/manifest.json`))).toString('utf8'));
    if ('problem' in parsed) continue;
    const m = parsed.manifest;
    out.push({ id, createdAt: m.createdAt, bytes: m.bytes, files: m.files.length, app: m.app.version, migration: m.migration.latest });
  }
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

export async function deleteBackup(target: ObjectStore, id: string): Promise<void> {
  if (!BACKUP_ID.test(id)) throw new Error(`"${id}" is not a backup id`);
  const keys: string[] = [];
  for await (const info of target.list(`${id}/`)) keys.push(info.key);
  // The manifest goes first, so a half-deleted backup is never taken for a complete one.
  keys.sort((a, b) => Number(b.endsWith('/manifest.json')) - Number(a.endsWith('/manifest.json')));
  for (const key of keys) await target.delete(key);
}

export interface RestoreTarget {
  config: Config;
  buckets: Record<BucketRole, ObjectStore>;
  qdrant: QdrantSnapshots | null;
  logger: Logger;
}

/**
 * Restores a backup into an empty deployment. Everything is checked first (every
 * checksum, the app can migrate from the backup's schema, the database and buckets
 * are empty): a refused restore has written nothing. Then the database, objects,
 * vectors and secrets are written, and the schema is migrated to this app's latest.
 */
export async function restoreBackup(source: ObjectStore, id: string, into: RestoreTarget): Promise<BackupManifest> {
  const { manifest, problems } = await verifyBackup(source, id);
  if (!manifest || problems.length > 0) throw new BackupError(`backup ${id} is refused, nothing was restored`, problems);

  const known = await knownMigrations();
  if (manifest.migration.latest && !known.includes(manifest.migration.latest)) {
    throw new BackupError(`backup ${id} is refused, nothing was restored`, [
      `it was written by ragmesh ${manifest.app.version} with migration ${manifest.migration.latest}, which this version does not know: restore it with that version or a newer one`,
    ]);
  }
  const expected = manifest.database.backend === 'pglite' ? 'pglite' : 'pg';
  if (into.config.db.driver !== expected) {
    throw new BackupError(`backup ${id} is refused, nothing was restored`, [
      `it holds a ${expected === 'pg' ? 'PostgreSQL' : 'PGlite'} database, and this deployment runs DB_DRIVER=${into.config.db.driver}`,
    ]);
  }
  if (manifest.vectors.collections.length > 0 && !into.qdrant) {
    throw new BackupError(`backup ${id} is refused, nothing was restored`, ['it holds Qdrant snapshots, and this deployment has no VECTORS_DRIVER=qdrant']);
  }

  const notEmpty: string[] = [];
  const probe = into.config.db.driver === 'pg' ? await openDatabase({ ...into.config, db: { ...into.config.db, migrateOnStart: false } }) : undefined;
  try {
    if (!(await databaseIsEmpty(into.config, probe))) notEmpty.push('the database already holds tables');
  } finally {
    await probe?.close();
  }
  for (const [role, store] of Object.entries(into.buckets)) {
    for await (const info of store.list('')) {
      notEmpty.push(`the ${role} bucket "${store.bucket}" already holds objects (e.g. ${info.key})`);
      break;
    }
  }
  if (into.qdrant) {
    const existing = await into.qdrant.collections();
    const clash = manifest.vectors.collections.filter((c) => existing.includes(c));
    if (clash.length > 0) notEmpty.push(`Qdrant already has the collections ${clash.join(', ')}`);
  }
  if (notEmpty.length > 0) throw new BackupError(`backup ${id} is refused: restore writes only into an empty deployment`, notEmpty);

  const started = performance.now();
  await restoreDatabase(into.config, manifest.database.format as DumpFormat, await source.get(`${id}/${manifest.database.path}`));
  for (const file of manifest.files) {
    const body = () => source.get(`${id}/${file.path}`);
    if (file.kind === 'object') await into.buckets[file.bucket!].put(file.key!, await body(), { size: file.size });
    else if (file.kind === 'vectors') await into.qdrant!.restore(file.collection!, await readAll(await body()));
    else if (file.kind === 'secret') {
      await mkdir(secretsDir(into.config), { recursive: true, mode: 0o700 });
      await writeFile(path.join(secretsDir(into.config), path.basename(file.key!)), await readAll(await body()), { mode: 0o600 });
    }
  }
  const db = await openDatabase(into.config);
  try {
    const applied = await migrateLatest(db);
    // The restored audit log records its own restore (deployment-wide; by the operator's CLI, no caller token).
    await new AuditRepository(db.knex).record(null, { actor: 'restore', action: 'backup.restore', target: id, details: { createdAt: manifest.createdAt, migrated: applied }, requestId: null });
    into.logger.info({ backup: id, migrated: applied, ms: Math.round(performance.now() - started) }, 'backup restored');
  } finally {
    await db.close();
  }
  return manifest;
}
