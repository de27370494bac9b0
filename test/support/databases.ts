import { migrateLatest, openDatabase, type Database } from '../../lib/adapters/db/database.ts';
import { createTestDatabase, tempDir } from './services.ts';

export interface TestDatabase {
  name: 'postgres' | 'pglite';
  db: Database;
  dispose(): Promise<void>;
}

/** A migrated, empty database of each backend the product supports: real PostgreSQL and PGlite. */
export const DATABASE_BACKENDS: Array<{ name: TestDatabase['name']; open(): Promise<TestDatabase> }> = [
  {
    name: 'postgres',
    async open() {
      const created = await createTestDatabase();
      const db = await openDatabase({ db: { driver: 'pg', url: created.value, poolMax: 5, migrateOnStart: true }, dataDir: '' });
      await migrateLatest(db);
      return {
        name: 'postgres',
        db,
        async dispose() {
          await db.close();
          await created.dispose();
        },
      };
    },
  },
  {
    name: 'pglite',
    async open() {
      const dir = await tempDir('ragmesh-pglite-');
      const db = await openDatabase({ db: { driver: 'pglite', url: null, poolMax: 1, migrateOnStart: true }, dataDir: dir.value });
      await migrateLatest(db);
      return {
        name: 'pglite',
        db,
        async dispose() {
          await db.close();
          await dir.dispose();
        },
      };
    },
  },
];
