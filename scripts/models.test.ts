import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeHfRepo } from '../test/support/hf-repo.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../test/support/embedded.ts';
import { httpJson } from '../test/support/http.ts';
import { upload, waitForJob } from '../test/support/ingest.ts';
import { ROOT } from '../test/support/processes.ts';
import { syntheticText } from '../test/support/mesh.ts';

/**
 * docs/models.md's runbook, run line by line as an operator would paste it, against a
 * running embedded node: import, refused switch, re-index, status, coverage, compare,
 * switch, rollback, refused delete, delete. The CLI finds the node through RAGMESH_URL
 * and signs its admin token with the node's own secret (DATA_DIR).
 */

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function sh(command: string, env: Record<string, string>): Promise<Run> {
  const child = spawn('bash', ['-c', command], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

/** The runbook's commands with the error code each refused one must print. */
async function runbookCommands(): Promise<Array<{ command: string; refused: string | null }>> {
  const doc = await readFile(path.join(ROOT, 'docs/models.md'), 'utf8');
  const section = doc.slice(doc.indexOf('<!-- runbook:start -->'), doc.indexOf('<!-- runbook:end -->'));
  return section
    .split('\n')
    .filter((line) => line.startsWith('npm run models'))
    .map((line) => {
      const refused = /#\s*refused:\s*([A-Z_]+)/.exec(line)?.[1] ?? null;
      return { command: line.replace(/\s+#.*$/, ''), refused };
    });
}

describe('docs/models.md runbook against a running embedded node', () => {
  let node: EmbeddedNode;
  let env: Record<string, string>;
  let editor: string;
  let admin: string;

  const models = async (args: string): Promise<Run> => sh(`npm run -s models -- ${args}`, env);

  before(async () => {
    node = await startEmbeddedNode();
    const dataDir = node.node.runtime.config.dataDir;
    env = {
      DATA_DIR: dataDir,
      RAGMESH_URL: node.base,
      LOG_LEVEL: 'warn',
      OLD_MODEL: await writeHfRepo(path.join(dataDir, 'hub', 'e5-v1'), { seed: 1, prompts: { query: 'query: ', passage: 'passage: ' } }),
      NEW_MODEL: await writeHfRepo(path.join(dataDir, 'hub', 'e5-v2'), { seed: 2, prompts: { query: 'query: ', passage: 'passage: ' } }),
    };
    editor = await node.token(['editor']);
    admin = await node.token(['admin'], 'root');
    for (let i = 0; i < 3; i++) {
      const res = await upload(node.base, editor, { name: `contract-${i}.txt`, content: syntheticText(12, i + 1), type: 'text/plain' });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      await waitForJob(node.base, editor, res.body.job.id, ['ready']);
    }
    // What the runbook assumes: e5@1 serving tenant acme.
    for (const step of ['import "$OLD_MODEL" --alias e5 --version 1 --yes --publish', 'reindex e5 1 --wait', 'switch e5 1']) {
      const run = await models(step);
      assert.equal(run.code, 0, `${step}: ${run.stderr}${run.stdout}`);
    }
  });
  after(async () => {
    await node?.stop();
  });

  it('every runbook command works as written, and refused ones say why', async () => {
    const commands = await runbookCommands();
    assert.ok(commands.length >= 10, 'the runbook lists its commands');
    const outputs: Array<[string, Run]> = [];
    for (const { command, refused } of commands) {
      const run = await sh(command, env);
      outputs.push([command, run]);
      if (refused) {
        assert.notEqual(run.code, 0, `${command} must be refused`);
        assert.match(run.stderr, new RegExp(refused), `${command}: ${run.stderr}`);
      } else {
        assert.equal(run.code, 0, `${command}: ${run.stderr}${run.stdout}`);
      }
    }
    const out = (prefix: string) => outputs.find(([c]) => c.startsWith(prefix))![1];
    // The refused switch printed the coverage it found.
    assert.match(out('npm run models -- switch e5 2').stderr, /acme: 0\.0 % \(0\/\d+\)/);
    assert.match(out('npm run models -- coverage e5 2').stdout, /acme: 100\.0 %/);
    assert.match(out('npm run models -- compare').stdout, /overlap@10 \d+\.\d %/);
    assert.match(out('npm run models -- rollback e5').stdout, /rolled back 2 → 1/);
  });

  it('left the system where the runbook says: e5@2 active, e5@1 gone with its collection, dense search on e5@2', async () => {
    const list = await models('list --json');
    const e5 = (JSON.parse(list.stdout) as Array<{ alias: string; activeVersion: string; previousVersion: string | null; versions: Array<{ version: string }> }>).find((m) => m.alias === 'e5')!;
    assert.equal(e5.activeVersion, '2');
    assert.equal(e5.previousVersion, null);
    assert.deepEqual(e5.versions.map((v) => v.version), ['2']);
    const search = await httpJson(`${node.base}/api/v1/search`, { method: 'POST', token: editor, body: JSON.stringify({ query: 'payment schedule', mode: 'dense', alias: 'e5' }), headers: { 'content-type': 'application/json' } });
    assert.equal(search.status, 200, JSON.stringify(search.body));
    assert.ok(search.body.hits.length > 0);
    const { knex } = await node.node.runtime.stores.db();
    const audit = await knex('audit_log').whereNull('tenant_id').where('target', 'like', 'e5@%').orderBy('id').select('action', 'target', 'details', 'request_id');
    assert.deepEqual(
      audit.map((r: { action: string; target: string }) => `${r.action} ${r.target}`),
      ['models.publish e5@1', 'models.reindex.start e5@1', 'models.switch e5@1', 'models.publish e5@2', 'models.reindex.start e5@2', 'models.switch e5@2', 'models.rollback e5@1', 'models.switch e5@2', 'models.delete e5@1'],
    );
    for (const row of audit as Array<{ request_id: string | null; details: unknown }>) assert.ok(row.request_id, 'every audit row carries the request id');
    const vectors = await node.node.runtime.stores.vectors();
    const { tenantScope } = await import('../lib/ports/tenant-scope.ts');
    assert.equal(await vectors.count(tenantScope('acme'), 'e5__1').catch(() => 0), 0);
    assert.ok((await vectors.count(tenantScope('acme'), 'e5__2')) > 0);
  });

  it('admin routes: tenant_admin reads, cannot change; an editor cannot read', async () => {
    const tenantAdmin = await node.token(['tenant_admin'], 'tadmin');
    assert.equal((await httpJson(`${node.base}/api/v1/admin/models/status`, { token: tenantAdmin })).status, 200);
    assert.equal((await httpJson(`${node.base}/api/v1/admin/models`, { token: editor })).status, 403);
    const refused = await httpJson(`${node.base}/api/v1/admin/models/e5/rollback`, { method: 'POST', token: tenantAdmin });
    assert.equal(refused.status, 403);
    const missing = await httpJson(`${node.base}/api/v1/admin/models/e5/switch`, { method: 'POST', token: admin, body: JSON.stringify({ version: 'nope' }), headers: { 'content-type': 'application/json' } });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'MODEL_VERSION_NOT_FOUND');
  });
});
