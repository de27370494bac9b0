import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { freePort, waitFor } from '../../test/support/processes.ts';
import { startS3Server } from '../../test/support/s3-server.ts';
import { openDatabase } from './db/database.ts';
import { degradations, whenUp } from './dependency-health.ts';
import { degradable } from './kv/degradable.ts';
import { RedisKeyValueStore } from './kv/redis.ts';
import { S3ObjectStore } from './objects/s3.ts';
import { registerDependencyMetrics } from '../metrics/dependencies.ts';
import { Metrics } from '../metrics/metrics.ts';

/**
 * Each adapter facing its server gone: the failure is a retryable 503 with a stable
 * code, raised at once (not after a hang), the adapter's health goes down, and it
 * comes back up by itself. Servers here are private ones (a redis-server and an S3
 * server of this test, a port nothing listens on), so the machine's shared services
 * are never touched; the fault suite (test/faults/) does that on the whole mesh.
 */

const statusOf = (err: unknown) => ({ code: (err as { code?: number }).code, type: (err as { type?: string }).type, retryable: (err as { retryable?: boolean }).retryable });

function startRedis(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
}

describe('outages at the adapters', () => {
  const cleanups: Array<() => unknown> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('PostgreSQL unreachable: DATABASE_UNAVAILABLE at once, health down, then up when it answers', async () => {
    const port = await freePort();
    const db = await openDatabase({ db: { driver: 'pg', url: `postgres://postgres@127.0.0.1:${port}/test`, poolMax: 2, migrateOnStart: false }, dataDir: '' });
    cleanups.push(() => db.close());
    const err = await db.knex.raw('select 1').then(() => null, (e: unknown) => e);
    assert.deepEqual(statusOf(err), { code: 503, type: 'DATABASE_UNAVAILABLE', retryable: true });
    assert.equal(db.health.up, false);
    // Transactions go through the same classifying client.
    const trxErr = await db.knex.transaction(async (trx) => trx.raw('select 1')).then(() => null, (e: unknown) => e);
    assert.equal(statusOf(trxErr).type, 'DATABASE_UNAVAILABLE');
    // A statement error is not an outage.
    const real = await openDatabase({ db: { driver: 'pg', url: 'postgres://postgres@127.0.0.1:5432/test', poolMax: 1, migrateOnStart: false }, dataDir: '' });
    cleanups.push(() => real.close());
    const syntax = await real.knex.raw('selec 1').then(() => null, (e: unknown) => e);
    assert.equal((syntax as { code?: string }).code, '42601');
    assert.equal(real.health.up, true);
  });

  it('Redis gone and back: KV_UNAVAILABLE at once, degradable views fall back and are counted, health recovers', async () => {
    const port = await freePort();
    let server = startRedis(port);
    cleanups.push(() => server.kill('SIGKILL'));
    const kv = await waitFor('the private redis-server', () => RedisKeyValueStore.connect(`redis://127.0.0.1:${port}/0`, 't:'), 10_000);
    cleanups.push(() => kv.close());
    await kv.set('k', 'v');
    assert.equal(await kv.get('k'), 'v');

    server.kill('SIGKILL');
    await new Promise((r) => server.once('exit', r));
    const err = await waitFor('a failed command', () => kv.get('k').then(() => null, (e: unknown) => e), 5000);
    assert.deepEqual(statusOf(err), { code: 503, type: 'KV_UNAVAILABLE', retryable: true });
    assert.equal(kv.health.up, false);

    const before = degradations.snapshot();
    const cache = degradable(kv, 'test-cache', { cache: true });
    await cache.set('answer', 'x');
    assert.equal(await cache.get('answer'), null, 'a cache without Redis misses');
    const cap = degradable(kv, 'test-cap');
    assert.equal(await cap.setIfAbsent('slot', 'a', 5000), true);
    assert.equal(await cap.setIfAbsent('slot', 'b', 5000), false, 'the cap still holds within this process');
    assert.equal(await cap.incrementInWindow('rate', 60_000), 1);
    assert.equal(await cap.incrementInWindow('rate', 60_000), 2);
    const after = degradations.snapshot();
    assert.equal((after['kv:test-cache'] ?? 0) - (before['kv:test-cache'] ?? 0), 2);
    assert.equal((after['kv:test-cap'] ?? 0) - (before['kv:test-cap'] ?? 0), 4);
    // The same counts, as the metric /metrics exposes.
    const metrics = new Metrics({ service: 'test' });
    registerDependencyMetrics(metrics);
    const { body } = await metrics.render();
    assert.match(body, new RegExp(`ragmesh_degraded_operations_total\\{[^}]*dependency="kv",use="test-cap"[^}]*\\} ${after['kv:test-cap']}`));

    server = startRedis(port);
    await whenUp([kv.health], async () => undefined);
    assert.equal(kv.health.up, true);
    await waitFor('commands to work again', async () => (await kv.set('k2', 'v2').then(() => true, () => false)), 10_000);
    assert.equal(await kv.get('k2'), 'v2');
  });

  it('Redis paused (CLIENT PAUSE): a command gives up after the command timeout instead of waiting', async () => {
    const port = await freePort();
    const server = startRedis(port);
    cleanups.push(() => server.kill('SIGKILL'));
    const kv = await waitFor('the private redis-server', () => RedisKeyValueStore.connect(`redis://127.0.0.1:${port}/0`, 't:'), 10_000);
    cleanups.push(() => kv.close());
    const admin = spawn('redis-cli', ['-p', String(port), 'client', 'pause', '3000', 'all'], { stdio: 'ignore' });
    await new Promise((r) => admin.once('exit', r));
    const err = await kv.get('k').then(() => null, (e: unknown) => e);
    assert.equal(statusOf(err).type, 'KV_UNAVAILABLE');
    // The pause ends by itself; commands answer again.
    await waitFor('the pause to end', async () => (await kv.get('k').then(() => true, () => false)), 10_000);
  });

  it('S3 gone: OBJECTS_UNAVAILABLE at once, missing objects still 404', async () => {
    const s3 = await startS3Server();
    const store = new S3ObjectStore(s3.config, 'outage-test');
    cleanups.push(() => store.close());
    await store.ensureBucket();
    await store.put('a/b.txt', Buffer.from('x'));
    assert.equal(await store.stat('a/none.txt'), null);
    await s3.stop();
    const err = await store.put('a/c.txt', Buffer.from('y')).then(() => null, (e: unknown) => e);
    assert.deepEqual(statusOf(err), { code: 503, type: 'OBJECTS_UNAVAILABLE', retryable: true });
    assert.equal(statusOf(await store.get('a/b.txt').then(() => null, (e: unknown) => e)).type, 'OBJECTS_UNAVAILABLE');
    assert.equal(store.health.up, false);
  });
});
