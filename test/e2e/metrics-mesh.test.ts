import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { httpJson } from '../support/http.ts';
import { upload, waitForJob } from '../support/ingest.ts';
import { TestMesh } from '../support/mesh.ts';
import { freePort } from '../support/processes.ts';
import { labelValues, scrape, sumOf, type Exposition } from '../support/prometheus.ts';

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

/** No label carries an id, a tenant or a user: series stay bounded whatever the traffic. */
function assertLowCardinality(exposition: Exposition, where: string): void {
  for (const s of exposition.samples) {
    for (const [label, value] of Object.entries(s.labels)) {
      assert.doesNotMatch(value, UUID, `${where}: ${s.name}{${label}="${value}"} holds an id`);
      assert.ok(!['acme', 'alice', 'ops'].includes(value), `${where}: ${s.name}{${label}="${value}"} names a tenant or user`);
      assert.ok(!['tenant', 'tenant_id', 'user', 'job_id', 'document_id'].includes(label), `${where}: ${s.name} has label ${label}`);
    }
  }
}

/**
 * /metrics of the api (on its port) and of worker processes (on HEALTH_PORT), parsed
 * as Prometheus would: one upload moves the job, stage, request and embedding series.
 */
describe('metrics over the mesh', () => {
  let mesh: TestMesh;
  let editor: string;
  let ingestMetrics: string;
  let modelsMetrics: string;

  before(async () => {
    mesh = await TestMesh.create({ CHUNK_TARGET_TOKENS: '64', CHUNK_OVERLAP_TOKENS: '8' });
    const [ingestPort, modelsPort] = [await freePort(), await freePort()];
    ingestMetrics = `http://127.0.0.1:${ingestPort}/metrics`;
    modelsMetrics = `http://127.0.0.1:${modelsPort}/metrics`;
    await Promise.all([
      mesh.start('gateway', 'api'),
      mesh.start('models', 'emb,llm,analyze,maintenance', { HEALTH_PORT: String(modelsPort) }),
      mesh.start('worker', 'ingest', { HEALTH_PORT: String(ingestPort) }),
    ]);
    const admin = await mesh.token('acme', 'ops', 'admin');
    editor = await mesh.token('acme', 'alice', 'editor');
    await mesh.waitForDiscovery(admin);
  });
  after(() => mesh.stop());

  it('one upload moves the job and stage series of the worker and the request series of the api', async () => {
    const [apiBefore, workerBefore, modelsBefore] = await Promise.all([scrape(`${mesh.apiUrl}/metrics`), scrape(ingestMetrics), scrape(modelsMetrics)]);

    const res = await upload(mesh.apiUrl, editor, { name: 'metrics.md', content: '# Metrics\n\nPrometheus scrapes every replica of every service.\n\nAlerts fire on stuck jobs.' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal((await waitForJob(mesh.apiUrl, editor, res.body.job.id)).status, 'ready');

    const [apiAfter, workerAfter, modelsAfter] = await Promise.all([scrape(`${mesh.apiUrl}/metrics`), scrape(ingestMetrics), scrape(modelsMetrics)]);
    const moved = (name: string, labels: Record<string, string>, before: Exposition, after: Exposition) => sumOf(after, name, labels) - sumOf(before, name, labels);

    // The worker: the attempt started and ended ready, each of the four stages timed once.
    assert.equal(moved('ragmesh_jobs_started_total', { type: 'ingest' }, workerBefore, workerAfter), 1);
    assert.equal(moved('ragmesh_jobs_finished_total', { type: 'ingest', outcome: 'ready' }, workerBefore, workerAfter), 1);
    for (const stage of ['extract', 'chunk', 'embed', 'index']) {
      assert.equal(moved('ragmesh_job_stage_duration_seconds_count', { type: 'ingest', stage, outcome: 'ok' }, workerBefore, workerAfter), 1, stage);
    }
    assert.equal(workerAfter.types.get('ragmesh_job_stage_duration_seconds'), 'histogram');
    // Its calls to emb are timed where emb runs them.
    assert.ok(moved('ragmesh_action_duration_seconds_count', { action: 'emb.embed' }, modelsBefore, modelsAfter) >= 1);
    assert.ok(moved('ragmesh_embedding_batch_size_count', {}, modelsBefore, modelsAfter) >= 1);
    assert.ok(sumOf(modelsAfter, 'ragmesh_model_events_total', { event: 'load' }) >= 1, 'emb loaded its model');

    // The api: the upload timed under its declared route, not its URL.
    assert.equal(moved('ragmesh_http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/documents', status: '202' }, apiBefore, apiAfter), 1);
    assert.ok(labelValues(apiAfter, 'ragmesh_http_request_duration_seconds_count', 'route').includes('/api/v1/jobs/:id'));
    // Queue and job gauges read at scrape time: the job is done, nothing is open or stuck.
    assert.equal(sumOf(apiAfter, 'ragmesh_queue_depth', { queue: 'ingest' }), 0);
    assert.equal(sumOf(apiAfter, 'ragmesh_queue_dead_letters', { queue: 'ingest' }), 0);
    assert.ok(apiAfter.types.has('ragmesh_jobs_stuck'));
    assert.equal(sumOf(apiAfter, 'ragmesh_jobs_open', { type: 'ingest', status: 'running' }), 0);

    // Process metrics on every process, each telling which services it runs.
    for (const [where, e, service] of [['api', apiAfter, 'api'], ['worker', workerAfter, 'ingest']] as const) {
      assert.ok(sumOf(e, 'process_resident_memory_bytes') > 0, where);
      assert.ok(e.samples.some((s) => s.name === 'nodejs_eventloop_lag_p99_seconds'), where);
      assert.ok(e.samples.every((s) => s.labels.service === service), `${where}: service label`);
      assertLowCardinality(e, where);
    }
    assertLowCardinality(modelsAfter, 'models');
  });

  it('times the first token and the decode speed of a chat answer, and counts the open SSE streams', async () => {
    const before = await scrape(modelsMetrics);
    const chat = (await httpJson(`${mesh.apiUrl}/api/v1/chats`, { method: 'POST', token: editor })).body;
    const answer = await fetch(`${mesh.apiUrl}/api/v1/chats/${chat.id}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${editor}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ content: 'What does Prometheus scrape?' }),
    });
    assert.equal(answer.status, 200);
    const reader = answer.body!.getReader();
    // While the answer streams, the api counts it.
    const first = await reader.read();
    assert.ok(!first.done);
    const during = await scrape(`${mesh.apiUrl}/metrics`);
    assert.equal(sumOf(during, 'ragmesh_sse_streams_active', { route: '/api/v1/chats/:id/messages' }), 1);
    while (!(await reader.read()).done);
    const after = await scrape(modelsMetrics);
    assert.equal(sumOf(after, 'ragmesh_llm_first_token_seconds_count', { backend: 'extractive' }) - sumOf(before, 'ragmesh_llm_first_token_seconds_count', { backend: 'extractive' }), 1);
    assert.ok(sumOf(after, 'ragmesh_llm_tokens_total', { backend: 'extractive' }) > sumOf(before, 'ragmesh_llm_tokens_total', { backend: 'extractive' }));
    const apiAfter = await scrape(`${mesh.apiUrl}/metrics`);
    assert.equal(sumOf(apiAfter, 'ragmesh_sse_streams_active'), 0);
  });
});
