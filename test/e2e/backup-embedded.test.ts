import assert from 'node:assert/strict';
import { cp, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signAccessToken } from '../../lib/auth/jwt.ts';
import { loadConfig } from '../../lib/config/env.ts';
import { createLogger } from '../../lib/logging.ts';
import { ModelsRepository } from '../../lib/repositories/models.ts';
import { bootNode, type RunningNode } from '../../boot.ts';
import { textPdf } from '../fixtures/documents.ts';
import { captureState, type DeploymentState } from '../support/deployment-state.ts';
import { httpJson } from '../support/http.ts';
import { upload, waitForJob } from '../support/ingest.ts';
import { publishRandomBert } from '../support/models.ts';
import { runScript } from '../support/processes.ts';
import { tempDir, type Disposable } from '../support/services.ts';

async function boot(dataDir: string, backupDir: string): Promise<{ node: RunningNode; base: string }> {
  const env = { DATA_DIR: dataDir, BACKUP_DIR: backupDir, PORT: '0', LOG_LEVEL: 'warn' };
  const node = await bootNode(loadConfig(env), createLogger('warn'));
  return { node, base: `http://127.0.0.1:${node.httpPort}` };
}

/** Files under a folder, recursively (what "nothing was written" is checked against). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}

describe('backup and restore, embedded profile: a running node backed up, its DATA_DIR wiped, restored by the CLI', () => {
  let backupDir: Disposable<string>;
  let firstDir: Disposable<string>;
  let secondDir: Disposable<string>;
  let first: { node: RunningNode; base: string };
  let token: string;
  let backupId: string;
  let before_: DeploymentState;

  before(async () => {
    backupDir = await tempDir('ragmesh-backups-');
    firstDir = await tempDir();
    secondDir = await tempDir();
    first = await boot(firstDir.value, backupDir.value);
    token = await signAccessToken({ tenantId: 'acme', userId: 'ops', roles: ['admin', 'editor'] }, first.node.runtime.jwtSecret, { issuer: 'ragmesh', ttlSeconds: 3600 });

    const documents: Array<[string, Buffer]> = [
      ['handbook.pdf', await textPdf([['Leave', 'Every employee has twenty-eight vacation days a year.'], ['Office', 'The office opens at nine.']])],
      ['pumps.pdf', await textPdf([['Warranty', 'The warranty of centrifugal pumps lasts two years from delivery.']])],
      ['lease.pdf', await textPdf([['Договор', 'Арендная плата вносится до пятого числа каждого месяца.']])],
    ];
    for (const [name, content] of documents) {
      const res = await upload(first.base, token, { name, content }, { tags: 'backup-test' });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.equal((await waitForJob(first.base, token, res.body.job.id)).status, 'ready');
    }
    const chat = await httpJson(`${first.base}/api/v1/chats`, { method: 'POST', token, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title: 'Leave' }) });
    const answer = await fetch(`${first.base}/api/v1/chats/${chat.body.id}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify({ content: 'How many vacation days?' }),
    });
    assert.match(await answer.text(), /event: done/);

    // A second model version, registered but not switched: the registry and flags must survive too.
    const models = await first.node.runtime.stores.models();
    const staged = await tempDir('ragmesh-bert-');
    const manifest = await publishRandomBert(models, path.join(staged.value, 'bert'), { alias: 'bert', version: 'v2' });
    await new ModelsRepository((await first.node.runtime.stores.db()).knex).register(manifest);
    await staged.dispose();
    before_ = await captureState(first.base, token);
  });

  after(async () => {
    await first?.node.stop().catch(() => undefined);
    await backupDir?.dispose();
    await firstDir?.dispose();
    await secondDir?.dispose();
  });

  it('takes a verified backup through the admin route while the node serves', async () => {
    const res = await httpJson(`${first.base}/api/v1/admin/backups`, { method: 'POST', token });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    backupId = res.body.id;
    assert.ok(res.body.files >= 4 && res.body.bytes > 0);
    const listed = await httpJson(`${first.base}/api/v1/admin/backups`, { token });
    assert.deepEqual(listed.body.backups.map((b: { id: string }) => b.id), [backupId]);
    const manifest = JSON.parse(await readFile(path.join(backupDir.value, backupId, 'manifest.json'), 'utf8'));
    assert.equal(manifest.database.format, 'pglite_tar_gz');
    assert.ok(manifest.migration.latest, 'the manifest names the schema version');
    assert.ok(manifest.files.some((f: { kind: string }) => f.kind === 'secret'), 'the generated secrets are in the backup');
    const viewer = await signAccessToken({ tenantId: 'acme', userId: 'v', roles: ['viewer'] }, first.node.runtime.jwtSecret, { issuer: 'ragmesh', ttlSeconds: 60 });
    assert.equal((await httpJson(`${first.base}/api/v1/admin/backups`, { method: 'POST', token: viewer })).status, 403);
  });

  it('refuses a truncated backup and a flipped byte, writing nothing', async () => {
    const env = (dir: string) => ({ DATA_DIR: secondDir.value, BACKUP_DIR: dir, LOG_LEVEL: 'warn' });
    const manifest = JSON.parse(await readFile(path.join(backupDir.value, backupId, 'manifest.json'), 'utf8'));

    const truncated = await tempDir('ragmesh-truncated-');
    await cp(backupDir.value, truncated.value, { recursive: true });
    const dump = path.join(truncated.value, backupId, manifest.database.path);
    const size = (await stat(dump)).size;
    const handle = await open(dump, 'r+');
    await handle.truncate(Math.floor(size / 2));
    await handle.close();
    const t = await runScript('scripts/restore.ts', [backupId], env(truncated.value));
    assert.equal(t.code, 1, t.stderr);
    assert.match(t.stderr, /truncated/);

    const flipped = await tempDir('ragmesh-flipped-');
    await cp(backupDir.value, flipped.value, { recursive: true });
    const object = manifest.files.find((f: { kind: string }) => f.kind === 'object');
    const file = path.join(flipped.value, backupId, object.path);
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(file, bytes);
    const f = await runScript('scripts/restore.ts', [backupId], env(flipped.value));
    assert.equal(f.code, 1, f.stderr);
    assert.match(f.stderr, /does not match its SHA-256/);

    // Nothing of either attempt reached the deployment: no database, no object, no secret.
    assert.deepEqual(
      (await filesUnder(secondDir.value)).filter((p) => !p.startsWith(`objects${path.sep}.tmp`)),
      [],
    );
    await truncated.dispose();
    await flipped.dispose();
  });

  it('restores into a wiped DATA_DIR: documents, chunks, vectors, chats, model flags and search results are identical', async () => {
    await first.node.stop();
    const restored = await runScript('scripts/restore.ts', [backupId], { DATA_DIR: secondDir.value, BACKUP_DIR: backupDir.value, LOG_LEVEL: 'warn' });
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, new RegExp(`backup ${backupId} restored`));

    const second = await boot(secondDir.value, backupDir.value);
    try {
      // The restored secret signs as the old one did: the token from before still works.
      const after_ = await captureState(second.base, token);
      assert.deepEqual(after_, before_);
      assert.ok(Object.values(after_.chunks).every((c) => c.length > 0));
      assert.ok(Object.values(after_.searches).every((hits) => (hits as unknown[]).length > 0), 'every fixed search finds something, dense included');
    } finally {
      await second.node.stop();
    }

    const again = await runScript('scripts/restore.ts', [backupId], { DATA_DIR: secondDir.value, BACKUP_DIR: backupDir.value, LOG_LEVEL: 'warn' });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /empty deployment/);
  });
});
