import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ServiceBroker } from 'moleculer';
import { loadConfig } from '../../lib/config/env.ts';
import { NO_MODEL_ANSWER, NOT_FOUND_ANSWER } from '../../lib/llm/extractive.ts';
import { Gate } from '../../lib/llm/gate.ts';
import { createLogger } from '../../lib/logging.ts';
import { Stores } from '../../lib/runtime/stores.ts';
import { ndjson } from '../../lib/streams.ts';
import { LLM_ABORT_EVENT } from '../../lib/llm/types.ts';
import llmService, { type GenerateParams, type StreamLine } from './llm.service.ts';

async function collect(stream: Readable, onLine?: (line: StreamLine, all: StreamLine[]) => void): Promise<StreamLine[]> {
  const lines: StreamLine[] = [];
  for await (const line of ndjson(stream)) {
    lines.push(line);
    onLine?.(line, lines);
  }
  return lines;
}

const sources = [
  { n: 1, chunkId: randomUUID(), documentId: randomUUID(), title: 'Lease', page: 3, text: 'Арендатор вносит плату до пятого числа каждого месяца. Ключи выдаются в день подписания договора.' },
  { n: 2, chunkId: randomUUID(), documentId: randomUUID(), title: 'Handbook', page: 1, text: 'Employees get twenty-eight days of paid vacation. Vacation requests go to the team lead two weeks ahead.' },
];

describe('llm service (extractive backend)', () => {
  let broker: ServiceBroker;
  before(async () => {
    const config = loadConfig({ LLM_CONCURRENCY: '1', LLM_QUEUE_LIMIT: '1', LLM_MAX_TOKENS: '200' });
    broker = new ServiceBroker({ logger: false });
    broker.createService(llmService({ config, stores: new Stores(config, createLogger('fatal')), logger: createLogger('fatal'), jwtSecret: '' }));
    await broker.start();
  });
  after(() => broker.stop());

  const generate = (params: Partial<GenerateParams> & Pick<GenerateParams, 'messages'>) =>
    broker.call<Readable, GenerateParams>('llm.generate', { generationId: randomUUID(), sources: [], ...params });

  it('streams a grounded answer token by token, with citation markers and usage', async () => {
    const lines = await collect(await generate({ messages: [{ role: 'user', content: 'Сколько дней отпуска и когда вносится плата по договору?' }], sources }));
    const tokens = lines.filter((l) => l.type === 'token');
    assert.ok(tokens.length > 5, 'many tokens, not one blob');
    const text = tokens.map((t) => (t.type === 'token' ? t.text : '')).join('');
    assert.match(text, /пятого числа каждого месяца\. \[1\]/);
    const done = lines.at(-1)!;
    assert.equal(done.type, 'done');
    if (done.type === 'done') {
      assert.deepEqual(done.citations, [1]);
      assert.equal(done.finishReason, 'stop');
      assert.ok(done.usage.completionTokens > 0 && done.usage.promptTokens > done.usage.completionTokens);
    }
  });

  it('says plainly that no generative model is configured, in plain chat', async () => {
    const lines = await collect(await generate({ messages: [{ role: 'user', content: 'Write me a poem' }] }));
    assert.equal(lines.filter((l) => l.type === 'token').map((l) => (l.type === 'token' ? l.text : '')).join(''), NO_MODEL_ANSWER);
  });

  it('answers that the sources do not cover a question they do not cover', async () => {
    const lines = await collect(await generate({ messages: [{ role: 'user', content: 'quantum chromodynamics' }], sources }));
    assert.equal(lines.filter((l) => l.type === 'token').map((l) => (l.type === 'token' ? l.text : '')).join(''), NOT_FOUND_ANSWER);
  });

  it('stops at the token budget with finishReason length', async () => {
    const lines = await collect(await generate({ messages: [{ role: 'user', content: 'vacation days plata' }], sources, maxTokens: 3 }));
    const done = lines.at(-1)!;
    assert.equal(done.type === 'done' && done.finishReason, 'length');
    assert.ok(done.type === 'done' && done.usage.completionTokens <= 3);
  });

  it('stops a generation on the abort event, and frees its slot', async () => {
    const generationId = randomUUID();
    const long = [{ ...sources[1]!, text: Array.from({ length: 300 }, (_, i) => `Vacation rule ${i} applies to every employee.`).join(' ') }];
    const stream = await generate({ generationId, messages: [{ role: 'user', content: 'vacation rule employee' }], sources: long, maxTokens: 200 });
    let aborted = false;
    // Aborted on the first token, which is sent at once (later ones may be held a few ms and come together).
    const lines = await collect(stream, (_line, all) => {
      if (!aborted && all.length === 1) {
        aborted = true;
        void broker.broadcast(LLM_ABORT_EVENT, { generationId });
      }
    });
    assert.ok(lines.length < 20, `${lines.length} lines after the abort`);
    assert.ok(!lines.some((l) => l.type === 'done'));
    // The slot is free again: a new generation runs.
    assert.equal((await collect(await generate({ messages: [{ role: 'user', content: 'hi' }] }))).at(-1)!.type, 'done');
  });
});

describe('Gate', () => {
  it('lets `limit` in, queues `queueLimit`, and refuses the rest with OVERLOADED', async () => {
    const gate = new Gate(1, 1, 'llm');
    const first = await gate.acquire();
    const second = gate.acquire();
    await assert.rejects(() => gate.acquire(), { code: 503, type: 'OVERLOADED', retryable: true });
    first();
    const release = await second;
    assert.deepEqual(gate.load, { active: 1, waiting: 0 });
    release();
    assert.deepEqual(gate.load, { active: 0, waiting: 0 });
  });
});
