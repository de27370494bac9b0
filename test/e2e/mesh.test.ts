import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { httpJson } from '../support/http.ts';
import { TestMesh } from '../support/mesh.ts';
import { freePort, type NodeProcess } from '../support/processes.ts';

/**
 * The mesh for real: the api in one process, the five other services in another,
 * talking over RabbitMQ, with PostgreSQL, Redis and an S3 server behind them.
 */
describe('mesh: two processes over RabbitMQ', () => {
  let mesh: TestMesh;
  let gateway: NodeProcess;
  let workers: NodeProcess;
  let workersHealthUrl: string;

  before(async () => {
    mesh = await TestMesh.create({ LOG_LEVEL: 'debug' });
    const healthPort = await freePort();
    workersHealthUrl = `http://127.0.0.1:${healthPort}`;
    [gateway, workers] = await Promise.all([
      mesh.start('gateway', 'api'),
      mesh.start('workers', 'emb,llm,ingest,analyze,maintenance', { HEALTH_PORT: String(healthPort) }),
    ]);
  });

  after(() => mesh.stop());

  it('serves /readyz on both processes, checking their real stores', async () => {
    const api = await httpJson(`${mesh.apiUrl}/readyz`);
    assert.equal(api.status, 200, JSON.stringify(api.body));
    assert.deepEqual(Object.keys(api.body.checks).sort(), ['db', 'kv', 'objects', 'queue', 'vectors']);
    const w = await httpJson(`${workersHealthUrl}/readyz`);
    assert.equal(w.status, 200, JSON.stringify(w.body));
    assert.deepEqual(w.body.services.map((s: { service: string }) => s.service), ['emb', 'llm', 'ingest', 'analyze', 'maintenance']);
    assert.equal((await httpJson(`${workersHealthUrl}/healthz`)).status, 200);
  });

  it("carries a request across processes, with the request's id in both processes' logs", async () => {
    const token = await mesh.token('acme', 'ops', 'admin');
    await mesh.waitForDiscovery(token);

    const requestId = `e2e-${randomBytes(6).toString('hex')}`;
    const res = await httpJson(`${mesh.apiUrl}/api/v1/status`, { token, headers: { 'X-Request-ID': requestId } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-request-id'), requestId);
    assert.equal(res.body.ready, true, JSON.stringify(res.body));
    const remote = res.body.services.filter((s: { nodeId: string }) => s.nodeId === 'e2e-workers');
    assert.deepEqual(remote.map((s: { service: string }) => s.service).sort(), ['analyze', 'emb', 'ingest', 'llm', 'maintenance']);
    assert.equal(remote.find((s: { service: string }) => s.service === 'ingest').checks.db.ok, true);

    const seenIn = async (p: NodeProcess) => p.waitForLog((e) => e.request_id === requestId, 10_000);
    const [onGateway, onWorkers] = await Promise.all([seenIn(gateway), seenIn(workers)]);
    assert.equal(onGateway.nodeID, 'e2e-gateway');
    assert.equal(onWorkers.nodeID, 'e2e-workers');
    assert.match(String(onWorkers.msg), /served \w+\.readiness/);
    // Every line the workers wrote for this request carries the tenant too.
    assert.ok(workers.logs().filter((e) => e.request_id === requestId).every((e) => e.tenant_id === 'acme'));
  });

  it('stops both processes cleanly on SIGTERM', async () => {
    assert.equal(await workers.stop(), 0);
    assert.equal(await gateway.stop(), 0);
  });
});
