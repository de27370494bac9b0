import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { parsePrometheusText, sumOf } from '../../test/support/prometheus.ts';
import { ServiceBroker } from 'moleculer';
import { callLoggingMiddleware } from '../runtime/call-logging-middleware.ts';
import { instrumentHttpServer } from './http.ts';
import { JobObserver } from './job-observer.ts';
import { Metrics } from './metrics.ts';

describe('JobObserver', () => {
  it('times each stage once and counts the outcome, retry included', async () => {
    const metrics = new Metrics({ service: 'ingest' });
    const jobs = new JobObserver(metrics);
    const job = { id: 'j1', type: 'ingest' };
    jobs.observe({ ...job, status: 'running', step: null });
    jobs.observe({ ...job, status: 'running', step: 'extract' });
    jobs.observe({ ...job, status: 'running', step: 'extract' });
    jobs.observe({ ...job, status: 'running', step: 'chunk' });
    jobs.observe({ ...job, status: 'queued', step: 'chunk' });
    jobs.observe({ ...job, status: 'running', step: 'chunk' });
    jobs.observe({ ...job, status: 'ready', step: 'chunk' });
    assert.equal(jobs.size, 0);
    const e = parsePrometheusText((await metrics.render()).body);
    const count = (stage: string, outcome: string) => sumOf(e, 'ragmesh_job_stage_duration_seconds_count', { type: 'ingest', stage, outcome });
    assert.equal(count('extract', 'ok'), 1);
    assert.equal(count('chunk', 'retry'), 1);
    assert.equal(count('chunk', 'ok'), 1);
    assert.equal(sumOf(e, 'ragmesh_jobs_started_total', { type: 'ingest' }), 2);
    assert.equal(sumOf(e, 'ragmesh_jobs_finished_total', { type: 'ingest', outcome: 'retry' }), 1);
    assert.equal(sumOf(e, 'ragmesh_jobs_finished_total', { type: 'ingest', outcome: 'ready' }), 1);
  });

  it('ignores updates of jobs it did not see start (another worker, or the api)', async () => {
    const metrics = new Metrics({ service: 'ingest' });
    new JobObserver(metrics).observe({ id: 'x', type: 'ingest', status: 'failed', step: 'embed' });
    const e = parsePrometheusText((await metrics.render()).body);
    assert.equal(sumOf(e, 'ragmesh_jobs_finished_total'), 0);
  });
});

describe('Metrics', () => {
  it('keeps two nodes of one process apart', async () => {
    const a = new Metrics({ service: 'api' });
    const b = new Metrics({ service: 'emb' });
    a.actionErrors.inc({ action: 'api.x', code: 'BOOM' });
    const eb = parsePrometheusText((await b.render()).body);
    assert.equal(sumOf(eb, 'ragmesh_action_errors_total'), 0);
    assert.ok(eb.samples.every((s) => s.labels.service === 'emb'));
  });
});

describe('HotHistogram', () => {
  it('exports cumulative buckets, sum and count per label set, with the registry default labels', async () => {
    const metrics = new Metrics({ service: 'api' });
    const ok = metrics.httpDuration.child({ method: 'GET', route: '/api/version', status: '200' });
    assert.equal(metrics.httpDuration.child({ method: 'GET', route: '/api/version', status: '200' }), ok, 'one child per label set');
    ok.observe(0.004);
    ok.observe(0.005);
    ok.observe(0.2);
    ok.observe(99);
    metrics.httpDuration.child({ method: 'POST', route: 'unmatched', status: '404' }).observe(0.02);
    const e = parsePrometheusText((await metrics.render()).body);
    assert.equal(e.types.get('ragmesh_http_request_duration_seconds'), 'histogram');
    const series = { method: 'GET', route: '/api/version', status: '200', service: 'api' };
    const bucket = (le: string) => sumOf(e, 'ragmesh_http_request_duration_seconds_bucket', { ...series, le });
    assert.equal(bucket('0.005'), 2, 'le is inclusive');
    assert.equal(bucket('0.1'), 2);
    assert.equal(bucket('0.25'), 3);
    assert.equal(bucket('30'), 3);
    assert.equal(bucket('+Inf'), 4);
    assert.equal(sumOf(e, 'ragmesh_http_request_duration_seconds_count', series), 4);
    assert.ok(Math.abs(sumOf(e, 'ragmesh_http_request_duration_seconds_sum', series) - 99.209) < 1e-9);
    assert.equal(sumOf(e, 'ragmesh_http_request_duration_seconds_count', { status: '404' }), 1);
    assert.throws(() => metrics.actionDuration.child({} as { action: string }), /label action missing/);
  });
});

describe('action metrics (recorded by the call-logging middleware)', () => {
  it('times every call of an action, with or without a timeout, and counts errors by code', async () => {
    const metrics = new Metrics({ service: 'api' });
    const broker = new ServiceBroker({ logger: false, requestTimeout: 5000, middlewares: [callLoggingMiddleware(metrics)] });
    broker.createService({
      name: 's',
      actions: {
        ok: () => 1,
        boom: () => {
          throw Object.assign(new Error('no'), { type: 'NOT_FOUND', code: 404 });
        },
      },
    });
    await broker.start();
    try {
      const t0 = performance.now();
      await broker.call('s.ok');
      await broker.call('s.ok', {}, { timeout: 0 });
      await assert.rejects(broker.call('s.boom'));
      const spent = (performance.now() - t0) / 1000;
      const e = parsePrometheusText((await metrics.render()).body);
      assert.equal(sumOf(e, 'ragmesh_action_duration_seconds_count', { action: 's.ok' }), 2);
      assert.equal(sumOf(e, 'ragmesh_action_duration_seconds_count', { action: 's.boom' }), 1);
      const sum = sumOf(e, 'ragmesh_action_duration_seconds_sum', { action: 's.ok' });
      assert.ok(sum > 0 && sum <= spent, `within the calls (${sum} s of ${spent} s), not a clock value`);
      assert.equal(sumOf(e, 'ragmesh_action_errors_total', { action: 's.boom' }), 1);
    } finally {
      await broker.stop();
    }
  });
});

describe('instrumentHttpServer', () => {
  it('times responses by alias route and status, and counts the event streams open at scrape time', async () => {
    const metrics = new Metrics({ service: 'api' });
    const alias = { method: 'GET', fullPath: '/api/v1/things/:id' };
    const server = createServer((req: IncomingMessage & { $alias?: object; $startTime?: [number, number] }, res) => {
      // What moleculer-web's handler records first: the start time the histogram counts from.
      if (req.url !== '/untimed') req.$startTime = process.hrtime();
      if (req.url === '/stream') {
        (req as { $alias?: object }).$alias = { method: 'GET', fullPath: '/api/v1/stream' };
        // As behind moleculer-web, which sets X-Request-ID first (writeHead keeps headers passed to it only then).
        res.setHeader('Content-Type', 'text/event-stream');
        res.writeHead(200);
        res.write(': ok\n\n');
        return;
      }
      if (req.url!.startsWith('/things/')) req.$alias = alias;
      res.statusCode = req.url === '/things/2' ? 404 : 200;
      res.end('x');
    });
    instrumentHttpServer(server, metrics);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      for (const path of ['/things/1', '/things/1', '/things/2', '/nowhere', '/untimed']) await (await fetch(base + path)).text();
      const stream = await fetch(`${base}/stream`);
      const reader = stream.body!.getReader();
      await reader.read();
      let e = parsePrometheusText((await metrics.render()).body);
      const count = (labels: Record<string, string>) => sumOf(e, 'ragmesh_http_request_duration_seconds_count', labels);
      // A response is timed when it emits 'close', which for a kept-alive one may come a tick after the client has it.
      for (let i = 0; i < 200 && count({}) < 4; i++) {
        await new Promise((r) => setImmediate(r));
        e = parsePrometheusText((await metrics.render()).body);
      }
      assert.equal(count({ route: '/api/v1/things/:id', status: '200', method: 'GET' }), 2);
      assert.equal(count({ route: '/api/v1/things/:id', status: '404' }), 1);
      assert.equal(count({ route: 'unmatched', status: '200' }), 1, 'a request the gateway never saw is not timed');
      assert.equal(sumOf(e, 'ragmesh_sse_streams_active', { route: '/api/v1/stream' }), 1);
      assert.equal(sumOf(e, 'ragmesh_sse_streams_active'), 1, 'the finished keep-alive responses are not streams');
      await reader.cancel();
      // The server sees the client go when its socket closes: wait for that, not a time.
      for (let i = 0; i < 200 && sumOf(e, 'ragmesh_sse_streams_active') > 0; i++) {
        await new Promise((r) => setImmediate(r));
        e = parsePrometheusText((await metrics.render()).body);
      }
      assert.equal(sumOf(e, 'ragmesh_sse_streams_active'), 0);
      assert.equal(count({ route: '/api/v1/stream', status: '200' }), 1);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('parsePrometheusText', () => {
  it('reads escapes and refuses what Prometheus refuses', () => {
    const e = parsePrometheusText('# TYPE a counter\na_total{x="q\\"\\\\\\n",y="2"} 3 1700000000\n');
    assert.deepEqual(e.samples[0], { name: 'a_total', labels: { x: 'q"\\\n', y: '2' }, value: 3 });
    assert.throws(() => parsePrometheusText('a{x=1} 2'));
    assert.throws(() => parsePrometheusText('a{1x="1"} 2'));
    assert.throws(() => parsePrometheusText('a 2 3 4'));
    assert.throws(() => parsePrometheusText('a x'));
    assert.throws(() => parsePrometheusText('# TYPE h histogram\nh_bucket 1'));
  });
});
