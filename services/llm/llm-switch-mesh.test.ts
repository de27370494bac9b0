import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../lib/config/env.ts';
import { createLogger } from '../../lib/logging.ts';
import { publishFolder } from '../../lib/models/publish.ts';
import { ModelsRepository } from '../../lib/repositories/models.ts';
import { Stores } from '../../lib/runtime/stores.ts';
import { httpJson } from '../../test/support/http.ts';
import { TestMesh } from '../../test/support/mesh.ts';
import { waitFor, type NodeProcess } from '../../test/support/processes.ts';
import { TINY_LLAMA, ensureTinyLlama } from '../../test/support/tiny-gguf.ts';

/**
 * Switching an llm alias on a mesh with two llm nodes (separate processes, each with
 * its own model cache, on RabbitMQ): every node loads and warms the version before the
 * flag moves; one node that cannot load it vetoes the switch, the flag stays and both
 * nodes keep serving the version they had; once that node can load it, the switch goes
 * through and both serve the new version.
 */
describe('llm switch across several llm nodes (warm everywhere, any node vetoes)', () => {
  let mesh: TestMesh;
  let llmA: NodeProcess;
  let llmB: NodeProcess;
  let admin: string;
  let cacheB: string;

  /** Versions an llm process has swapped in, in order, from its own log. */
  const served = (node: NodeProcess) => node.logs().filter((e) => e.msg === 'llm model loaded').map((e) => String(e.model));
  const switchTo = (version: string) =>
    httpJson(`${mesh.apiUrl}/api/v1/admin/models/tiny-llama/switch`, {
      method: 'POST',
      token: admin,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ version }),
    });
  const activeVersion = async () => {
    const res = await httpJson(`${mesh.apiUrl}/api/v1/admin/models/status?alias=tiny-llama`, { token: admin });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return (res.body.models as Array<{ alias: string; activeVersion: string | null }>).find((m) => m.alias === 'tiny-llama')?.activeVersion;
  };

  before(async () => {
    mesh = await TestMesh.create();
    // Three versions of the same alias, different weights; v1 active before the llm nodes start.
    const versions = await Promise.all(['1', '2', '3'].map((version, i) => ensureTinyLlama({ version, shape: { ...TINY_LLAMA, seed: 11 + i } })));
    const stores = new Stores(loadConfig({ ...mesh.env, SERVICES: 'maintenance' }), createLogger('fatal'));
    try {
      const repo = new ModelsRepository((await stores.db()).knex);
      for (const v of versions) {
        await publishFolder(await stores.models(), v.folder);
        await repo.register(v.manifest);
      }
      await repo.switchTo('tiny-llama', '1', 'test');
    } finally {
      await stores.close();
    }
    const llmEnv = { LLM_BACKEND: 'llama', LLM_MODEL: 'tiny-llama', LLM_THREADS: '1', LLM_CONTEXT_SIZE: '512' };
    cacheB = `${mesh.env.DATA_DIR}/cache-llm-b`;
    [llmA, llmB] = await Promise.all([
      mesh.start('llm-a', 'llm', { ...llmEnv, MODELS_CACHE_DIR: `${mesh.env.DATA_DIR}/cache-llm-a` }),
      mesh.start('llm-b', 'llm', { ...llmEnv, MODELS_CACHE_DIR: cacheB }),
      mesh.start('gateway', 'api,maintenance'),
    ]);
    await Promise.all([llmA, llmB].map((n) => n.waitForLog((e) => e.msg === 'llm model loaded' && e.model === 'llama:tiny-llama@1', 60_000)));
    admin = await mesh.token('ops', 'root', 'admin');
    await waitFor('the gateway to see both llm nodes', async () => {
      const res = await httpJson(`${mesh.apiUrl}/api/v1/status`, { token: admin });
      const nodes = JSON.stringify(res.body);
      return res.status === 200 && nodes.includes('e2e-llm-a') && nodes.includes('e2e-llm-b');
    }, 60_000);
  });
  after(() => mesh?.stop());

  it('loads the new version on every llm node before the flag moves', async () => {
    const res = await switchTo('2');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.match(String(res.body.warmedOn), /llm \(2 nodes\)/);
    assert.equal(await activeVersion(), '2');
    await waitFor('both llm nodes to serve version 2', async () => served(llmA).at(-1) === 'llama:tiny-llama@2' && served(llmB).at(-1) === 'llama:tiny-llama@2', 60_000);
  });

  it('lets one node that cannot load the version veto the switch, and leaves both serving the old one', async () => {
    // Node B cannot materialise version 3: a file stands where its cache folder would go.
    await mkdir(path.join(cacheB, 'tiny-llama'), { recursive: true });
    await writeFile(path.join(cacheB, 'tiny-llama', '3'), 'not a folder');
    const res = await switchTo('3');
    assert.equal(res.status, 409, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'MODEL_SWITCH_VETOED');
    assert.match(res.body.error.message, /1 of 2 llm node\(s\)/);
    assert.match(res.body.error.message, /e2e-llm-b/);
    assert.doesNotMatch(res.body.error.message, /e2e-llm-a/);
    assert.equal(await activeVersion(), '2', 'the flag did not move');
    // Node A warmed version 3 but never swapped it in; both still answer with version 2.
    assert.equal(served(llmA).at(-1), 'llama:tiny-llama@2');
    assert.equal(served(llmB).at(-1), 'llama:tiny-llama@2');
    const chat = await httpJson(`${mesh.apiUrl}/v1/chat/completions`, {
      method: 'POST',
      token: await mesh.token('acme', 'alice', 'editor'),
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'ragmesh-chat', messages: [{ role: 'user', content: 'hello' }], max_tokens: 3 }),
    });
    assert.equal(chat.status, 200, JSON.stringify(chat.body));
  });

  it('switches once the node that vetoed can load the version', async () => {
    await rm(path.join(cacheB, 'tiny-llama', '3'), { force: true });
    const res = await switchTo('3');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(await activeVersion(), '3');
    await waitFor('both llm nodes to serve version 3', async () => served(llmA).at(-1) === 'llama:tiny-llama@3' && served(llmB).at(-1) === 'llama:tiny-llama@3', 60_000);
  });
});
