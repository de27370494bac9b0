import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startS3Server } from '../support/s3-server.ts';
import { httpJson } from '../support/http.ts';
import { freePort, runScript, startNode, waitFor, type NodeProcess } from '../support/processes.ts';
import { createTestDatabase, createTestVhost, REDIS_BASE_URL, tempDir, testKeyPrefix, type Disposable } from '../support/services.ts';

/**
 * The mesh for real: the api in one process, the five other services in another,
 * talking over RabbitMQ, with PostgreSQL, Redis and an S3 server behind them.
 */
describe('mesh: two processes over RabbitMQ', () => {
  const disposables: Array<{ dispose(): Promise<void> }> = [];
  let gateway: NodeProcess;
  let workers: NodeProcess;
  let apiUrl: string;
  let workersHealthUrl: string;
  let sharedEnv: Record<string, string>;

  before(async () => {
    const [database, vhost, s3, dataDir] = await Promise.all([createTestDatabase(), createTestVhost(), startS3Server(), tempDir()]);
    disposables.push(database, vhost, { dispose: s3.stop }, dataDir as Disposable<string>);
    const [apiPort, healthPort] = [await freePort(), await freePort()];
    sharedEnv = {
      RAGMESH_PROFILE: 'mesh',
      TRANSPORTER: vhost.value,
      QUEUE_URL: vhost.value,
      NAMESPACE: 'e2e',
      DATABASE_URL: database.value,
      REDIS_URL: REDIS_BASE_URL,
      KV_PREFIX: testKeyPrefix(),
      S3_ENDPOINT: s3.endpoint,
      S3_ACCESS_KEY: s3.config.accessKey,
      S3_SECRET_KEY: s3.config.secretKey,
      // No Qdrant can run here and no service of this test opens the vector store.
      QDRANT_URL: 'http://127.0.0.1:6333',
      JWT_SECRET: randomBytes(32).toString('hex'),
      DATA_DIR: dataDir.value,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'debug',
    };
    gateway = startNode('gateway', { ...sharedEnv, SERVICES: 'api', NODE_ID: 'e2e-gateway', PORT: String(apiPort) });
    workers = startNode('workers', { ...sharedEnv, SERVICES: 'emb,llm,ingest,analyze,maintenance', NODE_ID: 'e2e-workers', HEALTH_PORT: String(healthPort) });
    apiUrl = `http://127.0.0.1:${apiPort}`;
    workersHealthUrl = `http://127.0.0.1:${healthPort}`;
    await Promise.all([
      gateway.waitForLog((e) => e.msg === 'ragmesh ready', 60_000),
      workers.waitForLog((e) => e.msg === 'ragmesh ready', 60_000),
    ]);
  });

  after(async () => {
    await Promise.all([gateway?.stop(), workers?.stop()]);
    for (const d of disposables.reverse()) await d.dispose().catch(() => undefined);
  });

  it('serves /readyz on both processes, checking their real stores', async () => {
    const api = await httpJson(`${apiUrl}/readyz`);
    assert.equal(api.status, 200);
    assert.deepEqual(Object.keys(api.body.checks).sort(), ['db', 'kv']);
    const w = await httpJson(`${workersHealthUrl}/readyz`);
    assert.equal(w.status, 200);
    assert.deepEqual(w.body.services.map((s: { service: string }) => s.service), ['emb', 'llm', 'ingest', 'analyze', 'maintenance']);
    assert.equal((await httpJson(`${workersHealthUrl}/healthz`)).status, 200);
  });

  it("carries a request across processes, with the request's id in both processes' logs", async () => {
    const { stdout, code } = await runScript('scripts/token.ts', ['--tenant', 'acme', '--user', 'ops', '--role', 'admin'], sharedEnv);
    assert.equal(code, 0);
    const token = stdout.trim();

    // Discovery over AMQP takes a heartbeat or two: wait until the gateway sees all six services.
    await waitFor('the gateway to discover the workers', async () => {
      const res = await httpJson(`${apiUrl}/api/v1/status`, { token });
      return res.status === 200 && res.body.missing.length === 0 && res.body;
    });

    const requestId = `e2e-${randomBytes(6).toString('hex')}`;
    const res = await httpJson(`${apiUrl}/api/v1/status`, { token, headers: { 'X-Request-ID': requestId } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-request-id'), requestId);
    assert.equal(res.body.ready, true);
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
