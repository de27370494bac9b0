import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ServiceBroker } from 'moleculer';
import { loadConfig } from '../../lib/config/env.ts';
import { createLogger } from '../../lib/logging.ts';
import { TINY_BERT } from '../../test/support/tiny-bert.ts';
import { publishRandomBert } from '../../test/support/models.ts';
import { waitFor } from '../../test/support/processes.ts';
import { ModelsRepository } from '../../lib/repositories/models.ts';
import { Stores } from '../../lib/runtime/stores.ts';
import type { Runtime } from '../../lib/runtime/service-kit.ts';
import maintenanceService from '../maintenance/maintenance.service.ts';
import embService, { type EmbedResult } from './emb.service.ts';

const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

describe('emb service with model flags (PGlite + fs object store)', () => {
  let dataDir: string;
  let runtime: Runtime;
  let broker: ServiceBroker;
  let repo: ModelsRepository;

  async function publishTiny(version: string): Promise<void> {
    const manifest = await publishRandomBert(await runtime.stores.models(), path.join(dataDir, 'src', version), {
      alias: 'tiny',
      version,
      embed: { queryPrefix: 'query: ', passagePrefix: 'passage: ' },
    });
    await repo.register(manifest);
  }

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'emb-svc-'));
    const config = loadConfig({ DATA_DIR: dataDir, EMB_QUEUE_LIMIT: '6', EMB_MAX_BATCH: '4', EMB_THREADS: '1', LOG_LEVEL: 'fatal' });
    const logger = createLogger('fatal');
    runtime = { config, logger, stores: new Stores(config, logger), jwtSecret: 'x'.repeat(32) };
    repo = new ModelsRepository((await runtime.stores.db()).knex);
    broker = new ServiceBroker({ logger: false });
    broker.createService(embService(runtime));
    broker.createService(maintenanceService(runtime));
    await broker.start();
    await publishTiny('1');
    await publishTiny('2');
  });
  after(async () => {
    await broker?.stop();
    await runtime?.stores.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('bootstraps the bundled starter model on first start and embeds Russian and English', async () => {
    assert.equal((await repo.getFlag('starter-ngram'))?.activeVersion, '1');
    const res = await broker.call<EmbedResult, object>('emb.embed', { alias: 'starter-ngram', texts: ['поиск документов', 'document search'], kind: 'query' });
    assert.equal(res.version, '1');
    assert.equal(res.dimension, 1024);
    for (const v of res.vectors) assert.ok(Math.abs(norm(v) - 1) < 1e-5);
    const ready = await broker.call<{ ready: boolean; checks: Record<string, { ok: boolean }> }>('emb.readiness');
    assert.equal(ready.checks.models?.ok, true);
  });

  it('switch warms then swaps; the service picks it up without restart; rollback returns', async () => {
    await assert.rejects(broker.call('emb.embed', { alias: 'tiny', texts: ['x'] }), (err: Error & { type?: string }) => err.type === 'MODEL_NOT_LOADED');
    const first = await broker.call<{ from: string | null; to: string }, object>('maintenance.models.switch', { alias: 'tiny', version: '1' });
    assert.deepEqual([first.from, first.to], [null, '1']);
    // The broadcast is handled asynchronously; the switch already warmed the version.
    await waitFor('emb to serve tiny@1', async () => (await broker.call<EmbedResult, object>('emb.embed', { alias: 'tiny', texts: ['a'] })).version === '1', 5000);
    const one = await broker.call<EmbedResult, object>('emb.embed', { alias: 'tiny', texts: ['hello world', 'привет мир'], kind: 'passage' });
    assert.equal(one.dimension, TINY_BERT.hidden);
    assert.equal(one.vectors.length, 2);
    for (const v of one.vectors) assert.equal(v.length, TINY_BERT.hidden);

    await broker.call('maintenance.models.switch', { alias: 'tiny', version: '2' });
    await waitFor('emb to serve tiny@2', async () => (await broker.call<EmbedResult, object>('emb.embed', { alias: 'tiny', texts: ['a'] })).version === '2', 5000);
    assert.deepEqual(await repo.getFlag('tiny').then((f) => [f?.activeVersion, f?.previousVersion]), ['2', '1']);
    // A caller that pinned the previous version gets exactly that version: it stays live
    // beside the new one (ingest keeps its collection current, so rollback is instant).
    assert.equal((await broker.call<EmbedResult, object>('emb.embed', { alias: 'tiny', texts: ['a'], version: '1' })).version, '1');
    // A version that is neither active, previous nor being built is refused.
    await assert.rejects(broker.call('emb.embed', { alias: 'tiny', texts: ['a'], version: '9' }), (err: Error & { type?: string }) => err.type === 'MODEL_VERSION_MISMATCH');

    const back = await broker.call<{ from: string | null; to: string }, object>('maintenance.models.rollback', { alias: 'tiny' });
    assert.deepEqual([back.from, back.to], ['2', '1']);
    await waitFor('emb to serve tiny@1', async () => (await broker.call<EmbedResult, object>('emb.embed', { alias: 'tiny', texts: ['a'] })).version === '1', 5000);
    const audit = await (await runtime.stores.db()).knex('audit_log').whereNull('tenant_id').orderBy('id');
    assert.deepEqual(audit.map((r: { action: string; target: string }) => `${r.action} ${r.target}`), ['models.switch tiny@1', 'models.switch tiny@2', 'models.rollback tiny@1']);
  });

  it('a tampered version is refused at warm-up: the flag does not move and the old version keeps serving', async () => {
    await publishTiny('3');
    const store = await runtime.stores.models();
    const body = await readFile(path.join(dataDir, 'src', '3', 'tokenizer.json'), 'utf8');
    await store.put('tiny/3/tokenizer.json', Buffer.from(body.replace('"[UNK]"', '"[UN?]"')));
    await assert.rejects(broker.call('maintenance.models.switch', { alias: 'tiny', version: '3' }), (err: Error & { type?: string }) => err.type === 'MODEL_INTEGRITY' && /tokenizer\.json/.test(err.message));
    assert.equal((await repo.getFlag('tiny'))?.activeVersion, '1');
    assert.equal((await broker.call<EmbedResult, object>('emb.embed', { alias: 'tiny', texts: ['still here'] })).version, '1');
  });

  it('a full queue answers the retryable OVERLOADED error', async () => {
    const calls = Array.from({ length: 12 }, (_, i) => broker.call<EmbedResult, object>('emb.embed', { alias: 'tiny', texts: [`sentence number ${i}`] }));
    const settled = await Promise.allSettled(calls);
    const rejected = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    assert.ok(rejected.length > 0, 'some calls must be refused with a queue limit of 6');
    for (const r of rejected) {
      assert.equal(r.reason.type, 'OVERLOADED');
      assert.equal(r.reason.code, 503);
      assert.equal(r.reason.retryable, true);
    }
    assert.ok(settled.some((s) => s.status === 'fulfilled'));
  });

  it('lists loaded models and registered versions', async () => {
    const loaded = await broker.call<Array<{ alias: string; version: string }>>('emb.models');
    assert.deepEqual(loaded.map((m) => `${m.alias}@${m.version}`).sort(), ['starter-ngram@1', 'tiny@1']);
    const listed = await broker.call<Array<{ alias: string; activeVersion: string; versions: unknown[] }>>('maintenance.models.list');
    const tiny = listed.find((m) => m.alias === 'tiny')!;
    assert.equal(tiny.activeVersion, '1');
    assert.equal(tiny.versions.length, 3);
  });

  it('refuses registering different bytes under an existing version', async () => {
    const row = (await repo.get('tiny', '1'))!;
    await assert.rejects(repo.register({ ...row.manifest, files: row.manifest.files.map((f) => ({ ...f, sha256: 'f'.repeat(64) })) }), (err: Error & { type?: string }) => err.type === 'MODEL_VERSION_EXISTS');
  });
});
