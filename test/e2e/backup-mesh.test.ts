import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { loadConfig } from '../../lib/config/env.ts';
import { createLogger } from '../../lib/logging.ts';
import { ModelsRepository } from '../../lib/repositories/models.ts';
import { Stores } from '../../lib/runtime/stores.ts';
import { textPdf } from '../fixtures/documents.ts';
import { captureState, type DeploymentState } from '../support/deployment-state.ts';
import { httpJson } from '../support/http.ts';
import { upload, waitForJob } from '../support/ingest.ts';
import { TestMesh } from '../support/mesh.ts';
import { publishRandomBert } from '../support/models.ts';
import { runScript } from '../support/processes.ts';
import { tempDir } from '../support/services.ts';

/**
 * Backup and restore over the mesh: the maintenance service (its own process) dumps
 * PostgreSQL with pg_dump and copies both buckets into the backup bucket on S3; then
 * every store is wiped (schema dropped, buckets emptied, Redis keys gone) and
 * `npm run restore` brings the deployment back.
 */
describe('backup and restore over the mesh (PostgreSQL, S3, Redis, RabbitMQ)', () => {
  let mesh: TestMesh;
  let admin: string;
  let backupId: string;
  let before_: DeploymentState;

  const startAll = async () => {
    await Promise.all([mesh.start('gateway', 'api'), mesh.start('models', 'emb,llm,analyze,maintenance'), mesh.start('worker', 'ingest')]);
    await mesh.waitForDiscovery(admin);
  };
  const stopAll = async () => {
    await Promise.all(mesh.processes.map((p) => p.stop()));
    mesh.processes.length = 0;
  };

  before(async () => {
    mesh = await TestMesh.create();
    admin = await mesh.token('acme', 'ops', 'admin,editor');
    await startAll();
    for (const [name, content] of [
      ['handbook.pdf', await textPdf([['Leave', 'Every employee has twenty-eight vacation days a year.']])],
      ['pumps.pdf', await textPdf([['Warranty', 'The warranty of centrifugal pumps lasts two years from delivery.']])],
      ['lease.pdf', await textPdf([['Договор', 'Арендная плата вносится до пятого числа каждого месяца.']])],
    ] as const) {
      const res = await upload(mesh.apiUrl, admin, { name, content });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.equal((await waitForJob(mesh.apiUrl, admin, res.body.job.id)).status, 'ready');
    }
    const chat = await httpJson(`${mesh.apiUrl}/api/v1/chats`, { method: 'POST', token: admin, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title: 'Leave' }) });
    const answer = await fetch(`${mesh.apiUrl}/api/v1/chats/${chat.body.id}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify({ content: 'How many vacation days?' }),
    });
    assert.match(await answer.text(), /event: done/);

    const stores = new Stores(loadConfig(mesh.env), createLogger('warn'));
    const staged = await tempDir('ragmesh-bert-');
    try {
      const manifest = await publishRandomBert(await stores.models(), path.join(staged.value, 'bert'), { alias: 'bert', version: 'v2' });
      await new ModelsRepository((await stores.db()).knex).register(manifest);
    } finally {
      await stores.close();
      await staged.dispose();
    }
    before_ = await captureState(mesh.apiUrl, admin);
  });
  after(() => mesh?.stop());

  it('backs up through the admin route, run by the maintenance process', async () => {
    const res = await httpJson(`${mesh.apiUrl}/api/v1/admin/backups`, { method: 'POST', token: admin });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    backupId = res.body.id;
    const listed = await runScript('scripts/backup.ts', ['list', '--json'], mesh.env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout).backups.map((b: { id: string }) => b.id), [backupId]);
    const verified = await runScript('scripts/backup.ts', ['verify', backupId], mesh.env);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  });

  it('restores into the wiped stores: the same documents, chunks, vectors, chats, model flags and search results', async () => {
    await stopAll();
    // Wipe every store the deployment had.
    const db = new pg.Client({ connectionString: mesh.databaseUrl });
    await db.connect();
    await db.query('drop schema public cascade; create schema public');
    await db.end();
    const config = loadConfig(mesh.env);
    const stores = new Stores(config, createLogger('warn'));
    for (const bucket of [await stores.objects(), await stores.models()]) {
      const keys: string[] = [];
      for await (const info of bucket.list('')) keys.push(info.key);
      for (const key of keys) await bucket.delete(key);
    }
    await stores.close();
    const redis = new Redis(config.kv.url!);
    const keys = await redis.keys(`${config.kv.prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();

    const restored = await runScript('scripts/restore.ts', [backupId], mesh.env);
    assert.equal(restored.code, 0, restored.stderr);
    await startAll();
    assert.deepEqual(await captureState(mesh.apiUrl, admin), before_);
  });
});
