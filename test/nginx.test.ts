import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadConfig } from '../lib/config/env.ts';
import { startEmbeddedNode, type EmbeddedNode } from './support/embedded.ts';
import { upload } from './support/ingest.ts';
import { NGINX_BIN, startNginx, type RunningNginx } from './support/nginx.ts';
import { freePort, ROOT } from './support/processes.ts';
import { parseSse } from '../lib/streams.ts';

const MiB = 1024 * 1024;

function sizeOf(value: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(value)!;
  return Number(m[1]) * ({ '': 1, k: 1024, m: MiB, g: 1024 * MiB } as Record<string, number>)[m[2]!.toLowerCase()]!;
}

function assertErrorShape(body: any, status: number, code: string, retryable: boolean): void {
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, code);
  assert.equal(body.error.status, status);
  assert.equal(body.error.retryable, retryable);
  assert.equal(typeof body.error.message, 'string');
  assert.match(body.error.request_id, /^[A-Za-z0-9._:-]{8,128}$/);
}

describe('nginx.conf limits in step with the api', () => {
  it('lets a full-size upload (UPLOAD_MAX_BYTES + multipart overhead) through, and not much more', async () => {
    const conf = await readFile(`${ROOT}/nginx/nginx.conf`, 'utf8');
    const nginxLimit = sizeOf(/client_max_body_size (\S+);/.exec(conf)![1]!);
    const stack = parse(await readFile(`${ROOT}/stack.yml`, 'utf8'), { merge: true }) as { services: { api: { environment: Record<string, string> } } };
    const apiLimit = loadConfig({}).ingest.uploadMaxBytes;
    assert.equal(Number(stack.services.api.environment.UPLOAD_MAX_BYTES), apiLimit, 'stack.yml sets the default the api documents');
    assert.equal(nginxLimit, apiLimit + MiB, 'nginx allows the api limit plus 1 MiB of multipart framing');
    assert.match(conf, new RegExp(`limit of ${nginxLimit / MiB} MiB`), 'the 413 body names the limit');
  });
});

/**
 * nginx/nginx.conf run by Debian's nginx in front of a running api (embedded profile in
 * this process). .ci/run installs nginx.
 */
describe('nginx in front of the api', { skip: NGINX_BIN ? false : 'nginx is not installed (apt-get install nginx)' }, () => {
  let node: EmbeddedNode;
  let nginx: RunningNginx;
  let token: string;

  before(async () => {
    // A small per-file limit on the api, so its own 413 can be seen through nginx cheaply.
    node = await startEmbeddedNode({ UPLOAD_MAX_BYTES: '4096' });
    nginx = await startNginx(`127.0.0.1:${node.node.httpPort}`);
    token = await node.token(['editor']);
  });
  after(async () => {
    await nginx?.stop();
    await node?.stop();
  });

  it('passes event streams through unbuffered and uncompressed: each event arrives while the stream stays open', async () => {
    const res = await fetch(`${nginx.url}/api/v1/jobs/events`, { headers: { Authorization: `Bearer ${token}`, 'Accept-Encoding': 'gzip' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(res.headers.get('content-encoding'), null);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const nextEvent = async (name: string) => {
      for (;;) {
        const at = text.indexOf(`event: ${name}\n`);
        const end = at >= 0 ? text.indexOf('\n\n', at) : -1;
        if (end >= 0) {
          const block = text.slice(at, end);
          text = text.slice(end + 2);
          return JSON.parse(/^data: (.*)$/m.exec(block)![1]!);
        }
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before event ${name}`);
        text += value;
      }
    };
    // A few hundred bytes that nothing follows until the next step: buffered, they would sit in nginx.
    const meta = await nextEvent('meta');
    assert.ok('requestId' in meta);
    // Only now does the next event exist: an upload's job.
    const res2 = await upload(nginx.url, token, { name: 'through-nginx.md', content: '# Through nginx\n\nEvents pass one by one.' });
    assert.equal(res2.status, 202, JSON.stringify(res2.body));
    const job = await nextEvent('job');
    assert.equal(job.id, res2.body.job.id);
    let last = job;
    while (!['ready', 'failed'].includes(last.status)) last = await nextEvent('job');
    assert.equal(last.status, 'ready');
    await reader.cancel();
  });

  it('streams a chat answer token by token through nginx, the same as direct', async () => {
    const ask = async (base: string) => {
      const chat = (await (await fetch(`${base}/api/v1/chats`, { method: "POST", headers: { Authorization: `Bearer ${token}` } })).json()) as { id: string };
      const res = await fetch(`${base}/api/v1/chats/${chat.id}/messages`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Accept-Encoding': 'gzip' },
        body: JSON.stringify({ content: 'How do events pass?' }),
      });
      assert.equal(res.headers.get('content-encoding'), null);
      const events = parseSse(await res.text()).map((e) => e.event);
      return events;
    };
    const [direct, proxied] = [await ask(`http://127.0.0.1:${node.node.httpPort}`), await ask(nginx.url)];
    assert.ok(proxied.filter((e) => e === 'token').length > 1);
    assert.deepEqual(proxied, direct);
  });

  it('answers an upload over its limit with a JSON 413 in the api\'s error shape, before reading it', async () => {
    // Declared 200 MiB, 1 KiB sent: nginx decides on Content-Length alone.
    const { status, body, headers } = await new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
      const req = request(`${nginx.url}/api/v1/documents`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'multipart/form-data; boundary=x', 'Content-Length': String(200 * MiB), 'X-Request-ID': 'client-req-0001' },
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode!, body: text, headers: res.headers }));
      });
      req.on('error', reject);
      req.write(Buffer.alloc(1024));
    });
    assert.equal(status, 413);
    assert.match(String(headers['content-type']), /^application\/json/);
    const parsed = JSON.parse(body);
    assertErrorShape(parsed, 413, 'PAYLOAD_TOO_LARGE', false);
    assert.equal(parsed.error.request_id, 'client-req-0001');
  });

  it('lets the api\'s own 413 (a file over UPLOAD_MAX_BYTES, inside nginx\'s limit) through unchanged', async () => {
    const res = await upload(nginx.url, token, { name: 'big.txt', content: 'x'.repeat(10_000) });
    assert.equal(res.status, 413);
    assertErrorShape(res.body, 413, 'FILE_TOO_LARGE', false);
  });

  it('answers a burst from one client with JSON 429s and Retry-After, serving the burst allowance', async () => {
    const results = await Promise.all(Array.from({ length: 120 }, () => fetch(`${nginx.url}/healthz`).then(async (r) => ({ status: r.status, retry: r.headers.get('retry-after'), body: await r.text() }))));
    const ok = results.filter((r) => r.status === 200).length;
    const limited = results.filter((r) => r.status === 429);
    // burst=40 plus the slot of the current 50 ms; the suite's earlier requests of the
    // last two seconds still hold a few slots of the same per-client bucket.
    assert.ok(ok >= 30 && ok <= 41, `${ok} served`);
    assert.ok(limited.length > 0, 'some were refused');
    assert.equal(ok + limited.length, results.length);
    for (const r of limited) {
      assert.equal(r.retry, '1');
      assertErrorShape(JSON.parse(r.body), 429, 'RATE_LIMITED', true);
    }
  });
});

describe('nginx when the api fails', { skip: NGINX_BIN ? false : 'nginx is not installed (apt-get install nginx)' }, () => {
  let silent: Server;
  const sockets = new Set<Socket>();
  after(() => {
    for (const s of sockets) s.destroy();
    silent?.close();
  });

  it('answers JSON 502 when no api answers and JSON 504 when the api does not answer in time', async () => {
    const deadPort = await freePort();
    const down = await startNginx(`127.0.0.1:${deadPort}`);
    try {
      const res = await fetch(`${down.url}/api/v1/me`);
      assert.equal(res.status, 502);
      assertErrorShape(await res.json(), 502, 'UPSTREAM_UNAVAILABLE', true);
    } finally {
      await down.stop();
    }
    // An upstream that accepts and never answers; the read timeout shortened for the test.
    silent = createServer((socket) => void sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const slow = await startNginx(`127.0.0.1:${port}`, [['proxy_read_timeout 120s;', 'proxy_read_timeout 1s;']]);
    try {
      const res = await fetch(`${slow.url}/api/v1/me`);
      assert.equal(res.status, 504);
      assertErrorShape(await res.json(), 504, 'UPSTREAM_TIMEOUT', true);
    } finally {
      await slow.stop();
    }
  });
});

describe('nginx.conf error codes', () => {
  it('sends only catalogued codes, with the catalogue\'s status and retryable', async () => {
    const { ERROR_CATALOGUE } = await import('../lib/errors.ts');
    const conf = await readFile(`${ROOT}/nginx/nginx.conf`, 'utf8');
    const bodies = [...conf.matchAll(/return (\d{3}) '(\{"error".*\})';/g)];
    assert.ok(bodies.length >= 5);
    for (const [, status, body] of bodies) {
      const { error } = JSON.parse(body!.replace('$rid', 'r')) as { error: { code: keyof typeof ERROR_CATALOGUE; status: number; retryable: boolean } };
      const spec = ERROR_CATALOGUE[error.code];
      assert.ok(spec, `${error.code} is in lib/errors.ts`);
      assert.equal(error.status, Number(status));
      assert.equal(spec.status, error.status, error.code);
      assert.equal(spec.retryable, error.retryable, error.code);
    }
  });
});
