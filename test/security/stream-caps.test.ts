import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { streamSlotKey } from '../../lib/auth/stream-slots.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../support/embedded.ts';
import { waitFor } from '../support/processes.ts';

/**
 * Every long-lived answer is capped per user (the gateway takes a slot for each route
 * that declares `streamCap`): job-event, document-event and model-event streams share
 * EVENT_STREAMS_PER_USER; chat answers and /v1/chat/completions share
 * CHAT_STREAMS_PER_USER; all users of a tenant together are capped by
 * EVENT_STREAMS_PER_TENANT and CHAT_STREAMS_PER_TENANT. Past a cap: 429 TOO_MANY_STREAMS
 * with Retry-After in the error shape; a closed stream gives its slot back.
 */
describe('stream caps on every stream', () => {
  let node: EmbeddedNode;
  const open: AbortController[] = [];
  before(async () => {
    node = await startEmbeddedNode({ EVENT_STREAMS_PER_USER: '2', CHAT_STREAMS_PER_USER: '1', EVENT_STREAMS_PER_TENANT: '7' });
  });
  after(async () => {
    for (const a of open) a.abort();
    await node.stop();
  });

  /** Opens a stream and keeps it open; resolves with the status once headers arrive. */
  const connect = async (path: string, token: string, init: RequestInit = {}) => {
    const abort = new AbortController();
    open.push(abort);
    const res = await fetch(`${node.base}${path}`, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) }, signal: abort.signal });
    const streaming = (res.headers.get('content-type') ?? '').startsWith('text/event-stream');
    const body = streaming ? null : ((await res.json()) as { error?: { code: string; requestId?: string } });
    // The Response is kept with the result: undici cancels the body of a Response that is
    // garbage-collected unread, which closes the stream and frees its slot behind the
    // test's back (seen once in CI: the tenant's eighth stream got a slot).
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body, response: res, close: () => abort.abort() };
  };
  const refusedAsCapped = (r: Awaited<ReturnType<typeof connect>>, where: string) => {
    assert.equal(r.status, 429, where);
    assert.equal(r.body?.error?.code, 'TOO_MANY_STREAMS', where);
    assert.ok(Number(r.retryAfter) >= 1, `${where}: Retry-After`);
  };

  it('caps job-event and document-event streams together per user, and frees a slot when one closes', async () => {
    const alice = await node.token(['editor'], 'alice', 'caps');
    const first = await connect('/api/v1/jobs/events', alice);
    const second = await connect('/api/v1/jobs/events', alice);
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    refusedAsCapped(await connect('/api/v1/jobs/events', alice), 'third job-event stream');
    refusedAsCapped(await connect('/api/v1/documents/00000000-0000-4000-8000-000000000000/events', alice), 'document events share the pool');
    const bob = await node.token(['editor'], 'bob', 'caps');
    assert.equal((await connect('/api/v1/jobs/events', bob)).status, 200, 'another user is not affected');

    first.close();
    // The slot comes back when the server sees the connection close.
    const again = await waitFor('a slot freed by the closed stream', async () => {
      const r = await connect('/api/v1/jobs/events', alice);
      if (r.status === 200) return r;
      return null;
    }, 10_000);
    assert.equal(again.status, 200);
  });

  it('caps model-event streams', async () => {
    const admin = await node.token(['admin'], 'ops', 'caps');
    assert.equal((await connect('/api/v1/admin/models/events', admin)).status, 200);
    assert.equal((await connect('/api/v1/admin/models/events', admin)).status, 200);
    refusedAsCapped(await connect('/api/v1/admin/models/events', admin), 'third model-event stream');
  });

  it('caps /v1/chat/completions, streamed or not, in the answer pool shared with chat answers', async () => {
    const carol = await node.token(['viewer'], 'carol', 'caps');
    const kv = await node.node.runtime.stores.kv();
    // Carol's one answer slot is held by an answer on another replica.
    await kv.set(streamSlotKey('answer', 'caps', 'carol', 0), 'elsewhere', 60_000);
    const completion = (stream: boolean) =>
      connect('/v1/chat/completions', carol, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'ragmesh-chat', stream, messages: [{ role: 'user', content: 'hello' }] }),
      });
    refusedAsCapped(await completion(true), 'streamed completion');
    refusedAsCapped(await completion(false), 'completion');
    const chat = await (await fetch(`${node.base}/api/v1/chats`, { method: 'POST', headers: { Authorization: `Bearer ${carol}`, 'Content-Type': 'application/json' }, body: '{}' })).json();
    refusedAsCapped(
      await connect(`/api/v1/chats/${chat.id}/messages`, carol, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'hello' }) }),
      'chat answer',
    );
    await kv.delete(streamSlotKey('answer', 'caps', 'carol', 0));
    const answered = await completion(false);
    assert.equal(answered.status, 200, JSON.stringify(answered.body));
  });

  it('caps the event streams of a whole tenant across its users (EVENT_STREAMS_PER_TENANT)', async () => {
    const users = await Promise.all(['u1', 'u2', 'u3', 'u4'].map((u) => node.token(['viewer'], u, 'crowd')));
    const held = [];
    for (const token of users.slice(0, 3)) for (let i = 0; i < 2; i++) held.push(await connect('/api/v1/jobs/events', token));
    held.push(await connect('/api/v1/jobs/events', users[3]!));
    assert.deepEqual(held.map((r) => r.status), [200, 200, 200, 200, 200, 200, 200]);
    const over = await connect('/api/v1/jobs/events', users[3]!);
    refusedAsCapped(over, 'the eighth event stream of the tenant (its user holds only one)');
    assert.match(JSON.stringify(over.body), /per tenant/);
    const elsewhere = await node.token(['viewer'], 'u1', 'quiet');
    assert.equal((await connect('/api/v1/jobs/events', elsewhere)).status, 200, 'another tenant is not affected');
    held[0]!.close();
    const again = await waitFor('a tenant slot freed by the closed stream', async () => {
      const r = await connect('/api/v1/jobs/events', users[3]!);
      return r.status === 200 ? r : null;
    }, 10_000);
    assert.equal(again.status, 200);
  });
});
