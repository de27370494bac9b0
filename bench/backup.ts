/**
 * bench:backup — a ragmesh backup against what an operator would do by hand, same data,
 * same run.
 *
 *   ratio = bytes/s of `createBackup` (pg_dump custom format, and while it streams every
 *           object copied with its SHA-256; each file read back and checked as soon as
 *           it is written; the manifest written, read back and checked)
 *         / bytes/s of plain `pg_dump -Fc` to a file plus a recursive copy of the object
 *           folder                                                         goal ≥ 0.8
 *
 * Data: a PostgreSQL database migrated and filled with BENCH_DOCS documents of
 * BENCH_CHUNKS_PER_DOC chunks (random words), and BENCH_OBJECTS files of
 * BENCH_OBJECT_KB KiB in the filesystem object store. Each side runs BENCH_ROUNDS times,
 * alternating, and the medians are compared.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { cp, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { createBackup, deleteBackup } from '../lib/backup/backup.ts';
import { backupSources } from '../lib/backup/sources.ts';
import { loadConfig } from '../lib/config/env.ts';
import { createLogger } from '../lib/logging.ts';
import { Stores } from '../lib/runtime/stores.ts';
import { createTestDatabase, tempDir } from '../test/support/services.ts';

const DOCS = Number(process.env.BENCH_DOCS ?? 200);
const CHUNKS_PER_DOC = Number(process.env.BENCH_CHUNKS_PER_DOC ?? 50);
const OBJECTS = Number(process.env.BENCH_OBJECTS ?? 200);
const OBJECT_KB = Number(process.env.BENCH_OBJECT_KB ?? 256);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

const database = await createTestDatabase();
const dataDir = await tempDir('ragmesh-bench-backup-');
const env = {
  DB_DRIVER: 'pg',
  DATABASE_URL: database.value,
  DATA_DIR: dataDir.value,
  BACKUP_DIR: path.join(dataDir.value, 'backups'),
  VECTORS_DRIVER: 'postgres',
  LOG_LEVEL: 'warn',
};
const config = loadConfig(env);
const logger = createLogger('warn');
const stores = new Stores(config, logger);

try {
  const { knex } = await stores.db();
  const objects = await stores.objects();
  const words = ['contract', 'tenant', 'invoice', 'delivery', 'warranty', 'payment', 'договор', 'аренда', 'оплата', 'поставка'];
  const text = (n: number) => Array.from({ length: n }, (_, i) => words[(i * 7 + n) % words.length]).join(' ');
  await knex('tenants').insert({ id: 'acme', name: 'acme' });
  for (let d = 0; d < DOCS; d++) {
    const id = randomUUID();
    await knex('documents').insert({ id, tenant_id: 'acme', source_id: `doc-${d}`, mime: 'text/plain', size_bytes: 1000, content_hash: randomBytes(16).toString('hex'), status: 'ready' });
    await knex('chunks').insert(
      Array.from({ length: CHUNKS_PER_DOC }, (_, c) => ({ tenant_id: 'acme', document_id: id, ord: c, text: text(120 + c), content_hash: randomBytes(16).toString('hex'), token_count: 120 })),
    );
  }
  for (let o = 0; o < OBJECTS; o++) await objects.put(`tenants/acme/uploads/${randomUUID()}`, randomBytes(OBJECT_KB * 1024));
  const objectsDir = path.join(dataDir.value, 'objects');

  const byHand = async (): Promise<{ ms: number; bytes: number }> => {
    const out = await tempDir('ragmesh-bench-plain-');
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn('pg_dump', ['--format=custom', '--no-owner', '--no-privileges', `--dbname=${database.value}`, `--file=${path.join(out.value, 'db.pgdump')}`], { stdio: 'ignore' });
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`pg_dump exited ${code}`))));
    });
    await cp(objectsDir, path.join(out.value, 'objects'), { recursive: true });
    const ms = performance.now() - started;
    const bytes = (await stat(path.join(out.value, 'db.pgdump'))).size + OBJECTS * OBJECT_KB * 1024;
    await out.dispose();
    return { ms, bytes };
  };
  const ours = async (): Promise<{ ms: number; bytes: number }> => {
    const sources = await backupSources(stores, logger);
    const started = performance.now();
    const manifest = await createBackup(sources);
    const ms = performance.now() - started;
    await deleteBackup(sources.target, manifest.id);
    return { ms, bytes: manifest.bytes };
  };

  await byHand();
  await ours(); // warm both paths (page cache, module loading)
  const plain: Array<{ ms: number; bytes: number }> = [];
  const backup: Array<{ ms: number; bytes: number }> = [];
  for (let r = 0; r < ROUNDS; r++) {
    plain.push(await byHand());
    backup.push(await ours());
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const rate = (runs: Array<{ ms: number; bytes: number }>) => median(runs.map((r) => r.bytes / (r.ms / 1000)));
  const plainRate = rate(plain);
  const backupRate = rate(backup);
  const mib = (bps: number) => Math.round((bps / 1024 / 1024) * 10) / 10;
  const pgDumpVersion = await new Promise<string>((resolve) => {
    const child = spawn('pg_dump', ['--version']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('close', () => resolve(out.trim()));
  });
  console.log(`${pgDumpVersion}; node ${process.version}; ${DOCS} documents × ${CHUNKS_PER_DOC} chunks, ${OBJECTS} objects × ${OBJECT_KB} KiB; ${ROUNDS} rounds`);
  console.log(`pg_dump + cp -r   ${mib(plainRate)} MiB/s  (${plain.map((r) => Math.round(r.ms)).join(', ')} ms)`);
  console.log(`npm run backup    ${mib(backupRate)} MiB/s  (${backup.map((r) => Math.round(r.ms)).join(', ')} ms, incl. read-back verification)`);
  console.log(
    JSON.stringify({
      bench: 'backup',
      ratio: Math.round((backupRate / plainRate) * 100) / 100,
      goal: 0.8,
      backup_mib_s: mib(backupRate),
      plain_mib_s: mib(plainRate),
      bytes: backup[0]!.bytes,
      documents: DOCS,
      chunks: DOCS * CHUNKS_PER_DOC,
      objects: OBJECTS,
      pg_dump: pgDumpVersion,
      node: process.version,
    }),
  );
} finally {
  await stores.close();
  await rm(dataDir.value, { recursive: true, force: true });
  await database.dispose();
}
