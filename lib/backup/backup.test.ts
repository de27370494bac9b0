import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCron } from './cron.ts';
import { BACKUP_FORMAT, newBackupId, BACKUP_ID, parseManifest, sealManifest } from './manifest.ts';
import { backupsToDelete } from './retention.ts';

describe('backup schedule (cron, UTC)', () => {
  const next = (cron: string, after: string) => parseCron(cron).next(new Date(after)).toISOString();

  it('finds the next minute matching every field', () => {
    assert.equal(next('0 3 * * *', '2026-11-30T21:00:00Z'), '2026-12-01T03:00:00.000Z');
    assert.equal(next('0 3 * * *', '2026-12-01T02:59:59Z'), '2026-12-01T03:00:00.000Z');
    assert.equal(next('*/15 * * * *', '2026-11-30T21:07:10Z'), '2026-11-30T21:15:00.000Z');
    assert.equal(next('30 1-2 * * *', '2026-11-30T02:31:00Z'), '2026-12-01T01:30:00.000Z');
    assert.equal(next('0 0 1 * *', '2026-11-30T21:00:00Z'), '2026-12-01T00:00:00.000Z');
    // Sunday written as 0 or 7.
    assert.equal(next('0 4 * * 0', '2026-11-30T21:00:00Z'), '2026-12-06T04:00:00.000Z');
    assert.equal(next('0 4 * * 7', '2026-11-30T21:00:00Z'), '2026-12-06T04:00:00.000Z');
    // Both day fields restricted: either matches, as in cron.
    assert.equal(next('0 0 15 * 1', '2026-11-30T01:00:00Z'), '2026-12-07T00:00:00.000Z');
    assert.equal(next('0 0 29 2 *', '2026-03-01T00:00:00Z'), '2028-02-29T00:00:00.000Z');
  });

  it('refuses what is not cron, saying which field', () => {
    assert.throws(() => parseCron('0 3 * *'), /5 fields/);
    assert.throws(() => parseCron('61 * * * *'), /minute "61"/);
    assert.throws(() => parseCron('0 3 * * mon'), /day of week "mon"/);
    assert.throws(() => parseCron('0 0 31 2 *').next(new Date()), /never fires/);
  });
});

describe('backup retention (newest per day for N days, newest per ISO week for M weeks)', () => {
  const at = (iso: string, id = iso) => ({ id, createdAt: new Date(iso) });

  it('keeps the newest of each recent day and week, deletes the rest', () => {
    const backups = [
      at('2026-11-30T03:00:00Z'),
      at('2026-11-30T12:00:00Z'), // newest of Nov 30
      at('2026-11-29T03:00:00Z'),
      at('2026-11-28T03:00:00Z'),
      at('2026-11-20T03:00:00Z'), // a week back: kept as its week's newest
      at('2026-11-19T03:00:00Z'),
      at('2026-11-01T03:00:00Z'), // four weeks back: beyond keepWeekly 3
    ];
    const doomed = backupsToDelete(backups, 2, 3);
    assert.deepEqual(doomed.sort(), ['2026-11-01T03:00:00Z', '2026-11-19T03:00:00Z', '2026-11-28T03:00:00Z', '2026-11-30T03:00:00Z'].sort());
  });

  it('keeps nothing when told to keep nothing, and everything kept by either rule', () => {
    assert.equal(backupsToDelete([at('2026-11-30T03:00:00Z')], 0, 0).length, 1);
    assert.deepEqual(backupsToDelete([at('2026-11-30T03:00:00Z')], 0, 1), []);
  });
});

describe('backup manifest', () => {
  const manifest = () =>
    sealManifest({
      format: BACKUP_FORMAT,
      id: '20261130T030000Z-abcdef',
      createdAt: '2026-11-30T03:00:00.000Z',
      app: { version: '0.1.0', commit: null },
      migration: { latest: '2026112401_initial.ts', applied: 1 },
      profile: 'embedded',
      database: { backend: 'pglite', format: 'pglite_tar_gz', path: 'database.pglite.tar.gz' },
      vectors: { driver: 'usearch', collections: [] },
      files: [{ path: 'database.pglite.tar.gz', kind: 'database', size: 3, sha256: 'a'.repeat(64) }],
      bytes: 3,
    });

  it('round-trips, and an edited or cut manifest is refused with the reason', () => {
    const text = JSON.stringify(manifest());
    assert.ok('manifest' in parseManifest(text));
    assert.match((parseManifest(text.replace('"size":3', '"size":4')) as { problem: string }).problem, /own checksum/);
    assert.match((parseManifest(text.slice(0, 40)) as { problem: string }).problem, /not valid JSON/);
    assert.match((parseManifest(text.replace(BACKUP_FORMAT, 'other/1')) as { problem: string }).problem, /format/);
  });

  it('names backups so they sort by time and are valid object keys', () => {
    const a = newBackupId(new Date('2026-11-30T03:00:00Z'));
    const b = newBackupId(new Date('2026-11-30T03:00:01Z'));
    assert.match(a, BACKUP_ID);
    assert.ok(a < b);
  });
});
