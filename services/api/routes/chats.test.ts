import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Role } from '../../../lib/auth/jwt.ts';
import { NO_MODEL_ANSWER, NOT_FOUND_ANSWER } from '../../../lib/llm/extractive.ts';
import type { RunningNode } from '../../../boot.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../../../test/support/embedded.ts';
import { textPdf } from '../../../test/fixtures/documents.ts';
import { httpJson } from '../../../test/support/http.ts';
import { upload, waitForJob } from '../../../test/support/ingest.ts';
import { STREAMS_PER_USER } from './chats.ts';
import { streamSlotKey } from '../../../lib/auth/stream-slots.ts';
import { parseSse } from '../../../lib/streams.ts';
import { LLM_ABORT_EVENT } from '../../../lib/llm/types.ts';

/** Reads an SSE answer to the end: [event, data] pairs. */
async function ask(url: string, token: string, body: unknown, init: { method?: string; signal?: AbortSignal } = {}) {
  const res = await fetch(url, {
    method: init.method ?? 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'text/event-stream' },
    body: init.method === 'GET' ? undefined : JSON.stringify(body),
    signal: init.signal,
  });
  const text = await res.text();
  const events = parseSse(text);
  return { res, events, text };
}

describe('chats and RAG answers over SSE (embedded profile)', () => {
  let embedded: EmbeddedNode;
  let node: RunningNode;
  let base: string;
  let alice: string;
  const token = (roles: Role[], userId?: string, tenantId?: string) => embedded.token(roles, userId, tenantId);

  before(async () => {
    embedded = await startEmbeddedNode();
    ({ node, base } = embedded);
    alice = await token(['editor']);
    const pdf = await textPdf([
      ['Office handbook', 'The office opens at nine in the morning.'],
      ['Договор аренды', 'Арендатор вносит арендную плату до пятого числа каждого месяца.'],
    ]);
    const res = await upload(base, alice, { name: 'handbook.pdf', content: pdf });
    assert.equal((await waitForJob(base, alice, res.body.job.id)).status, 'ready');
  });
  after(() => embedded.stop());

  it('creates, lists, renames and deletes chats, each visible to its owner only', async () => {
    const created = await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: alice, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title: 'Lease questions' }) });
    assert.equal(created.status, 201);
    const renamed = await httpJson(`${base}/api/v1/chats/${created.body.id}`, { method: 'PATCH', token: alice, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title: 'Lease' }) });
    assert.equal(renamed.body.title, 'Lease');
    assert.ok((await httpJson(`${base}/api/v1/chats`, { token: alice })).body.items.some((c: { id: string }) => c.id === created.body.id));
    const bob = await token(['editor'], 'bob');
    assert.equal((await httpJson(`${base}/api/v1/chats/${created.body.id}`, { token: bob })).status, 404);
    const otherTenant = await token(['admin'], 'alice', 'globex');
    assert.equal((await httpJson(`${base}/api/v1/chats/${created.body.id}`, { token: otherTenant })).status, 404);
    assert.equal((await httpJson(`${base}/api/v1/chats/${created.body.id}`, { method: 'DELETE', token: alice })).status, 200);
    assert.equal((await httpJson(`${base}/api/v1/chats/${created.body.id}`, { token: alice })).status, 404);
  });

  it('answers with sources, streamed tokens and a citation of the right page; the exchange is stored', async () => {
    const chat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: alice })).body;
    const { res, events } = await ask(`${base}/api/v1/chats/${chat.id}/messages`, alice, { content: 'До какого числа вносится арендная плата?' });
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    assert.deepEqual([...new Set(events.map((e) => e.event))], ['meta', 'sources', 'token', 'done']);
    assert.equal(events[0]!.data.chatId, chat.id);
    const answer = events.filter((e) => e.event === 'token').map((e) => e.data.text).join('');
    assert.match(answer, /пятого числа каждого месяца/);
    const done = events.at(-1)!.data;
    assert.equal(done.citations[0].page, 2);
    assert.match(answer, new RegExp(`\\[${done.citations[0].n}\\]`));

    const stored = await httpJson(`${base}/api/v1/chats/${chat.id}`, { token: alice });
    assert.deepEqual(stored.body.messages.map((m: { role: string }) => m.role), ['user', 'assistant']);
    assert.equal(stored.body.messages[1].content, answer);
    assert.equal(stored.body.messages[1].sources[0].page, 2);
    // The stored sources are the ones the `sources` event showed: snippet and both legs' ranks included.
    assert.deepEqual(stored.body.messages[1].sources, events.find((e) => e.event === 'sources')!.data.sources);
    assert.ok(stored.body.messages[1].sources.every((s: { ranks: { lexical: unknown; dense: unknown } }) => 'lexical' in s.ranks && 'dense' in s.ranks));

    // The same question again: answered from the cache, same text.
    const again = await ask(`${base}/api/v1/chats/${chat.id}/messages`, alice, { content: 'до какого числа вносится арендная плата' });
    assert.equal(again.events.at(-1)!.data.cached, true);
    assert.equal(again.events.filter((e) => e.event === 'token').map((e) => e.data.text).join(''), answer);
  });

  it('says plainly in plain chat that no generative model is configured (EventSource GET variant)', async () => {
    const chat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: alice })).body;
    const { events } = await ask(`${base}/api/v1/chats/${chat.id}/messages/stream?content=${encodeURIComponent('Tell me a joke')}&rag=false`, alice, null, { method: 'GET' });
    assert.ok(!events.some((e) => e.event === 'sources'));
    assert.equal(events.filter((e) => e.event === 'token').map((e) => e.data.text).join(''), NO_MODEL_ANSWER);
  });

  it("never gives another tenant's chunks as sources", async () => {
    const outsider = await token(['admin'], 'alice', 'globex');
    const chat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: outsider })).body;
    const { events } = await ask(`${base}/api/v1/chats/${chat.id}/messages`, outsider, { content: 'До какого числа вносится арендная плата?' });
    assert.deepEqual(events.find((e) => e.event === 'sources')!.data.sources, []);
    assert.equal(events.filter((e) => e.event === 'token').map((e) => e.data.text).join(''), NOT_FOUND_ANSWER);
    assert.deepEqual(events.at(-1)!.data.citations, []);
  });

  it('takes the token from access_token for the EventSource GET only', async () => {
    const chat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: alice })).body;
    const url = `${base}/api/v1/chats/${chat.id}/messages/stream?content=${encodeURIComponent('Tell me a joke')}&rag=false&access_token=${alice}`;
    const res = await fetch(url, { headers: { Accept: 'text/event-stream' } });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /event: done/);
    const post = await httpJson(`${base}/api/v1/chats/${chat.id}/messages?access_token=${alice}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'hi' }) });
    assert.equal(post.status, 401);
    assert.equal((await fetch(url.replace(alice, 'forged.token.value'))).status, 401);
  });

  it('refuses a user past the concurrent stream cap with 429, counted in the KV store', async () => {
    const chat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: alice })).body;
    const kv = await node.stores.kv();
    // Streams held elsewhere (another api replica) fill every slot.
    for (let i = 0; i < STREAMS_PER_USER; i++) await kv.set(streamSlotKey('answer', 'acme', 'carol', i), 'elsewhere', 60_000);
    const carol = await token(['viewer'], 'carol');
    const carolChat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: carol })).body;
    const refused = await httpJson(`${base}/api/v1/chats/${carolChat.id}/messages`, { method: 'POST', token: carol, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'hello' }) });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.code, 'TOO_MANY_STREAMS');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    // The chat was read while the slot was asked for; nothing was written for the refused question.
    assert.deepEqual((await httpJson(`${base}/api/v1/chats/${carolChat.id}`, { token: carol })).body.messages, []);
    // The cap is still answered before anything about the chat itself.
    const unknownChat = await httpJson(`${base}/api/v1/chats/00000000-0000-4000-8000-000000000000/messages`, { method: 'POST', token: carol, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'hello' }) });
    assert.equal(unknownChat.status, 429);
    const ok = await ask(`${base}/api/v1/chats/${chat.id}/messages`, alice, { content: 'office hours' });
    assert.equal(ok.res.status, 200, 'other users are not affected');
  });

  it('fails the answer visibly when its question cannot be stored (written while the answer starts), and stores no answer', async () => {
    const chat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: alice })).body;
    const { chats } = await node.stores.repos();
    const addMessage = chats.addMessage;
    chats.addMessage = async function (this: typeof chats, ...args: Parameters<typeof addMessage>) {
      if (args[1] === chat.id && args[2].role === 'user') throw new Error('the disk is full');
      return addMessage.apply(this, args);
    };
    try {
      const { res, events } = await ask(`${base}/api/v1/chats/${chat.id}/messages`, alice, { content: 'Tell me a joke', rag: false });
      assert.ok(!events.some((e) => e.event === 'done'), 'no done: the question was not kept');
      assert.ok(res.status >= 500 || events.at(-1)?.event === 'error', `an HTTP error or an error event, got ${res.status} ${events.at(-1)?.event}`);
    } finally {
      chats.addMessage = addMessage;
    }
    assert.deepEqual((await httpJson(`${base}/api/v1/chats/${chat.id}`, { token: alice })).body.messages, []);
  });

  /** The llm.generate calls the api makes while `run` runs: the turns each was given. */
  async function generateCalls(run: () => Promise<void>): Promise<Array<Array<{ role: string; content: string }>>> {
    const calls: Array<Array<{ role: string; content: string }>> = [];
    const call = node.broker.call;
    node.broker.call = function (this: typeof node.broker, ...args: Parameters<typeof call>) {
      if (args[0] === 'llm.generate') calls.push((args[1] as { messages: Array<{ role: string; content: string }> }).messages.map(({ role, content }) => ({ role, content })));
      return call.apply(this, args);
    } as typeof call;
    try {
      await run();
    } finally {
      node.broker.call = call;
    }
    return calls;
  }
  const turnsOf = (messages: Array<{ role: string; content: string }>) => messages.map(({ role, content }) => ({ role, content }));

  it('answers from the turns the read found when the chat was written elsewhere since this api saw it (the early generation is dropped)', async () => {
    const chat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: alice })).body;
    const url = `${base}/api/v1/chats/${chat.id}/messages`;
    const first = await generateCalls(async () => void (await ask(url, alice, { content: 'first question', rag: false })));
    assert.deepEqual(first, [[{ role: 'user', content: 'first question' }]], 'a new chat starts from no turns, once');
    const afterFirst = turnsOf((await httpJson(`${base}/api/v1/chats/${chat.id}`, { token: alice })).body.messages);
    // Another api replica answers in this chat: this process does not see it.
    const { chats } = await node.stores.repos();
    const scope = { tenantId: 'acme' } as Parameters<typeof chats.addMessage>[0];
    await chats.addMessage(scope, chat.id, { role: 'user', content: 'asked through another replica' });
    await chats.addMessage(scope, chat.id, { role: 'assistant', content: 'answered there' });
    const written = [...afterFirst, { role: 'user', content: 'asked through another replica' }, { role: 'assistant', content: 'answered there' }];

    let answer: Awaited<ReturnType<typeof ask>> | null = null;
    const calls = await generateCalls(async () => void (answer = await ask(url, alice, { content: 'second question', rag: false })));
    // Started from what this api knew, then again from what the read found.
    assert.deepEqual(calls, [[...afterFirst, { role: 'user', content: 'second question' }], [...written, { role: 'user', content: 'second question' }]]);
    const { res, events } = answer!;
    assert.equal(res.status, 200);
    assert.deepEqual(events.map((e) => e.event).filter((e) => e !== 'token'), ['meta', 'done'], 'one answer reached the client');
    assert.equal(events.filter((e) => e.event === 'token').map((e) => e.data.text).join(''), NO_MODEL_ANSWER);
    const stored = turnsOf((await httpJson(`${base}/api/v1/chats/${chat.id}`, { token: alice })).body.messages);
    assert.deepEqual(stored, [...written, { role: 'user', content: 'second question' }, { role: 'assistant', content: NO_MODEL_ANSWER }]);

    // What the read found is what this api knows now: the next answer starts once, from it.
    const third = await generateCalls(async () => void (await ask(url, alice, { content: 'third question', rag: false })));
    assert.deepEqual(third, [[...stored, { role: 'user', content: 'third question' }]]);
  });

  it('answers a chat this api has never seen (made through another replica) once its read is in, from the read\'s turns', async () => {
    const { chats } = await node.stores.repos();
    const scope = { tenantId: 'acme' } as Parameters<typeof chats.create>[0];
    const chat = await chats.create(scope, 'alice', 'made elsewhere');
    await chats.addMessage(scope, chat.id, { role: 'user', content: 'asked there' });
    await chats.addMessage(scope, chat.id, { role: 'assistant', content: 'answered there' });
    let answer: Awaited<ReturnType<typeof ask>> | null = null;
    const calls = await generateCalls(async () => void (answer = await ask(`${base}/api/v1/chats/${chat.id}/messages`, alice, { content: 'and here?', rag: false })));
    assert.deepEqual(calls, [[{ role: 'user', content: 'asked there' }, { role: 'assistant', content: 'answered there' }, { role: 'user', content: 'and here?' }]]);
    assert.equal(answer!.events.at(-1)!.event, 'done');
  });

  it('answers 404 with no answer for a chat deleted elsewhere since this api saw it, and starts nothing for a chat another user owns', async () => {
    const chat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: alice })).body;
    const url = `${base}/api/v1/chats/${chat.id}/messages`;
    await ask(url, alice, { content: 'first question', rag: false });
    const post = (who: string) => httpJson(url, { method: 'POST', token: who, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'tell me', rag: false }) });

    // Another user, and the same user name in another tenant: this api knows the chat, but not as theirs.
    const bob = await token(['editor'], 'bob');
    const otherTenant = await token(['admin'], 'alice', 'globex');
    const strangers = await generateCalls(async () => {
      for (const who of [bob, otherTenant]) {
        const res = await post(who);
        assert.equal(res.status, 404);
        assert.equal(res.body.error.code, 'CHAT_NOT_FOUND');
      }
    });
    assert.deepEqual(strangers, [], 'no generation started for a chat the caller does not own');

    // Deleted through another replica: this api still knows its turns.
    const { chats } = await node.stores.repos();
    assert.ok(await chats.delete({ tenantId: 'acme' } as Parameters<typeof chats.delete>[0], 'alice', chat.id));
    let gone: Awaited<ReturnType<typeof post>> | null = null;
    const early = await generateCalls(async () => void (gone = await post(alice)));
    assert.equal(early.length, 1, 'the answer started before the read, from the turns this api knew');
    assert.equal(gone!.status, 404);
    assert.equal(gone!.body.error.code, 'CHAT_NOT_FOUND');
    assert.ok(!JSON.stringify(gone!.body).includes(NO_MODEL_ANSWER.slice(0, 20)), 'no token of the answer leaked');
    // Forgotten: the next ask for it starts nothing before the read.
    const after = await generateCalls(async () => assert.equal((await post(alice)).status, 404));
    assert.deepEqual(after, []);
  });

  it('asks the llm before the slot is held for a chat it knows, and aborts that generation when the slot is refused; past the cap in this process it asks nothing first', async () => {
    const kv = await node.stores.kv();
    // Erin's answers elsewhere (another api replica) fill every slot.
    for (let i = 0; i < STREAMS_PER_USER; i++) await kv.set(streamSlotKey('answer', 'acme', 'erin', i), 'elsewhere', 60_000);
    const erin = await token(['viewer'], 'erin');
    const chat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: erin })).body;
    const post = (who: string, id: string, rag = false) => httpJson(`${base}/api/v1/chats/${id}/messages`, { method: 'POST', token: who, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'hello', rag }) });
    const aborted: string[] = [];
    const broadcast = node.broker.broadcast;
    node.broker.broadcast = function (this: typeof node.broker, ...args: Parameters<typeof broadcast>) {
      if (args[0] === LLM_ABORT_EVENT) aborted.push(((args as unknown[])[1] as { generationId: string }).generationId);
      return broadcast.apply(this, args);
    } as typeof broadcast;
    const ids: string[] = [];
    const call = node.broker.call;
    node.broker.call = function (this: typeof node.broker, ...args: Parameters<typeof call>) {
      if (args[0] === 'llm.generate') ids.push((args[1] as { generationId: string }).generationId);
      if (args[0] === 'api.search') ids.push('search');
      return call.apply(this, args);
    } as typeof call;
    try {
      const refused = await post(erin, chat.id);
      assert.equal(refused.status, 429);
      assert.equal(refused.body.error.code, 'TOO_MANY_STREAMS');
      assert.equal(ids.length, 1, 'the chat is known: the answer started before the slot was refused');
      assert.deepEqual(aborted, ids, 'and was aborted');
      assert.deepEqual((await httpJson(`${base}/api/v1/chats/${chat.id}`, { token: erin })).body.messages, [], 'nothing stored');
      // A RAG question starts with its search: nothing of it before the slot.
      const rag = await post(erin, chat.id, true);
      assert.equal(rag.status, 429);
      assert.equal(ids.length, 1, 'neither a search nor a generation for the refused RAG question');
    } finally {
      node.broker.broadcast = broadcast;
      node.broker.call = call;
    }

    // Frank holds his cap of answers in this process (their generations held back): his
    // next question in a chat this api knows waits for its slot, and is refused without
    // asking the llm.
    const frank = await token(['viewer'], 'frank');
    const frankChat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: frank })).body;
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => (letGo = resolve));
    let started = 0;
    let allStarted!: () => void;
    const capReached = new Promise<void>((resolve) => (allStarted = resolve));
    node.broker.call = function (this: typeof node.broker, ...args: Parameters<typeof call>) {
      if (args[0] !== 'llm.generate') return call.apply(this, args);
      if (++started === STREAMS_PER_USER) allStarted();
      return gate.then(() => call.apply(this, args)) as ReturnType<typeof call>;
    } as typeof call;
    try {
      const held = Array.from({ length: STREAMS_PER_USER }, () => ask(`${base}/api/v1/chats/${frankChat.id}/messages`, frank, { content: 'wait for it', rag: false }));
      await capReached;
      const past = await post(frank, frankChat.id);
      assert.equal(past.status, 429);
      assert.equal(started, STREAMS_PER_USER, 'no generation asked for the answer past the cap');
      letGo();
      for (const answer of await Promise.all(held)) assert.equal(answer.res.status, 200);
    } finally {
      letGo();
      node.broker.call = call;
    }
  });

  it('refuses empty and oversized questions with a 400', async () => {
    const chat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token: alice })).body;
    const post = (body: unknown) => httpJson(`${base}/api/v1/chats/${chat.id}/messages`, { method: 'POST', token: alice, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await post({ content: '   ' })).body.error.code, 'EMPTY_MESSAGE');
    assert.equal((await post({ content: 'x'.repeat(9000) })).body.error.code, 'MESSAGE_TOO_LONG');
    assert.equal((await post({})).status, 400);
  });
});
