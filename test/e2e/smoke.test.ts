import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startEmbeddedNode, type EmbeddedNode } from '../support/embedded.ts';
import { httpJson } from '../support/http.ts';
import { TestMesh } from '../support/mesh.ts';
import { runScript, waitFor } from '../support/processes.ts';

/** `npm run smoke` as an operator runs it after a deploy: a separate process, URL and token. */
const smoke = (url: string, token: string, extra: string[] = []) => runScript('scripts/smoke.ts', ['--url', url, '--token', token, ...extra], {});

const CHECKS = [
  'status: every service ready',
  'ingest: a tiny file reaches ready',
  'search: lexical finds it',
  'search: dense finds it',
  'search: hybrid finds it',
  'chat: SSE answer cites the document',
  'openai: /v1/models and /v1/chat/completions',
  'cleanup: deletes what it created',
];

function assertPassed(result: { code: number | null; stdout: string; stderr: string }): void {
  assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
  for (const name of CHECKS) assert.ok(result.stdout.includes(`✔ ${name}`), `${name}\n${result.stdout}`);
  assert.match(result.stdout, /OK: all 8 checks passed/);
}

describe('smoke suite against the embedded default', () => {
  let node: EmbeddedNode;
  before(async () => {
    node = await startEmbeddedNode();
  });
  after(() => node?.stop());

  it('passes every check and leaves nothing behind', async () => {
    const token = await node.token(['admin'], 'smoke', 'smoke');
    assertPassed(await smoke(node.base, token));
    const docs = await httpJson(`${node.base}/api/v1/documents`, { token });
    assert.equal(docs.status, 200);
    assert.equal(docs.body.items.length, 0, 'the smoke document was deleted');
    const chats = await httpJson(`${node.base}/api/v1/chats`, { token });
    assert.equal(chats.body.items.length, 0, 'the smoke chat was deleted');
  });

  it('exits 2 with usage when the URL or token is missing, 1 with a report when the token is wrong', async () => {
    const usage = await runScript('scripts/smoke.ts', ['--url', node.base], {});
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage: npm run smoke/);
    const bad = await smoke(node.base, 'not.a.token');
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /✘ status: every service ready — GET \/api\/v1\/status: HTTP 401/);
    assert.match(bad.stdout, /FAILED: \d+ of 8 checks/);
  });
});

describe('smoke suite against the mesh', () => {
  let mesh: TestMesh;
  let admin: string;
  before(async () => {
    mesh = await TestMesh.create();
    await Promise.all([mesh.start('gateway', 'api'), mesh.start('models', 'emb,llm,analyze,maintenance'), mesh.start('worker', 'ingest')]);
    admin = await mesh.token('smoke', 'smoke', 'admin');
    await mesh.waitForDiscovery(admin);
  });
  after(() => mesh?.stop());

  it('passes with every service up', async () => {
    assertPassed(await smoke(mesh.apiUrl, admin));
  });

  it('fails with a readable report naming the stopped service', async () => {
    await mesh.processes.find((p) => p.name === 'worker')!.stop();
    await waitFor('the gateway to see ingest gone', async () => (await httpJson(`${mesh.apiUrl}/api/v1/status`, { token: admin })).body.missing?.includes('ingest'), 30_000);
    const result = await smoke(mesh.apiUrl, admin, ['--timeout', '3']);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stdout, /✘ status: every service ready — ingest: no instance/);
    assert.match(result.stdout, /✘ ingest: a tiny file reaches ready — job \S+ still queued/);
    assert.match(result.stdout, /✘ search: dense finds it — not run: the document did not reach ready/);
    // What does not depend on ingest still works and is reported as such.
    assert.match(result.stdout, /✔ openai: \/v1\/models and \/v1\/chat\/completions/);
    assert.match(result.stdout, /FAILED: 6 of 8 checks:\n {2}- status: every service ready: ingest: no instance/);
  });
});
