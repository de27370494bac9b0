import { parseArgs } from 'node:util';
import { createBackup, deleteBackup, listBackups, verifyBackup } from '../lib/backup/backup.ts';
import { backupSources } from '../lib/backup/sources.ts';
import { loadConfig } from '../lib/config/env.ts';
import { ConfigError } from '../lib/errors.ts';
import { createLogger } from '../lib/logging.ts';
import { Stores } from '../lib/runtime/stores.ts';

const USAGE = `Usage: npm run backup -- [command] [options]

  (no command)      Take a backup now, verify it, print its id.
  list              The complete backups in the backup target, newest first.
  verify ID         Re-read every file of backup ID against its manifest (exit 1 when damaged).
  delete ID         Remove backup ID.

  --url URL --token T   Ask a running node (its api, admin token) instead of opening the stores here.
                        Needed for the embedded profile while \`npm start\` runs: only that process may
                        open DATA_DIR's database.
  --json                Machine-readable output.

The target is BACKUP_DRIVER/BACKUP_DIR/BACKUP_BUCKET (docs/config.md); restore with \`npm run restore\`.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { url: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [command = 'create', id] = positionals;
  const print = (human: string, data: unknown) => process.stdout.write(values.json ? `${JSON.stringify(data)}\n` : `${human}\n`);

  if (values.url) {
    if (!values.token) throw new UsageError('--url needs --token (an admin token: npm run -s token -- --tenant T --user U --role admin)');
    const api = new BackupApi(values.url, values.token);
    if (command === 'create') {
      const m = (await api.call('POST', '')) as { id: string; bytes: number; files: number };
      print(`backup ${m.id}: ${m.files} files, ${formatBytes(m.bytes)}, verified`, m);
    } else if (command === 'list') {
      const list = (await api.call('GET', '')) as { backups: Array<{ id: string; createdAt: string; bytes: number; files: number }> };
      print(list.backups.map((b) => `${b.id}  ${b.createdAt}  ${formatBytes(b.bytes)}  ${b.files} files`).join('\n') || 'no backups', list);
    } else {
      throw new UsageError(`"${command}" runs against the stores directly; leave out --url`);
    }
    return 0;
  }

  const config = loadConfig();
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, { mod: 'backup' });
  // A backup reads the schema as it is: never migrate from here.
  const stores = new Stores({ ...config, db: { ...config.db, migrateOnStart: false } }, logger);
  try {
    const target = await stores.backups();
    switch (command) {
      case 'create': {
        if (config.db.driver === 'pglite' && (await nodeAnswers(config.http.port))) {
          throw new UsageError(
            `a node is running on port ${config.http.port}: only it may open DATA_DIR's database. Run: npm run backup -- --url http://127.0.0.1:${config.http.port} --token "$(npm run -s token -- --tenant ops --user ops --role admin)"`,
          );
        }
        const manifest = await createBackup(await backupSources(stores, logger));
        print(`backup ${manifest.id}: ${manifest.files.length} files, ${formatBytes(manifest.bytes)}, verified`, manifest);
        return 0;
      }
      case 'list': {
        const list = await listBackups(target);
        print(list.map((b) => `${b.id}  ${b.createdAt}  ${formatBytes(b.bytes)}  ${b.files} files  app ${b.app}`).join('\n') || 'no backups', { backups: list });
        return 0;
      }
      case 'verify': {
        if (!id) throw new UsageError('verify needs a backup id');
        const { problems } = await verifyBackup(target, id);
        print(problems.length === 0 ? `backup ${id} is intact` : `backup ${id} is damaged:\n  ${problems.join('\n  ')}`, { id, ok: problems.length === 0, problems });
        return problems.length === 0 ? 0 : 1;
      }
      case 'delete': {
        if (!id) throw new UsageError('delete needs a backup id');
        await deleteBackup(target, id);
        print(`backup ${id} deleted`, { id, deleted: true });
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${command}"\n\n${USAGE}`);
    }
  } finally {
    await stores.close();
  }
}

class UsageError extends Error {}

class BackupApi {
  constructor(
    private readonly url: string,
    private readonly token: string,
  ) {}
  async call(method: string, suffix: string): Promise<unknown> {
    const res = await fetch(`${this.url.replace(/\/$/, '')}/api/v1/admin/backups${suffix}`, {
      method,
      headers: { authorization: `Bearer ${this.token}` },
    });
    const body = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } };
    if (!res.ok) throw new Error(`${res.status} ${body.error?.code ?? ''}: ${body.error?.message ?? 'no error body'}`);
    return body;
  }
}

async function nodeAnswers(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`backup: ${(err as Error).message}\n`);
    process.exit(err instanceof UsageError || err instanceof ConfigError ? 2 : 1);
  },
);
