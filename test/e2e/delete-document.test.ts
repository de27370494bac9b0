import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { Redis } from 'ioredis';
import { loadConfig } from '../../lib/config/env.ts';
import { createLogger } from '../../lib/logging.ts';
import { tenantScope } from '../../lib/ports/tenant-scope.ts';
import { collectionFor } from '../../lib/ports/vector-store.ts';
import { Stores } from '../../lib/runtime/stores.ts';
import { textPdf } from '../fixtures/documents.ts';
import { httpJson } from '../support/http.ts';
import { upload, waitForJob } from '../support/ingest.ts';
import { TestMesh } from '../support/mesh.ts';

/**
 * Retention: deleting a document over the mesh leaves nothing of it in any store —
 * rows in PostgreSQL, objects in S3, vectors, and cache keys in Redis — counted per
 * store before and after, with a second document left whole.
 */
describe('deleting a document removes it from every store (mesh)', () => {
  let mesh: TestMesh;
  let editor: string;
  let stores: Stores;
  let db: pg.Client;
  let redis: Redis;
  const ids: string[] = [];

  const count = async (documentId: string) => {
    const scope = tenantScope('acme');
    const rows: Record<string, number> = {};
    for (const table of ['documents', 'chunks']) {
      const column = table === 'documents' ? 'id' : 'document_id';
      rows[table] = Number((await db.query(`select count(*)::int as n from ${table} where tenant_id = 'acme' and ${column} = $1`, [documentId])).rows[0].n);
    }
    const objects = await stores.objects();
    const upload_ = (await db.query(`select object_key from documents where id = $1`, [documentId])).rows[0]?.object_key as string | undefined;
    let objectCount = 0;
    for await (const _ of objects.list(`tenants/acme/documents/${documentId}/`)) objectCount++;
    if (upload_ && (await objects.stat(upload_))) objectCount++;
    const { knex } = await stores.db();
    const active = await knex('model_flags').select('alias', 'active_version');
    let vectors = 0;
    for (const flag of active) {
      const ids_ = await (await stores.vectors()).documentIds(scope, collectionFor(flag.alias, flag.active_version)).catch(() => [] as string[]);
      vectors += ids_.includes(documentId) ? 1 : 0;
    }
    const keys = (await redis.keys(`${mesh.env.KV_PREFIX}*`)).filter((k) => k.includes(documentId)).length;
    return { rows: rows.documents! + rows.chunks!, objects: objectCount, vectors, cacheKeys: keys, uploadKey: upload_ };
  };

  before(async () => {
    mesh = await TestMesh.create();
    const admin = await mesh.token('acme', 'ops', 'admin');
    editor = await mesh.token('acme', 'alice', 'editor');
    await Promise.all([mesh.start('gateway', 'api'), mesh.start('models', 'emb,llm,analyze,maintenance'), mesh.start('worker', 'ingest')]);
    await mesh.waitForDiscovery(admin);
    for (const [name, text] of [['gone.pdf', 'The canteen serves soup on Fridays.'], ['kept.pdf', 'Parking permits are renewed every January.']] as const) {
      const res = await upload(mesh.apiUrl, editor, { name, content: await textPdf([['Notes', text]]) });
      assert.equal((await waitForJob(mesh.apiUrl, editor, res.body.job.id)).status, 'ready');
      ids.push(res.body.document.id);
    }
    // A cached answer citing the first document.
    const answer = await httpJson(`${mesh.apiUrl}/v1/chat/completions`, {
      method: 'POST',
      token: editor,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'ragmesh', messages: [{ role: 'user', content: 'When is soup served in the canteen?' }] }),
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    stores = new Stores(loadConfig(mesh.env), createLogger('warn'));
    db = new pg.Client({ connectionString: mesh.databaseUrl });
    await db.connect();
    redis = new Redis(mesh.env.REDIS_URL!);
  });
  after(async () => {
    await redis?.quit();
    await db?.end();
    await stores?.close();
    await mesh?.stop();
  });

  it('counts zero rows, objects, vectors and cache keys of it afterwards; the other document is whole', async () => {
    const [gone, kept] = ids as [string, string];
    const before_ = await count(gone);
    assert.ok(before_.rows >= 2 && before_.objects >= 2 && before_.vectors === 1 && before_.cacheKeys >= 1, JSON.stringify(before_));
    const keptBefore = await count(kept);

    const res = await httpJson(`${mesh.apiUrl}/api/v1/documents/${gone}`, { method: 'DELETE', token: editor });
    assert.equal(res.status, 200, JSON.stringify(res.body));

    const after_ = await count(gone);
    console.log(`per store before: ${JSON.stringify({ ...before_, uploadKey: undefined })}, after: ${JSON.stringify({ ...after_, uploadKey: undefined })}`);
    assert.deepEqual({ rows: after_.rows, objects: after_.objects, vectors: after_.vectors, cacheKeys: after_.cacheKeys }, { rows: 0, objects: 0, vectors: 0, cacheKeys: 0 });
    assert.equal(await (await stores.objects()).stat(before_.uploadKey!), null, 'the uploaded file is gone');
    const keptAfter = await count(kept);
    assert.deepEqual({ ...keptAfter, cacheKeys: 0 }, { ...keptBefore, cacheKeys: 0 });
  });
});
