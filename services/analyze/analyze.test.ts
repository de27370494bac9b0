import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { textPdf } from '../../test/fixtures/documents.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../../test/support/embedded.ts';
import { httpJson } from '../../test/support/http.ts';
import { upload, waitForJob } from '../../test/support/ingest.ts';
import { analysisKeys } from '../../lib/analyze/analysis.ts';

/** The analyze job's life in the embedded profile: versions, delete, cancel, failure, dead letters, retry. */
describe('analyze jobs (embedded profile)', () => {
  let embedded: EmbeddedNode;
  let base: string;
  let token: string;
  let admin: string;
  const post = (path: string, t = token) => httpJson(`${base}/api/v1/${path}`, { method: 'POST', token: t });

  before(async () => {
    embedded = await startEmbeddedNode();
    base = embedded.base;
    token = await embedded.token(['editor'], 'an-alice', 'an-acme');
    admin = await embedded.token(['admin'], 'an-root', 'an-acme');
  });
  after(() => embedded?.stop());

  it('a new version analysed replaces the analysis; deleting the document deletes it', async () => {
    const v1 = await upload(base, token, { name: 'memo.pdf', content: await textPdf([['Memo one', 'Mr John Smith visited Paris on 1 May 2024.']]) }, { source_id: 'memo' });
    await waitForJob(base, token, v1.body.job.id);
    const documentId = v1.body.document.id as string;
    assert.equal((await httpJson(`${base}/api/v1/documents/${documentId}/analysis`, { token })).body.error.code, 'ANALYSIS_NOT_FOUND');
    const first = await post(`documents/${documentId}/analyses`);
    assert.equal(first.status, 202);
    assert.equal((await waitForJob(base, token, first.body.id)).status, 'ready');
    const a1 = (await httpJson(`${base}/api/v1/documents/${documentId}/analysis`, { token })).body;
    assert.equal(a1.version, 1);
    assert.deepEqual(a1.entities.people.map((p: { text: string }) => p.text), ['John Smith']);

    const v2 = await upload(base, token, { name: 'memo.pdf', content: await textPdf([['Memo two', 'Dr. Anna Lee visited Berlin on 2 June 2024.'], ['Second page', 'Nothing else.']]) }, { source_id: 'memo', analyze: 'true' });
    assert.equal(v2.body.document.id, documentId);
    assert.equal((await waitForJob(base, token, v2.body.analysis.id)).status, 'ready');
    const a2 = (await httpJson(`${base}/api/v1/documents/${documentId}/analysis`, { token })).body;
    assert.equal(a2.version, 2);
    assert.equal(a2.counts.pages, 2);
    assert.deepEqual(a2.entities.people.map((p: { text: string }) => p.text), ['Anna Lee']);

    const objects = await embedded.node.runtime.stores.objects();
    const keys = analysisKeys('an-acme', documentId);
    assert.ok(await objects.stat(keys.json));
    assert.equal((await httpJson(`${base}/api/v1/documents/${documentId}`, { method: 'DELETE', token })).status, 200);
    assert.equal(await objects.stat(keys.json), null);
    assert.equal(await objects.stat(keys.markdown), null);
  });

  it('two requests while one is open make one job; a queued one can be canceled', async () => {
    const doc = await upload(base, token, { name: 'wait.txt', content: 'Some text about Acme Corp in Madrid, worth €40.' });
    const documentId = doc.body.document.id as string;
    // Asked while ingest still runs: the analysis waits for the text, queued.
    const a = await post(`documents/${documentId}/analyses`);
    const b = await post(`documents/${documentId}/analyses`);
    assert.equal(b.body.id, a.body.id);
    assert.equal(b.status, 200);
    const canceled = await post(`jobs/${a.body.id}/cancel`);
    assert.ok(['canceled', 'running', 'ready'].includes(canceled.body.status), canceled.body.status);
    const settled = await waitForJob(base, token, a.body.id);
    assert.ok(['canceled', 'ready'].includes(settled.status));
    await waitForJob(base, token, doc.body.job.id);
    // Canceling the analysis never touched the document's own status.
    assert.equal((await httpJson(`${base}/api/v1/documents/${documentId}`, { token })).body.status, 'ready');
  });

  it('a document with no text fails for good: dead letter of the analyze queue, replay and retry', async () => {
    const broken = await upload(base, token, { name: 'broken.pdf', content: Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.alloc(512, 3)]) });
    await waitForJob(base, token, broken.body.job.id, ['failed']);
    const job = await post(`documents/${broken.body.document.id}/analyses`);
    const failed = await waitForJob(base, token, job.body.id, ['failed']);
    assert.equal(failed.errorCode, 'DOCUMENT_NOT_READY');
    assert.equal(failed.type, 'analyze');
    const letters = await httpJson(`${base}/api/v1/admin/dead-letters?queue=analyze`, { token: admin });
    assert.ok(letters.body.items.some((l: { jobId: string; type: string }) => l.jobId === job.body.id && l.type === 'analyze'));
    const all = await httpJson(`${base}/api/v1/admin/dead-letters`, { token: admin });
    assert.ok(all.body.items.some((l: { jobId: string }) => l.jobId === job.body.id));
    const replay = await post(`admin/dead-letters/${job.body.id}/replay`, admin);
    assert.equal(replay.status, 200);
    assert.equal((await waitForJob(base, token, job.body.id, ['failed'])).errorCode, 'DOCUMENT_NOT_READY');
    const retry = await post(`jobs/${job.body.id}/retry`);
    assert.equal(retry.status, 202);
    assert.equal((await waitForJob(base, token, job.body.id, ['failed'])).errorCode, 'DOCUMENT_NOT_READY');
    // The ingest job's document status is the ingest's: still failed.
    assert.equal((await httpJson(`${base}/api/v1/documents/${broken.body.document.id}`, { token })).body.status, 'failed');
  });

  it('refuses unknown documents and readers', async () => {
    assert.equal((await post('documents/00000000-0000-4000-8000-000000000000/analyses')).status, 404);
    const viewer = await embedded.token(['viewer'], 'an-viewer', 'an-acme');
    assert.equal((await post('documents/00000000-0000-4000-8000-000000000000/analyses', viewer)).status, 403);
  });
});

describe('analyze with an LLM backend configured', () => {
  let embedded: EmbeddedNode;
  let upstream: Server;
  const asked: string[] = [];

  before(async () => {
    // An OpenAI-compatible server that answers every request with one fixed summary.
    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        asked.push(body);
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        for (const piece of ['The memo ', 'says Anna ', 'visited Berlin.']) {
          res.write(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] })}\n\n`);
        }
        res.write(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
        res.end('data: [DONE]\n\n');
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    embedded = await startEmbeddedNode({ LLM_BACKEND: 'openai', LLM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`, LLM_MODEL: 'summary' });
  });
  after(async () => {
    await embedded?.stop();
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r));
  });

  it('takes the summary from the LLM, the rest from the document', async () => {
    const token = await embedded.token(['editor'], 'llm-alice', 'llm-acme');
    const doc = await upload(embedded.base, token, { name: 'memo.txt', content: 'Dr. Anna Lee visited Berlin on 2 June 2024 to meet Globex Inc.' }, { analyze: 'true' });
    assert.equal((await waitForJob(embedded.base, token, doc.body.analysis.id)).status, 'ready');
    const analysis = (await httpJson(`${embedded.base}/api/v1/documents/${doc.body.document.id}/analysis`, { token })).body;
    assert.deepEqual(analysis.summary, { method: 'llm', text: 'The memo says Anna visited Berlin.' });
    assert.deepEqual(analysis.entities.people.map((p: { text: string }) => p.text), ['Anna Lee']);
    // The model was shown the document's text.
    assert.ok(asked.some((b) => b.includes('Anna Lee visited Berlin')));
  });
});
