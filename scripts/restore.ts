import { parseArgs } from 'node:util';
import { BackupError, restoreBackup } from '../lib/backup/backup.ts';
import { restoreTarget } from '../lib/backup/sources.ts';
import { loadConfig } from '../lib/config/env.ts';
import { ConfigError } from '../lib/errors.ts';
import { createLogger } from '../lib/logging.ts';
import { Stores } from '../lib/runtime/stores.ts';
import { FsObjectStore } from '../lib/adapters/objects/fs.ts';
import path from 'node:path';

const USAGE = `Usage: npm run restore -- ID [--from DIR] [--json]

Restores backup ID into this deployment, which must be empty (no database tables,
empty buckets; embedded: no DATA_DIR/pg). Every checksum is checked before anything
is written; then the schema is migrated to this version of ragmesh. Stop the nodes
first, restore, then start them.

  --from DIR   Read the backup from this folder instead of the configured backup target.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { from: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
  });
  const [id] = positionals;
  if (values.help || !id) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const config = loadConfig();
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, { mod: 'restore' });
  const stores = new Stores(config, logger);
  try {
    const source = values.from ? new FsObjectStore(path.dirname(path.resolve(values.from)), path.basename(path.resolve(values.from))) : await stores.backups();
    const manifest = await restoreBackup(source, id, await restoreTarget(stores, logger));
    const out = { id, restored: true, files: manifest.files.length, bytes: manifest.bytes, from: manifest.app.version };
    process.stdout.write(values.json ? `${JSON.stringify(out)}\n` : `backup ${id} restored (${manifest.files.length} files, written by ragmesh ${manifest.app.version})\n`);
    return 0;
  } catch (err) {
    if (err instanceof BackupError) {
      process.stderr.write(values.json ? `${JSON.stringify({ id, restored: false, problems: err.problems })}\n` : `restore: ${err.headline}\n  ${err.problems.join('\n  ')}\n`);
      return 1;
    }
    throw err;
  } finally {
    await stores.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`restore: ${(err as Error).message}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
