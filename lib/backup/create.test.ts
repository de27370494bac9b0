import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { migrateLatest, openDatabase } from '../adapters/db/database.ts';
import { dumpDatabase, restoreDatabase } from '../adapters/db/dump.ts';
import { loadConfig } from '../config/env.ts';
import { createLogger } from '../logging.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { Stores } from '../runtime/stores.ts';
import { readAll } from '../streams.ts';
import { createTestDatabase, tempDir, type Disposable } from '../../test/support/services.ts';
import { BackupError, createBackup, verifyBackup, type BackupSources } from './backup.ts';
import { backupSources } from './sources.ts';

/** A backup target that stores other bytes than it is given for the keys `damaged` picks (a bad disk, a broken proxy). */
function damaging(inner: ObjectStore, damaged: (key: string) => boolean): ObjectStore {
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'put') {
        return async (key: string, body: Parameters<ObjectStore['put']>[1], options?: Parameters<ObjectStore['put']>[2]) => {
          if (!damaged(key)) return target.put(key, body, options);
          const bytes = Buffer.from(Buffer.isBuffer(body) ? body : await readAll(body));
          bytes[bytes.length >> 1]! ^= 0x01;
          return target.put(key, bytes, options);
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

async function keysOf(store: ObjectStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list('')) keys.push(info.key);
  return keys;
}

describe('createBackup reads every file back', () => {
  let database: Disposable<string>;
  let dataDir: Disposable<string>;
  let stores: Stores;
  let sources: BackupSources;
  // Empty, small, exactly a scratch buffer's first size, and large enough to stream.
  const objects: Record<string, Buffer> = {
    'tenants/acme/uploads/empty': Buffer.alloc(0),
    'tenants/acme/uploads/small.txt': Buffer.from('договор аренды'),
    'tenants/acme/uploads/block.bin': Buffer.alloc(64 * 1024, 3),
    'tenants/acme/uploads/large.bin': Buffer.alloc(5 * 1024 * 1024 + 7, 5),
  };

  before(async () => {
    database = await createTestDatabase();
    dataDir = await tempDir('ragmesh-backup-create-');
    const config = loadConfig({
      DB_DRIVER: 'pg',
      DATABASE_URL: database.value,
      DATA_DIR: dataDir.value,
      BACKUP_DIR: path.join(dataDir.value, 'backups'),
      VECTORS_DRIVER: 'postgres',
      LOG_LEVEL: 'warn',
    });
    stores = new Stores(config, createLogger('warn'));
    await stores.db();
    const bucket = await stores.objects();
    for (const [key, body] of Object.entries(objects)) await bucket.put(key, body);
    sources = await backupSources(stores, createLogger('warn'));
  });
  after(async () => {
    await stores.close();
    await dataDir.dispose();
    await database.dispose();
  });

  it('lists every object with the size and SHA-256 of its source, and the backup verifies in full', async () => {
    const manifest = await createBackup(sources);
    for (const [key, body] of Object.entries(objects)) {
      const file = manifest.files.find((f) => f.kind === 'object' && f.key === key);
      assert.ok(file, `${key} is in the manifest`);
      assert.equal(file.size, body.length);
      assert.equal(file.sha256, createHash('sha256').update(body).digest('hex'), key);
      assert.ok((await readAll(await sources.target.get(`${manifest.id}/${file.path}`))).equals(body), `${key} is copied as it was`);
    }
    assert.deepEqual(await verifyBackup(sources.target, manifest.id), { manifest, problems: [] });
  });

  it('dumps the database as it was when dumpDatabase returned (objects are copied from then on)', async () => {
    const { knex } = await stores.db();
    await knex('tenants').insert({ id: 'before', name: 'before' });
    const dump = await dumpDatabase(sources.db, sources.config);
    // Written after the snapshot, while pg_dump is still starting: not in the dump.
    await knex('tenants').insert({ id: 'after', name: 'after' });
    const bytes = await readAll(dump.stream);
    await dump.finished;

    const restored = await createTestDatabase();
    try {
      const config = { db: { driver: 'pg' as const, url: restored.value, poolMax: 3, migrateOnStart: false }, dataDir: '' };
      await restoreDatabase(config, dump.format, Readable.from([bytes]));
      const db = await openDatabase(config);
      try {
        await migrateLatest(db);
        const ids = (await db.knex('tenants').select('id').orderBy('id')).map((r: { id: string }) => r.id);
        assert.ok(ids.includes('before'));
        assert.ok(!ids.includes('after'), 'a row committed after dumpDatabase returned is not in the dump');
      } finally {
        await db.close();
      }
    } finally {
      await restored.dispose();
    }
  });

  for (const [what, key] of [
    ['an object copied whole', 'tenants/acme/uploads/block.bin'],
    ['an object streamed', 'tenants/acme/uploads/large.bin'],
  ] as const) {
    it(`fails, and leaves nothing, when ${what} reads back other than it was written`, async () => {
      const before = await keysOf(sources.target);
      const target = damaging(sources.target, (k) => k.endsWith(`/objects/objects/${key}`));
      await assert.rejects(
        () => createBackup({ ...sources, target }),
        (err: unknown) => err instanceof BackupError && /did not read back/.test(err.message) && err.problems.some((p) => p.includes(`objects/objects/${key}`)),
      );
      assert.deepEqual(await keysOf(sources.target), before, 'the failed backup was removed');
    });
  }
});
