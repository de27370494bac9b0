import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { httpJson } from '../../../test/support/http.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../../../test/support/embedded.ts';
import { upload, waitForJob } from '../../../test/support/ingest.ts';

const json = (body: unknown) => ({ headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

describe('maintenance mode (embedded node)', () => {
  let embedded: EmbeddedNode;
  let admin: string;
  let editor: string;
  let documentId: string;

  before(async () => {
    embedded = await startEmbeddedNode();
    admin = await embedded.token(['admin'], 'ops');
    editor = await embedded.token(['editor']);
    const res = await upload(embedded.base, editor, { name: 'a.txt', content: 'The canteen serves soup on Fridays.' });
    assert.equal((await waitForJob(embedded.base, editor, res.body.job.id)).status, 'ready');
    documentId = res.body.document.id;
  });
  after(() => embedded.stop());

  it('only an admin switches it; it shows in /api/version and /api/v1/status', async () => {
    const base = embedded.base;
    assert.equal((await httpJson(`${base}/api/v1/admin/maintenance`, { method: 'PUT', token: editor, ...json({ enabled: true }) })).status, 403);
    const on = await httpJson(`${base}/api/v1/admin/maintenance`, { method: 'PUT', token: admin, ...json({ enabled: true, reason: 'upgrade to 0.2' }) });
    assert.equal(on.status, 200, JSON.stringify(on.body));
    assert.equal(on.body.enabled, true);
    const version = await httpJson(`${base}/api/version`);
    assert.deepEqual({ enabled: version.body.maintenance.enabled, reason: version.body.maintenance.reason, by: version.body.maintenance.by }, { enabled: true, reason: 'upgrade to 0.2', by: 'ops' });
    assert.equal((await httpJson(`${base}/api/v1/status`, { token: admin })).body.maintenance.enabled, true);
  });

  it('refuses writes with 503 MAINTENANCE and Retry-After, changing nothing; reads and search go on', async () => {
    const base = embedded.base;
    const before_ = (await httpJson(`${base}/api/v1/documents`, { token: editor })).body.items.length;
    const refusedUpload = await upload(base, editor, { name: 'b.txt', content: 'Written during maintenance.' });
    assert.equal(refusedUpload.status, 503);
    assert.equal(refusedUpload.body.error.code, 'MAINTENANCE');
    assert.equal(refusedUpload.body.error.retryable, true);
    assert.ok(Number(refusedUpload.headers.get('retry-after')) > 0);
    for (const [method, path, body] of [
      ['DELETE', `/api/v1/documents/${documentId}`, undefined],
      ['POST', '/api/v1/chats', { title: 'x' }],
      ['POST', '/api/v1/uploads', { filename: 'c.txt', size: 3 }],
    ] as const) {
      const res = await httpJson(`${base}${path}`, { method, token: editor, ...(body ? json(body) : {}) });
      assert.equal(res.status, 503, `${method} ${path}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'MAINTENANCE');
    }
    assert.equal((await httpJson(`${base}/api/v1/documents`, { token: editor })).body.items.length, before_);
    assert.equal((await httpJson(`${base}/api/v1/documents/${documentId}`, { token: editor })).status, 200);
    const search = await httpJson(`${base}/api/v1/search`, { method: 'POST', token: editor, ...json({ query: 'canteen soup' }) });
    assert.equal(search.status, 200);
    assert.equal(search.body.hits[0].documentId, documentId);
    const completion = await httpJson(`${base}/v1/chat/completions`, { method: 'POST', token: editor, ...json({ model: 'ragmesh', messages: [{ role: 'user', content: 'When is soup served?' }] }) });
    assert.equal(completion.status, 200, JSON.stringify(completion.body));
  });

  it('leaving the mode works while it is on, and writes work again', async () => {
    const base = embedded.base;
    const off = await httpJson(`${base}/api/v1/admin/maintenance`, { method: 'PUT', token: admin, ...json({ enabled: false }) });
    assert.equal(off.status, 200);
    assert.equal((await httpJson(`${base}/api/version`)).body.maintenance.enabled, false);
    const res = await upload(base, editor, { name: 'b.txt', content: 'Written after maintenance.' });
    assert.equal(res.status, 202);
  });
});
