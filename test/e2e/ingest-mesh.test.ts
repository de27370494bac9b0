import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { httpJson } from '../support/http.ts';
import { upload, waitForJob } from '../support/ingest.ts';
import { syntheticText, TestMesh } from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';

/**
 * Ingest over the mesh: api, models and ingest workers as separate processes on
 * RabbitMQ, PostgreSQL, Redis and S3. A worker is killed with SIGKILL mid-job.
 */
describe('ingest over the mesh', () => {
  let mesh: TestMesh;
  let editor: string;

  before(async () => {
    mesh = await TestMesh.create({ JOB_LEASE_MS: '3000', CHUNK_TARGET_TOKENS: '64', CHUNK_OVERLAP_TOKENS: '8', INGEST_CONCURRENCY: '1' });
    await Promise.all([mesh.start('gateway', 'api'), mesh.start('models', 'emb,llm,analyze,maintenance')]);
    const admin = await mesh.token('acme', 'ops', 'admin');
    editor = await mesh.token('acme', 'alice', 'editor');
    await mesh.start('worker-a', 'ingest');
    await mesh.waitForDiscovery(admin);
  });
  after(() => mesh.stop());

  it('finishes a job once when its worker is killed mid-job: no duplicate chunk or vector', async () => {
    const res = await upload(mesh.apiUrl, editor, { name: 'big.md', content: syntheticText(3000) });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const jobId = res.body.job.id;
    const documentId = res.body.document.id;

    // Kill the worker while it embeds or indexes (after extract and chunk stored their results).
    await waitFor('the worker to be embedding', async () => {
      const job = (await httpJson(`${mesh.apiUrl}/api/v1/jobs/${jobId}`, { token: editor })).body;
      if (job.status === 'ready') throw new Error('finished before it could be killed: make the document bigger');
      return job.status === 'running' && (job.step === 'embed' || job.step === 'index');
    }, 60_000);
    const workerA = mesh.processes.find((p) => p.name === 'worker-a')!;
    workerA.child.kill('SIGKILL');
    await workerA.exited;

    await mesh.start('worker-b', 'ingest');
    const done = await waitForJob(mesh.apiUrl, editor, jobId, ['ready', 'failed'], 120_000);
    assert.equal(done.status, 'ready', JSON.stringify(done));
    assert.ok(done.attempts >= 2, `attempts ${done.attempts}: the job ran again after the kill`);

    const db = new pg.Client({ connectionString: mesh.databaseUrl });
    await db.connect();
    try {
      const chunks = await db.query('select id, content_hash from chunks where tenant_id = $1 and document_id = $2', ['acme', documentId]);
      assert.ok(chunks.rowCount! > 500, `${chunks.rowCount} chunks`);
      assert.equal(new Set(chunks.rows.map((r) => r.content_hash)).size, chunks.rowCount, 'no chunk twice');
      const tables = await db.query(`select name from vector_collections`);
      assert.equal(tables.rowCount, 1);
      const table = `vec_${tables.rows[0].name.replaceAll('-', '_')}`;
      const vectors = await db.query(`select id from ${table} where tenant_id = $1 and document_id = $2`, ['acme', documentId]);
      assert.equal(vectors.rowCount, chunks.rowCount, 'one vector per chunk, none left over from the killed attempt');
      const chunkIds = new Set(chunks.rows.map((r) => r.id));
      assert.ok(vectors.rows.every((r) => chunkIds.has(r.id)));
    } finally {
      await db.end();
    }
  });

  it('takes a presigned upload straight to S3, then complete', async () => {
    const created = await httpJson(`${mesh.apiUrl}/api/v1/uploads`, { method: 'POST', token: editor });
    assert.equal(created.status, 201);
    assert.ok(created.body.url.startsWith(mesh.env.S3_ENDPOINT), created.body.url);
    const put = await fetch(created.body.url, { method: 'PUT', body: 'Presigned uploads skip the api for the bytes.' });
    assert.equal(put.status, 200);
    const done = await httpJson(`${mesh.apiUrl}/api/v1/uploads/${created.body.uploadId}/complete`, {
      method: 'POST',
      token: editor,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ filename: 'direct.txt' }),
    });
    assert.equal(done.status, 202, JSON.stringify(done.body));
    assert.equal((await waitForJob(mesh.apiUrl, editor, done.body.job.id)).status, 'ready');
  });

  it('cancels a running job and leaves no chunk or vector of it', async (t) => {
    const res = await upload(mesh.apiUrl, editor, { name: 'cancel-me.md', content: syntheticText(1500, 7) });
    const jobId = res.body.job.id;
    await waitFor('the job to run', async () => (await httpJson(`${mesh.apiUrl}/api/v1/jobs/${jobId}`, { token: editor })).body.status === 'running', 60_000);
    const asked = Date.now();
    const cancel = await httpJson(`${mesh.apiUrl}/api/v1/jobs/${jobId}/cancel`, { method: 'POST', token: editor });
    assert.ok([200, 202].includes(cancel.status), JSON.stringify(cancel.body));
    const done = await waitForJob(mesh.apiUrl, editor, jobId, ['canceled', 'ready', 'failed'], 30_000);
    assert.equal(done.status, 'canceled');
    // How fast is reported, not asserted (waitForJob's 30 s bounds a hang).
    t.diagnostic(`canceled after ${Date.now() - asked} ms`);
    const chunks = await httpJson(`${mesh.apiUrl}/api/v1/documents/${res.body.document.id}/chunks`, { token: editor });
    assert.deepEqual(chunks.body.items, []);
    const db = new pg.Client({ connectionString: mesh.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query(`select name from vector_collections`);
      const table = `vec_${rows[0].name.replaceAll('-', '_')}`;
      const vectors = await db.query(`select count(*)::int as n from ${table} where document_id = $1`, [res.body.document.id]);
      assert.equal(vectors.rows[0].n, 0);
    } finally {
      await db.end();
    }
  });
});
