import { createHash } from 'node:crypto';

/**
 * What a backup holds, written last into `<id>/manifest.json`: a backup without a
 * manifest is incomplete by definition. Every file is listed with its size and
 * SHA-256, and the manifest carries a checksum of itself, so a truncated file, a
 * flipped byte or an edited manifest is found before anything is restored.
 */
export const BACKUP_FORMAT = 'ragmesh-backup/1';

export type BucketRole = 'objects' | 'models';

export type BackupFileKind = 'database' | 'object' | 'vectors' | 'secret';

export interface BackupFile {
  /** Path inside the backup, relative to `<id>/`. */
  path: string;
  kind: BackupFileKind;
  size: number;
  sha256: string;
  /** Objects: which bucket they came from (`objects` or `models`, not its name, so a renamed bucket restores) and their key. */
  bucket?: BucketRole;
  key?: string;
  /** Qdrant snapshots: the collection they restore. */
  collection?: string;
}

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  id: string;
  createdAt: string;
  /** What wrote it: a newer app restores an older backup by migrating after the restore. */
  app: { version: string; commit: string | null };
  /** The newest migration applied to the database at backup time, and how many were applied. */
  migration: { latest: string | null; applied: number };
  profile: 'embedded' | 'mesh';
  database: { backend: 'pg' | 'pglite'; format: 'pg_dump_custom' | 'pglite_tar_gz'; path: string };
  vectors: { driver: string; collections: string[] };
  files: BackupFile[];
  bytes: number;
  /** SHA-256 of this manifest's JSON with `checksum` left out. */
  checksum: string;
}

export function manifestChecksum(manifest: Omit<BackupManifest, 'checksum'> & { checksum?: string }): string {
  const { checksum: _ignored, ...rest } = manifest;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex');
}

export function sealManifest(manifest: Omit<BackupManifest, 'checksum'>): BackupManifest {
  return { ...manifest, checksum: manifestChecksum(manifest) };
}

/** Parses and checks a manifest's shape and checksum; returns the problem, or the manifest. */
export function parseManifest(text: string): { manifest: BackupManifest } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: 'manifest.json is not valid JSON (truncated or damaged)' };
  }
  const m = value as Partial<BackupManifest>;
  if (!m || typeof m !== 'object') return { problem: 'manifest.json is not an object' };
  if (m.format !== BACKUP_FORMAT) return { problem: `manifest.json has format "${String(m.format)}", expected "${BACKUP_FORMAT}"` };
  if (typeof m.id !== 'string' || !Array.isArray(m.files) || !m.database || typeof m.checksum !== 'string') {
    return { problem: 'manifest.json lacks id, files, database or checksum' };
  }
  for (const f of m.files) {
    if (typeof f?.path !== 'string' || typeof f.size !== 'number' || !/^[0-9a-f]{64}$/.test(String(f.sha256))) {
      return { problem: `manifest.json lists a file without path, size or SHA-256: ${JSON.stringify(f).slice(0, 120)}` };
    }
  }
  if (manifestChecksum(m as BackupManifest) !== m.checksum) {
    return { problem: 'manifest.json does not match its own checksum (edited or damaged)' };
  }
  return { manifest: m as BackupManifest };
}

/** `20261130T221503Z-3fa9c1`: sorts by time, and is a valid object key segment. */
export function newBackupId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${createHash('sha256').update(String(Math.random()) + process.pid).digest('hex').slice(0, 6)}`;
}

export const BACKUP_ID = /^\d{8}T\d{6}Z-[0-9a-f]{6}$/;
