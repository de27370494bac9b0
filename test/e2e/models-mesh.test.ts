import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { writeHfRepo } from '../support/hf-repo.ts';
import { httpJson } from '../support/http.ts';
import { upload, waitForJob } from '../support/ingest.ts';
import { syntheticText, TestMesh } from '../support/mesh.ts';
import { ROOT, waitFor } from '../support/processes.ts';

/**
 * Swapping an embedding model over the mesh (api, emb, maintenance and ingest as
 * separate processes on RabbitMQ, PostgreSQL, Redis and S3), with the operator's CLI
 * talking to the running api: v1 serving, v2 published and re-indexed with the
 * maintenance process SIGKILLed midway, switch, rollback, delete of the active
 * version refused — while a client searches at a steady rate in dense and hybrid modes.
 */
describe('model swap over the mesh', () => {
  let mesh: TestMesh;
  let editor: string;
  let admin: string;
  let cliEnv: Record<string, string>;

  const cli = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/models.ts', ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...cliEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
  };
  const ok = async (args: string[]) => {
    const run = await cli(args);
    assert.equal(run.code, 0, `models ${args.join(' ')}: ${run.stderr}${run.stdout}`);
    return run;
  };

  before(async () => {
    mesh = await TestMesh.create({ CHUNK_TARGET_TOKENS: '48', CHUNK_OVERLAP_TOKENS: '0', REINDEX_BATCH: '4', JOB_LEASE_MS: '3000' });
    await Promise.all([mesh.start('gateway', 'api'), mesh.start('models', 'emb,llm,analyze'), mesh.start('maint-a', 'maintenance'), mesh.start('worker', 'ingest')]);
    admin = await mesh.token('ops', 'root', 'admin');
    editor = await mesh.token('acme', 'alice', 'editor');
    await mesh.waitForDiscovery(admin);
    cliEnv = { ...mesh.env, RAGMESH_URL: mesh.apiUrl, RAGMESH_TOKEN: admin, LOG_LEVEL: 'warn' };
  });
  after(() => mesh.stop());

  it('v1 → re-index v2 (maintenance killed midway) → switch → rollback; delete of the active version refused; searches never fail', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await upload(mesh.apiUrl, editor, { name: `contract-${i}.md`, content: syntheticText(60, i + 1) });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      await waitForJob(mesh.apiUrl, editor, res.body.job.id, ['ready'], 120_000);
    }
    const hub = path.join(mesh.env.DATA_DIR!, 'hub');
    const v1 = await writeHfRepo(path.join(hub, 'v1'), { seed: 1 });
    const v2 = await writeHfRepo(path.join(hub, 'v2'), { seed: 2 });
    await ok(['import', v1, '--alias', 'e5', '--version', '1', '--query-prefix', '', '--passage-prefix', '', '--yes', '--publish']);
    await ok(['reindex', 'e5', '1', '--wait']);
    await ok(['switch', 'e5', '1']);

    // The steady client: dense and hybrid in turn, ~10 requests a second.
    const stats = { requests: 0, failures: [] as string[], emptyDense: 0, versions: new Set<string>() };
    let searching = true;
    const client = (async () => {
      for (let i = 0; searching; i++) {
        const mode = i % 2 === 0 ? 'dense' : 'hybrid';
        const res = await httpJson(`${mesh.apiUrl}/api/v1/search`, { method: 'POST', token: editor, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: 'payment schedule warranty', mode, alias: 'e5' }) }).catch((err: Error) => ({ status: 0, body: { error: err.message } }));
        stats.requests++;
        if (res.status !== 200) stats.failures.push(`${mode} ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
        else if (mode === 'dense') {
          if (res.body.hits.length === 0) stats.emptyDense++;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    await ok(['import', v2, '--alias', 'e5', '--version', '2', '--query-prefix', '', '--passage-prefix', '', '--yes', '--publish']);
    const refused = await cli(['switch', 'e5', '2']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /MODEL_COVERAGE_INCOMPLETE.*acme: 0\.0 %/);
    await ok(['reindex', 'e5', '2']);

    const db = new pg.Client({ connectionString: mesh.databaseUrl });
    await db.connect();
    try {
      const total = Number((await db.query(`select count(*) as n from chunks where tenant_id = 'acme'`)).rows[0].n);
      assert.ok(total > 100, `${total} chunks`);
      await waitFor('the re-index to be under way', async () => {
        const row = (await db.query(`select done, state from model_reindex where alias = 'e5' and version = '2' and tenant_id = 'acme'`)).rows[0];
        if (row?.state === 'done') throw new Error('the re-index finished before it could be killed');
        return row && row.done >= 8;
      }, 60_000);
      const maintA = mesh.processes.find((p) => p.name === 'maint-a')!;
      maintA.child.kill('SIGKILL');
      await maintA.exited;
      const atKill = (await db.query(`select done from model_reindex where alias = 'e5' and version = '2' and tenant_id = 'acme'`)).rows[0].done;
      assert.ok(atKill < total, 'killed midway');
      await mesh.start('maint-b', 'maintenance');
      await waitFor('the re-index to finish on the new maintenance process', async () => {
        const row = (await db.query(`select state, done, job_id from model_reindex where alias = 'e5' and version = '2' and tenant_id = 'acme'`)).rows[0];
        if (row.state === 'failed' || row.state === 'canceled') throw new Error(`re-index ${row.state}`);
        return row.state === 'done' ? row : null;
      }, 120_000);
      const row = (await db.query(`select done from model_reindex where alias = 'e5' and version = '2' and tenant_id = 'acme'`)).rows[0];
      assert.equal(row.done, total, 'every chunk counted once');
      const vectors = await db.query(`select id from vec_e5__2 where tenant_id = 'acme'`);
      assert.equal(vectors.rowCount, total, 'one vector per chunk: none missing, none twice');
    } finally {
      await db.end();
    }

    // The killed node stays in the gateway's registry until its heartbeat times out; an
    // operator's command meanwhile may land on it and fail (503, retryable), then works.
    const coverage = await waitFor('the mesh to route maintenance calls to the new process', async () => {
      const run = await cli(['coverage', 'e5', '2']);
      return run.code === 0 ? run : null;
    }, 60_000);
    assert.match(coverage.stdout, /acme: 100\.0 %/);
    const switched = await ok(['switch', 'e5', '2']);
    assert.match(switched.stdout, /e5: 1 → 2/);
    await waitFor('dense search to use e5@2', async () => {
      const res = await httpJson(`${mesh.apiUrl}/api/v1/search`, { method: 'POST', token: editor, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: 'payment schedule', mode: 'dense', alias: 'e5' }) });
      return res.status === 200 && JSON.stringify(res.body).includes('"2"');
    }, 30_000).catch(() => undefined);
    const back = await ok(['rollback', 'e5']);
    assert.match(back.stdout, /rolled back 2 → 1/);
    const deleteActive = await cli(['delete', 'e5', '1']);
    assert.notEqual(deleteActive.code, 0);
    assert.match(deleteActive.stderr, /MODEL_VERSION_ACTIVE/);

    // A few more seconds of searching after the last change.
    const before = stats.requests;
    await waitFor('more searches after the rollback', async () => stats.requests >= before + 20, 30_000);
    searching = false;
    await client;
    assert.ok(stats.requests >= 40, `${stats.requests} searches`);
    assert.deepEqual(stats.failures, [], 'no failed search');
    assert.equal(stats.emptyDense, 0, 'dense hits never empty');
  });
});
