import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ServiceBroker } from 'moleculer';
import { loadConfig } from '../../lib/config/env.ts';
import { createLogger } from '../../lib/logging.ts';
import { Stores } from '../../lib/runtime/stores.ts';
import llmService, { type GenerateParams, type LlmInfo } from './llm.service.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../../test/support/embedded.ts';
import { ndjson } from '../../lib/streams.ts';
import { NO_MODEL_ANSWER } from '../../lib/llm/extractive.ts';
import { OpenAiCompatibleBackend } from '../../lib/llm/openai.ts';
import type { GenerateEvent } from '../../lib/llm/types.ts';

/**
 * The `openai` backend against a real OpenAI-compatible server: another ragmesh node's
 * own /v1/chat/completions (its extractive backend behind it), over HTTP with SSE.
 */
describe('openai backend against a real OpenAI-compatible server (a second ragmesh)', () => {
  let upstream: EmbeddedNode;
  let baseUrl: string;
  let key: string;
  const ask = (content: string) => [{ role: 'user' as const, content }];

  before(async () => {
    upstream = await startEmbeddedNode();
    baseUrl = `${upstream.base}/v1`;
    key = await upstream.token(['editor'], 'llm-gateway', 'inference');
  });
  after(() => upstream?.stop());

  const collect = async (backend: OpenAiCompatibleBackend, maxTokens: number, signal = new AbortController().signal) => {
    const events: GenerateEvent[] = [];
    for await (const event of backend.generate({ messages: ask('Tell me a joke'), sources: [], grounded: false, maxTokens, signal })) events.push(event);
    return events;
  };

  it('streams the upstream answer token by token, with its usage', async () => {
    const events = await collect(new OpenAiCompatibleBackend(baseUrl, 'ragmesh-chat', key), 500);
    const tokens = events.filter((e) => e.type === 'token');
    assert.ok(tokens.length > 10, `${tokens.length} tokens`);
    assert.equal(tokens.map((t) => (t.type === 'token' ? t.text : '')).join(''), NO_MODEL_ANSWER);
    const done = events.at(-1)!;
    assert.equal(done.type, 'done');
    if (done.type === 'done') {
      assert.equal(done.finishReason, 'stop');
      assert.ok(done.usage.completionTokens > 10 && done.usage.promptTokens > 0);
    }
  });

  it('passes the token budget upstream and reports finishReason length', async () => {
    const events = await collect(new OpenAiCompatibleBackend(baseUrl, 'ragmesh-chat', key), 5);
    const done = events.at(-1)!;
    assert.equal(done.type === 'done' && done.finishReason, 'length');
    assert.ok(done.type === 'done' && done.usage.completionTokens <= 5);
  });

  it('stops reading and hangs up on abort', async () => {
    const abort = new AbortController();
    const events: GenerateEvent[] = [];
    for await (const event of new OpenAiCompatibleBackend(baseUrl, 'ragmesh-chat', key).generate({ messages: ask('hi'), sources: [], grounded: false, maxTokens: 500, signal: abort.signal })) {
      events.push(event);
      if (events.length === 2) abort.abort();
    }
    assert.ok(events.length <= 3, `${events.length} events after the abort`);
    assert.ok(!events.some((e) => e.type === 'done'));
  });

  it('maps upstream refusals to clear errors: a bad key, an unknown model, no server', async () => {
    await assert.rejects(() => collect(new OpenAiCompatibleBackend(baseUrl, 'ragmesh-chat', 'not-a-key'), 5), { type: 'LLM_ERROR', message: /401/ });
    await assert.rejects(() => collect(new OpenAiCompatibleBackend(baseUrl, 'no-such-model', key), 5), { type: 'LLM_ERROR', message: /404/ });
    await assert.rejects(() => collect(new OpenAiCompatibleBackend('http://127.0.0.1:9/v1', 'm', key), 5), { type: 'LLM_UNREACHABLE' });
  });

  it('serves llm.generate through the service when LLM_BACKEND=openai', async () => {
    const config = loadConfig({ LLM_BACKEND: 'openai', LLM_URL: baseUrl, LLM_MODEL: 'ragmesh-chat', LLM_API_KEY: key });
    const broker = new ServiceBroker({ logger: false });
    broker.createService(llmService({ config, stores: new Stores(config, createLogger('fatal')), logger: createLogger('fatal'), jwtSecret: '' }));
    await broker.start();
    try {
      assert.equal((await broker.call<LlmInfo>('llm.info')).version, 'openai:ragmesh-chat');
      const stream = await broker.call<Readable, GenerateParams>('llm.generate', { generationId: randomUUID(), messages: ask('hello') });
      let text = '';
      let last = '';
      for await (const line of ndjson(stream)) {
        if (line.type === 'token') text += line.text;
        last = line.type;
      }
      assert.equal(text, NO_MODEL_ANSWER);
      assert.equal(last, 'done');
    } finally {
      await broker.stop();
    }
  });
});
