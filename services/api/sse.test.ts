import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { openSse, type SseStream } from './sse.ts';

describe('openSse', () => {
  let server: Server;
  let url: string;
  let current: SseStream | null = null;

  before(async () => {
    server = createServer((req, res) => {
      current = openSse(req, res, { heartbeatMs: 40 });
      current.send('token', { text: 'hello' });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(() => server.close());

  it('sends headers and a comment at once, events as JSON, and heartbeat comments while idle', async () => {
    const res = await fetch(url);
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    assert.equal(res.headers.get('cache-control'), 'no-cache, no-transform');
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/: heartbeat/g) ?? []).length < 2) text += new TextDecoder().decode((await reader.read()).value);
    assert.ok(text.startsWith(': ok\n\n'));
    assert.match(text, /event: token\ndata: \{"text":"hello"\}\n\n/);
    current!.close();
    assert.equal((await reader.read()).done, true);
  });

  it('resolves `closed` when the client goes away, and stops sending', async () => {
    const client = new AbortController();
    const res = await fetch(url, { signal: client.signal });
    await res.body!.getReader().read();
    const stream = current!;
    client.abort();
    await stream.closed;
    assert.equal(stream.isOpen, false);
    assert.equal(stream.send('token', { text: 'late' }), false);
  });
});
