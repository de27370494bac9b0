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

  it('holds headers and the first events until flush() or the end of the turn, then writes them at once', async () => {
    const writes: string[][] = [];
    const server2 = createServer((req, res) => {
      const socket = res.socket as unknown as { _writeGeneric: (writev: boolean, data: unknown, ...rest: unknown[]) => unknown };
      const write = socket._writeGeneric;
      const seen: string[] = [];
      writes.push(seen);
      socket._writeGeneric = function (this: unknown, writev, data, ...rest) {
        seen.push(writev ? (data as Array<{ chunk: Buffer | string }>).map((c) => String(c.chunk)).join('') : String(data));
        return write.call(this, writev, data, ...rest);
      };
      const sse = openSse(req, res);
      sse.send('meta', { n: 1 });
      sse.send('token', { text: 'first' });
      if (req.url === '/flush') sse.flush();
      sse.send('token', { text: 'second' });
      setImmediate(() => sse.close());
    });
    server2.listen(0, '127.0.0.1');
    await once(server2, 'listening');
    const base = `http://127.0.0.1:${(server2.address() as AddressInfo).port}`;
    try {
      for (const path of ['/flush', '/turn']) {
        const text = await (await fetch(`${base}${path}`)).text();
        assert.match(text, /^: ok\n\nevent: meta\n.*\n\nevent: token\ndata: \{"text":"first"\}\n\nevent: token\ndata: \{"text":"second"\}\n\n$/);
        const first = writes.at(-1)![0]!;
        assert.match(first, /^HTTP\/1\.1 200/);
        assert.ok(first.includes('event: meta') && first.includes('"first"'), `headers, meta and the first token in the first write: ${JSON.stringify(first)}`);
        // flush() writes what is held at once; without it the turn's events all go together.
        assert.equal(first.includes('"second"'), path === '/turn');
      }
    } finally {
      server2.close();
    }
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
