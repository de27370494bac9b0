import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { layoutPdf } from '../fixtures/documents.ts';
import { httpJson } from '../support/http.ts';
import { upload, waitForJob } from '../support/ingest.ts';
import { TestMesh } from '../support/mesh.ts';
import type { NodeProcess } from '../support/processes.ts';

/**
 * The analyze pipeline over the mesh: api, models, ingest worker and the analyze
 * service each in their own process on RabbitMQ, Postgres, Redis and S3. A generated
 * three-page PDF with headings and a known text: the analysis, run by the analyze
 * process, has the outline with the right pages and the entities of the text.
 */
describe('analyze over the mesh', () => {
  let mesh: TestMesh;
  let analyzer: NodeProcess;
  let token: string;

  before(async () => {
    mesh = await TestMesh.create();
    [, , , analyzer] = await Promise.all([
      mesh.start('gateway', 'api'),
      mesh.start('models', 'emb,llm,maintenance'),
      mesh.start('worker', 'ingest'),
      mesh.start('analyzer', 'analyze'),
    ]);
    await mesh.waitForDiscovery(await mesh.token('acme', 'ops', 'admin'));
    token = await mesh.token('acme', 'alice', 'editor');
  });
  after(() => mesh.stop());

  it('analyzes a multi-page PDF on the analyze process: outline with pages, entities, JSON and Markdown', async () => {
    const pdf = await layoutPdf(
      [
        [
          { text: 'Supply agreement', size: 22 },
          { text: 'This agreement is made on 5 March 2024 between Acme Corp and Globex Inc.', gapBefore: 10 },
          { text: 'Mr John Smith signs for Acme Corp in London.' },
        ],
        [
          { text: 'Payment terms', size: 18 },
          { text: 'Globex Inc pays $12,500 within thirty days of each delivery.', gapBefore: 10 },
          { text: 'Late payments carry a fee of 2 percent per month.' },
        ],
        [
          { text: 'Deliveries', size: 18 },
          { text: 'Deliveries leave the warehouse in Rotterdam every Tuesday.', gapBefore: 10 },
          { text: 'Dr. Anna Lee inspects every delivery before it leaves.' },
        ],
      ],
      { title: 'Supply agreement' },
    );
    const res = await upload(mesh.apiUrl, token, { name: 'agreement.pdf', content: pdf }, { analyze: 'true' });
    assert.equal(res.status, 202);
    const documentId = res.body.document.id as string;
    const analysisJob = res.body.analysis;
    assert.equal(analysisJob.type, 'analyze');
    assert.equal((await waitForJob(mesh.apiUrl, token, analysisJob.id, ['ready', 'failed'], 90_000)).status, 'ready');
    // Run by the analyze process, not the api or the ingest worker.
    await analyzer.waitForLog((e) => e.msg === 'analysis stored' && e.jobId === analysisJob.id, 10_000);

    const { status, body } = await httpJson(`${mesh.apiUrl}/api/v1/documents/${documentId}/analysis`, { token });
    assert.equal(status, 200);
    assert.deepEqual(
      body.outline.map((o: { text: string; page: number }) => [o.text, o.page]),
      [
        ['Supply agreement', 1],
        ['Payment terms', 2],
        ['Deliveries', 3],
      ],
    );
    assert.equal(body.counts.pages, 3);
    assert.equal(body.language, 'en');
    assert.equal(body.version, 1);
    const names = (kind: string) => body.entities[kind].map((e: { text: string }) => e.text);
    assert.deepEqual(names('people').sort(), ['Anna Lee', 'John Smith']);
    assert.ok(names('organisations').includes('Acme Corp'), names('organisations').join('; '));
    assert.ok(names('places').includes('London') && names('places').includes('Rotterdam'), names('places').join('; '));
    assert.deepEqual(names('dates'), ['5 March 2024']);
    assert.deepEqual(names('amounts'), ['$12,500']);
    assert.ok(body.keyTerms.length > 0);

    const md = await fetch(`${mesh.apiUrl}/api/v1/documents/${documentId}/analysis?format=markdown`, { headers: { Authorization: `Bearer ${token}` } });
    assert.match(md.headers.get('content-type') ?? '', /text\/markdown/);
    const text = await md.text();
    assert.match(text, /Payment terms \(p\. 2\)/);
    assert.match(text, /Deliveries \(p\. 3\)/);
  });
});
