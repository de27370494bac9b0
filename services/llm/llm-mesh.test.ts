import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../lib/config/env.ts';
import { ensureTinyLlama } from '../../test/support/tiny-gguf.ts';
import { createLogger } from '../../lib/logging.ts';
import { publishFolder } from '../../lib/models/publish.ts';
import { ModelsRepository } from '../../lib/repositories/models.ts';
import { Stores } from '../../lib/runtime/stores.ts';
import { httpJson } from '../../test/support/http.ts';
import { TestMesh } from '../../test/support/mesh.ts';
import { waitFor, type NodeProcess } from '../../test/support/processes.ts';

/**
 * Across processes closing a stream reaches nobody: the gateway (one process) must
 * send the abort to the llm (another, on RabbitMQ) itself. Measured here with the
 * llama backend on the tiny GGUF, which would otherwise go on for thousands of tokens.
 */
describe('abort across the mesh (api and llm in separate processes)', () => {
  let mesh: TestMesh;
  let llm: NodeProcess;
  let token: string;
  let chatId: string;

  const ask = (content: string, maxTokens: number, signal?: AbortSignal) =>
    fetch(`${mesh.apiUrl}/api/v1/chats/${chatId}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ content, rag: false, maxTokens }),
      signal,
    });

  before(async () => {
    mesh = await TestMesh.create();
    const tiny = await ensureTinyLlama();
    // An operator publishes the model and points the alias at it before the llm starts.
    const config = loadConfig({ ...mesh.env, SERVICES: 'maintenance' });
    const stores = new Stores(config, createLogger('fatal'));
    try {
      await publishFolder(await stores.models(), tiny.folder);
      const repo = new ModelsRepository((await stores.db()).knex);
      await repo.register(tiny.manifest);
      await repo.switchTo('tiny-llama', '1', 'test');
    } finally {
      await stores.close();
    }
    [llm] = await Promise.all([
      mesh.start('llm', 'llm', { LLM_BACKEND: 'llama', LLM_MODEL: 'tiny-llama', LLM_THREADS: '1', LLM_MAX_TOKENS: '3000', LLM_CONTEXT_SIZE: '4096' }),
      mesh.start('gateway', 'api'),
    ]);
    await llm.waitForLog((e) => e.msg === 'llm model loaded', 60_000);
    token = await mesh.token('acme', 'alice', 'editor');
    chatId = (await httpJson(`${mesh.apiUrl}/api/v1/chats`, { method: 'POST', token })).body.id;
    await waitFor('the gateway to reach the llm', async () => (await (await ask('hi', 2)).text()).includes('event: done'), 60_000);
  });
  after(() => mesh?.stop());

  it('stops the generation in the llm process within a second of the client hanging up', async (t) => {
    const client = new AbortController();
    const res = await ask('Write a long story', 3000, client.signal);
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/event: token/g) ?? []).length < 3) text += new TextDecoder().decode((await reader.read()).value);
    const generationId = (llm.logs().findLast((e) => e.msg === 'generation ended') ?? {}).generationId;
    const closedAt = Date.now();
    client.abort();
    const ended = await llm.waitForLog((e) => e.msg === 'generation ended' && e.generationId !== generationId && e.outcome === 'aborted', 10_000);
    const stoppedAfter = Date.parse(String(ended.time)) - closedAt;
    t.diagnostic(`generation stopped ${Math.round(stoppedAfter)} ms after the client closed`);
    assert.ok(Number(ended.tokens) < 3000, `${String(ended.tokens)} tokens`);
  });
});
