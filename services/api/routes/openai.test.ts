import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { NOT_FOUND_ANSWER } from '../../../lib/llm/extractive.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../../../test/support/embedded.ts';
import { textPdf } from '../../../test/fixtures/documents.ts';
import { upload, waitForJob } from '../../../test/support/ingest.ts';

/** The official `openai` npm client, unchanged, against ragmesh's /v1 with a ragmesh JWT as its key. */
describe('OpenAI-compatible API', () => {
  let embedded: EmbeddedNode;
  let acme: OpenAI;
  let globex: OpenAI;
  const question = 'When does the office open in the morning?';

  before(async () => {
    embedded = await startEmbeddedNode();
    const base = embedded.base;
    const key = (tenantId: string) => embedded.token(['editor'], 'dev', tenantId);
    acme = new OpenAI({ baseURL: `${base}/v1`, apiKey: await key('acme'), maxRetries: 0 });
    globex = new OpenAI({ baseURL: `${base}/v1`, apiKey: await key('globex'), maxRetries: 0 });
    const res = await upload(base, await key('acme'), { name: 'handbook.pdf', content: await textPdf([['Cover page'], ['The office opens at nine in the morning.']]) });
    assert.equal((await waitForJob(base, await key('acme'), res.body.job.id)).status, 'ready');
  });
  after(() => embedded.stop());

  it('lists the chat models and the embedding aliases', async () => {
    const ids = [];
    for await (const model of acme.models.list()) ids.push(model.id);
    assert.ok(ids.includes('ragmesh') && ids.includes('ragmesh-chat'), ids.join());
    assert.ok(ids.length >= 3, 'an embedding alias too');
  });

  it('answers a chat completion from the caller\'s documents, with citations', async () => {
    const completion = await acme.chat.completions.create({ model: 'ragmesh', messages: [{ role: 'user', content: question }] });
    const content = completion.choices[0]!.message.content!;
    assert.match(content, /opens at nine in the morning\. \[1\]/);
    assert.equal(completion.choices[0]!.finish_reason, 'stop');
    assert.ok(completion.usage!.completion_tokens > 0);
    const citations = (completion as unknown as { ragmesh: { citations: Array<{ page: number }> } }).ragmesh.citations;
    assert.equal(citations[0]!.page, 2);
  });

  it('streams the same answer with stream: true', async () => {
    const stream = await acme.chat.completions.create({ model: 'ragmesh', messages: [{ role: 'user', content: question }], stream: true, stream_options: { include_usage: true } });
    let text = '';
    let chunks = 0;
    let usage = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? '';
      usage = chunk.usage?.completion_tokens ?? usage;
    }
    assert.ok(chunks > 5, `${chunks} chunks`);
    assert.match(text, /opens at nine in the morning\./);
    assert.ok(usage > 0);
  });

  it('never shows one tenant\'s documents to another', async () => {
    const completion = await globex.chat.completions.create({ model: 'ragmesh', messages: [{ role: 'user', content: question }] });
    assert.equal(completion.choices[0]!.message.content, NOT_FOUND_ANSWER);
  });

  it('embeds with an embedding alias', async () => {
    const ids = [];
    for await (const model of acme.models.list()) ids.push(model.id);
    const alias = ids.find((id) => !id.startsWith('ragmesh'))!;
    const result = await acme.embeddings.create({ model: alias, input: ['договор аренды', 'lease agreement'] });
    assert.equal(result.data.length, 2);
    assert.ok(result.data[0]!.embedding.length > 8);
  });

  it('refuses a bad key and an unknown model with OpenAI-style errors', async () => {
    const bad = new OpenAI({ baseURL: acme.baseURL, apiKey: 'not-a-token', maxRetries: 0 });
    await assert.rejects(() => bad.chat.completions.create({ model: 'ragmesh', messages: [{ role: 'user', content: 'x' }] }), { status: 401 });
    await assert.rejects(() => acme.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }), { status: 404 });
  });
});
