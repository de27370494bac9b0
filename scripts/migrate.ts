import { loadConfig } from '../lib/config/env.ts';
import { migrateLatest, migrateRollbackAll, openDatabase } from '../lib/adapters/db/database.ts';

/** `npm run migrate` applies pending migrations; `npm run migrate -- --down` rolls all back. */
async function main(): Promise<void> {
  const config = loadConfig();
  const db = await openDatabase(config);
  try {
    if (process.argv.includes('--down')) {
      await migrateRollbackAll(db);
      process.stdout.write('rolled back every migration\n');
    } else {
      const applied = await migrateLatest(db);
      process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
    }
  } finally {
    await db.close();
  }
}

main().catch((err) => {
  process.stderr.write(`migrate: ${(err as Error).message}\n`);
  process.exit(1);
});
