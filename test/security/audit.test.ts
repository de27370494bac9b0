import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startEmbeddedNode, type EmbeddedNode } from '../support/embedded.ts';
import { httpJson } from '../support/http.ts';
import { upload, waitForJob } from '../support/ingest.ts';

/**
 * Mutating actions leave an entry that GET /api/v1/audit reads back: who, what, when
 * and the request id the caller got in X-Request-ID. (Cancels: lib/jobs/commands.test.ts,
 * where a job can be held queued; the read route is the same.)
 */
describe('audit of retries, cancels and admin actions, read through GET /api/v1/audit', () => {
  let node: EmbeddedNode;
  before(async () => {
    node = await startEmbeddedNode();
  });
  after(() => node.stop());

  it('a job retry is audited in its tenant, readable by its tenant_admin only', async () => {
    const editor = await node.token(['editor'], 'erin', 'audited');
    // A PDF that sniffs as one and cannot be read: its job fails for good.
    const uploaded = await upload(node.base, editor, { name: 'broken.pdf', content: Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.alloc(2000, 0x41)]), type: 'application/pdf' });
    assert.equal(uploaded.status, 202, JSON.stringify(uploaded.body));
    const jobId = uploaded.body.job?.id as string;
    assert.ok(jobId, JSON.stringify(uploaded.body));
    assert.equal((await waitForJob(node.base, editor, jobId)).status, 'failed');

    const retried = await httpJson(`${node.base}/api/v1/jobs/${jobId}/retry`, { method: 'POST', token: editor });
    assert.equal(retried.status, 202);
    const requestId = retried.headers.get('x-request-id');
    assert.ok(requestId);

    const admin = await node.token(['tenant_admin'], 'tina', 'audited');
    const read = await httpJson(`${node.base}/api/v1/audit?action=job.retry&actor=erin`, { token: admin });
    assert.equal(read.status, 200);
    const entry = read.body.items.find((e: { target: string }) => e.target === jobId);
    assert.ok(entry, JSON.stringify(read.body));
    assert.equal(entry.actor, 'erin');
    assert.equal(entry.requestId, requestId);
    assert.equal(entry.tenantId, 'audited');
    assert.ok(Date.parse(entry.at) > 0);

    const stranger = await node.token(['tenant_admin'], 'tina', 'elsewhere');
    assert.deepEqual((await httpJson(`${node.base}/api/v1/audit?action=job.retry`, { token: stranger })).body.items, [], "another tenant's admin sees none of it");
    assert.equal((await httpJson(`${node.base}/api/v1/audit`, { token: editor })).status, 403, 'an editor reads no audit');
  });

  it('a sweep on demand is audited deployment-wide: the admin reads it, a tenant_admin does not', async () => {
    const admin = await node.token(['admin'], 'root', 'audited');
    const swept = await httpJson(`${node.base}/api/v1/admin/sweeps`, { method: 'POST', token: admin });
    assert.equal(swept.status, 200, JSON.stringify(swept.body));
    const requestId = swept.headers.get('x-request-id');
    const read = await httpJson(`${node.base}/api/v1/audit?action=sweep.run`, { token: admin });
    const entry = read.body.items.find((e: { requestId: string }) => e.requestId === requestId);
    assert.ok(entry, JSON.stringify(read.body));
    assert.equal(entry.actor, 'root');
    assert.equal(entry.tenantId, null);
    assert.equal(entry.details.tenantId, 'audited');

    const tenantAdmin = await node.token(['tenant_admin'], 'tina', 'audited');
    assert.deepEqual((await httpJson(`${node.base}/api/v1/audit?action=sweep.run`, { token: tenantAdmin })).body.items, []);
  });
});
