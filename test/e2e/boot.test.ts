import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { httpJson } from '../support/http.ts';
import { freePort, runScript, startNode } from '../support/processes.ts';
import { tempDir } from '../support/services.ts';

describe('booting main.ts', () => {
  it('stops at boot with every bad variable named (exit 2)', async () => {
    const { code, stderr, stdout } = await runScript('main.ts', [], {
      RAGMESH_PROFILE: 'mesh',
      TRANSPORTER: 'amqp//missing-colon',
      DATABASE_URL: 'postgres://127.0.0.1/x',
      REDIS_URL: 'redis://127.0.0.1:6379',
      S3_ENDPOINT: 'http://127.0.0.1:9000',
      S3_ACCESS_KEY: 'k',
      S3_SECRET_KEY: 's',
      QDRANT_URL: 'http://127.0.0.1:6333',
    });
    assert.equal(code, 2, stdout + stderr);
    assert.match(stderr, /TRANSPORTER: is not a valid URL/);
    assert.match(stderr, /JWT_SECRET: or JWT_KEYS_FILE is required in the mesh profile/);
    assert.equal(stdout, '', 'nothing started');
  });

  it('embedded default: starts with no variables but DATA_DIR/PORT, keeps data and secret across a restart', async () => {
    const dir = await tempDir();
    try {
      const port = await freePort();
      const env = { DATA_DIR: dir.value, PORT: String(port) };
      const base = `http://127.0.0.1:${port}`;

      let node = startNode('embedded', env);
      await node.waitForLog((e) => e.msg === 'ragmesh ready', 60_000);
      assert.equal((await httpJson(`${base}/readyz`)).status, 200);
      const { stdout: token, code } = await runScript('scripts/token.ts', ['--tenant', 'acme', '--user', 'alice', '--role', 'editor'], env);
      assert.equal(code, 0);
      const before = await httpJson(`${base}/api/v1/me`, { token: token.trim() });
      assert.equal(before.status, 200);
      assert.equal(await node.stop(), 0);

      node = startNode('embedded-again', env);
      await node.waitForLog((e) => e.msg === 'ragmesh ready', 60_000);
      assert.ok(!node.logs().some((e) => e.msg === 'database migrations applied'), 'migrations ran only on the first start');
      const after = await httpJson(`${base}/api/v1/me`, { token: token.trim() });
      assert.equal(after.status, 200, 'the token signed before the restart is still valid');
      assert.equal(after.body.memberSince, before.body.memberSince, 'the membership row survived the restart');
      assert.equal(await node.stop(), 0);
    } finally {
      await dir.dispose();
    }
  });
});
