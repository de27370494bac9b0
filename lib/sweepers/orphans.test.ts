import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { tenantScope } from '../ports/tenant-scope.ts';
import { collectionFor } from '../ports/vector-store.ts';
import { ModelsRepository } from '../repositories/models.ts';
import { SweepsRepository } from '../repositories/sweeps.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../../test/support/embedded.ts';
import { httpJson } from '../../test/support/http.ts';
import { upload, waitForJob } from '../../test/support/ingest.ts';

/**
 * The maintenance sweepers on an embedded node, with faults injected the way a crash
 * leaves them: an upload abandoned after its presigned PUT, an artifact and vectors
 * of a document that no longer exists, a row whose object is gone, an idle chat.
 * Each is swept or reported, and nothing live is touched.
 */
describe('orphan and retention sweepers (maintenance service, embedded node)', () => {
  let node: EmbeddedNode;
  let editor: string;
  let admin: string;
  const live: Array<{ documentId: string; objectKey: string }> = [];

  before(async () => {
    node = await startEmbeddedNode({ ORPHAN_MIN_AGE_HOURS: '0', ORPHAN_SWEEP_INTERVAL_MINUTES: '0' });
    editor = await node.token(['editor']);
    admin = await node.token(['admin'], 'ops');
    for (const [name, text] of [['a.txt', 'The canteen serves soup on Fridays.'], ['b.txt', 'Parking permits are renewed every January.']] as const) {
      const res = await upload(node.base, editor, { name, content: text });
      assert.equal((await waitForJob(node.base, editor, res.body.job.id)).status, 'ready');
      live.push({ documentId: res.body.document.id, objectKey: '' });
    }
    const { knex } = await node.node.runtime.stores.db();
    for (const doc of live) doc.objectKey = (await knex('documents').where({ id: doc.documentId }).first('object_key')).object_key;
  });
  after(() => node.stop());

  it('removes an abandoned presigned upload, an orphaned artifact and orphaned vectors; keeps everything live', async () => {
    const runtime = node.node.runtime;
    const objects = await runtime.stores.objects();
    const vectors = await runtime.stores.vectors();
    const { knex } = await runtime.stores.db();
    const scope = tenantScope('acme');
    const [active] = await new ModelsRepository(knex).listActive('embed');
    const collection = collectionFor(active!.flag.alias, active!.flag.activeVersion);

    // An upload whose PUT went through and whose completion never came.
    const created = await httpJson(`${node.base}/api/v1/uploads`, { method: 'POST', token: editor });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const put = await fetch(`${node.base}${created.body.url}`, { method: 'PUT', body: 'abandoned bytes', headers: { 'Content-Length': '15' } });
    assert.equal(put.status < 300, true, await put.text());
    const abandoned = `tenants/acme/uploads/${created.body.uploadId}`;
    assert.ok(await objects.stat(abandoned), 'the abandoned upload is in the bucket');

    // What a crash mid-delete leaves: an artifact and vectors of a document that is gone.
    const ghost = randomUUID();
    await objects.put(`tenants/acme/documents/${ghost}/v1/chunks.json`, Buffer.from('[]'));
    const dimension = active!.model.manifest.embed!.dimension;
    await vectors.upsert(scope, collection, [
      {
        id: randomUUID(),
        vector: Array.from({ length: dimension }, (_, i) => (i === 1 ? 1 : 0)),
        payload: {
          source_id: 'ghost', document_id: ghost, chunk_id: randomUUID(), page: 1, lang: 'en', mime: 'text/plain', version: 1,
          updated_at: new Date().toISOString(), tags: [], embed_model_alias: active!.flag.alias, embed_model_version: active!.flag.activeVersion,
        },
      },
    ]);
    const liveVectors = (await vectors.count(scope, collection)) - 1;

    const swept = await httpJson(`${node.base}/api/v1/admin/sweeps`, { method: 'POST', token: admin });
    assert.equal(swept.status, 200, JSON.stringify(swept.body));
    assert.deepEqual(
      { uploads: swept.body.uploadsRemoved, artifacts: swept.body.artifactsRemoved, vectors: swept.body.vectorsRemoved, missing: swept.body.rowsMissingObject },
      { uploads: 1, artifacts: 1, vectors: 1, missing: [] },
    );
    assert.equal(await objects.stat(abandoned), null);
    assert.equal(await objects.stat(`tenants/acme/documents/${ghost}/v1/chunks.json`), null);
    assert.equal(await vectors.count(scope, collection), liveVectors);
    assert.deepEqual((await vectors.documentIds(scope, collection)).sort(), live.map((d) => d.documentId).sort());
    for (const doc of live) assert.ok(await objects.stat(doc.objectKey), 'live uploads stay');
    const search = await httpJson(`${node.base}/api/v1/search`, { method: 'POST', token: editor, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ query: 'canteen soup', mode: 'dense' }) });
    assert.equal(search.body.hits[0]?.documentId, live[0]!.documentId);

    // A second sweep finds nothing more.
    const again = await httpJson(`${node.base}/api/v1/admin/sweeps`, { method: 'POST', token: admin });
    assert.deepEqual([again.body.uploadsRemoved, again.body.artifactsRemoved, again.body.vectorsRemoved], [0, 0, 0]);
    assert.equal((await httpJson(`${node.base}/api/v1/admin/sweeps`, { method: 'POST', token: editor })).status, 403);
  });

  it('reports, and does not remove, a document whose upload object is gone', async () => {
    const objects = await node.node.runtime.stores.objects();
    const [doc] = live;
    const bytes = await objects.get(doc!.objectKey);
    const chunks: Buffer[] = [];
    for await (const c of bytes) chunks.push(c as Buffer);
    await objects.delete(doc!.objectKey);
    try {
      const swept = await httpJson(`${node.base}/api/v1/admin/sweeps`, { method: 'POST', token: admin });
      assert.deepEqual(swept.body.rowsMissingObject, [doc!.documentId]);
      assert.equal((await httpJson(`${node.base}/api/v1/documents/${doc!.documentId}`, { token: editor })).status, 200);
    } finally {
      await objects.put(doc!.objectKey, Buffer.concat(chunks));
    }
  });

  it('deletes chats idle past their tenant\'s retention, and only those', async () => {
    const json = { 'Content-Type': 'application/json' };
    const old = await httpJson(`${node.base}/api/v1/chats`, { method: 'POST', token: editor, headers: json, body: JSON.stringify({ title: 'old' }) });
    const fresh = await httpJson(`${node.base}/api/v1/chats`, { method: 'POST', token: editor, headers: json, body: JSON.stringify({ title: 'fresh' }) });
    const { knex } = await node.node.runtime.stores.db();
    // Injected: a chat last touched 40 days ago, in a tenant that keeps chats 30 days.
    await knex('chats').where({ id: old.body.id }).update({ updated_at: new Date(Date.now() - 40 * 86_400_000) });
    await new SweepsRepository(knex).setChatRetention('acme', 30);
    const swept = await httpJson(`${node.base}/api/v1/admin/sweeps`, { method: 'POST', token: admin });
    assert.equal(swept.body.chatsDeleted, 1);
    assert.equal((await httpJson(`${node.base}/api/v1/chats/${old.body.id}`, { token: editor })).status, 404);
    assert.equal((await httpJson(`${node.base}/api/v1/chats/${fresh.body.id}`, { token: editor })).status, 200);
  });
});
