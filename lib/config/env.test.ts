import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { ConfigError } from '../errors.ts';
import { loadConfig, SERVICE_NAMES, VARIABLES } from './env.ts';
import { withTable } from '../../scripts/config-docs.ts';

const problemsOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
};

describe('loadConfig', () => {
  it('needs no variables at all for the embedded default', () => {
    const config = loadConfig({});
    assert.equal(config.profile, 'embedded');
    assert.deepEqual(config.services, [...SERVICE_NAMES]);
    assert.equal(config.transporter, null);
    assert.equal(config.http.port, 3000);
    assert.equal(config.http.host, '127.0.0.1');
    assert.equal(config.db.driver, 'pglite');
    assert.equal(config.kv.driver, 'memory');
    assert.equal(config.objects.driver, 'fs');
    assert.equal(config.vectors.driver, 'usearch');
    assert.equal(config.auth.jwtSecret, null);
    assert.match(config.dataDir, /\/data$/);
  });

  it('builds the mesh from explicit variables', () => {
    const config = loadConfig({
      RAGMESH_PROFILE: 'mesh',
      SERVICES: 'api, llm',
      TRANSPORTER: 'amqp://guest:guest@rabbit:5672/ragmesh',
      DATABASE_URL: 'postgres://u:p@pg:5432/ragmesh',
      REDIS_URL: 'redis://redis:6379/1',
      S3_ENDPOINT: 'https://minio.internal:9000',
      S3_ACCESS_KEY: 'k',
      S3_SECRET_KEY: 's',
      QDRANT_URL: 'http://qdrant:6333',
      QUEUE_URL: 'amqp://guest:guest@rabbit:5672/ragmesh',
      JWT_SECRET: 'x'.repeat(40),
    });
    assert.deepEqual(config.services, ['api', 'llm']);
    assert.equal(config.transporter, 'amqp://guest:guest@rabbit:5672/ragmesh');
    assert.equal(config.http.host, '0.0.0.0');
    assert.equal(config.db.driver, 'pg');
    assert.deepEqual(config.objects.s3, { endPoint: 'minio.internal', port: 9000, useSSL: true, accessKey: 'k', secretKey: 's', region: 'us-east-1' });
    assert.equal(config.vectors.driver, 'qdrant');
  });

  it('reports every invalid variable at once, each by name', () => {
    const problems = problemsOf({
      RAGMESH_PROFILE: 'mesh',
      TRANSPORTER: 'rabbit:5672',
      PORT: '99999',
      SERVICES: 'api,search',
      LOG_LEVEL: 'loud',
      MIGRATE_ON_START: 'maybe',
    });
    const names = problems.map((p) => p.split(':')[0]);
    for (const name of ['TRANSPORTER', 'PORT', 'SERVICES', 'LOG_LEVEL', 'MIGRATE_ON_START', 'DATABASE_URL', 'REDIS_URL', 'S3_ENDPOINT', 'S3_ACCESS_KEY', 'S3_SECRET_KEY', 'QDRANT_URL', 'JWT_SECRET']) {
      assert.ok(names.includes(name), `${name} missing from ${JSON.stringify(problems, null, 1)}`);
    }
  });

  it('rejects a malformed TRANSPORTER and a transporter of the wrong kind', () => {
    assert.match(problemsOf({ TRANSPORTER: 'amqp//nohost' })[0]!, /^TRANSPORTER: is not a valid URL/);
    assert.match(problemsOf({ TRANSPORTER: 'nats://127.0.0.1:4222' })[0]!, /^TRANSPORTER: must use amqp: or amqps:/);
  });

  it('requires JWT_SECRET or a signing keyset in the mesh and a long secret anywhere', () => {
    const mesh = { RAGMESH_PROFILE: 'mesh', TRANSPORTER: 'amqp://h', DB_DRIVER: 'pglite', KV_DRIVER: 'memory', OBJECTS_DRIVER: 'fs', VECTORS_DRIVER: 'pgvector', QUEUE_DRIVER: 'memory' };
    assert.deepEqual(problemsOf(mesh), ['JWT_SECRET: or JWT_KEYS_FILE is required in the mesh profile (a secret of at least 32 characters, or a signing keyset from `npm run keys`)']);
    assert.equal(loadConfig({ ...mesh, JWT_KEYS_FILE: '/run/secrets/jwt_keys' }).auth.keysFile, '/run/secrets/jwt_keys');
    assert.deepEqual(problemsOf({ JWT_SECRET: 'short' }), ['JWT_SECRET: must be at least 32 characters (got 5)']);
  });

  it('reads rate limits per class over the defaults and reports bad ones', () => {
    const config = loadConfig({ RATE_LIMIT_PER_USER: 'search=5, chat=0', RATE_LIMIT_WINDOW_MS: '1000' });
    assert.equal(config.rateLimits.perUser.search, 5);
    assert.equal(config.rateLimits.perUser.chat, 0);
    assert.equal(config.rateLimits.perUser.upload, 300);
    assert.equal(config.rateLimits.windowMs, 1000);
    assert.match(problemsOf({ RATE_LIMIT_PER_TENANT: 'bogus=3' })[0]!, /^RATE_LIMIT_PER_TENANT: "bogus=3" is not/);
  });

  it('rejects unknown drivers and bad bucket names', () => {
    const problems = problemsOf({ DB_DRIVER: 'sqlite', S3_BUCKET: 'Bad_Bucket' });
    assert.ok(problems.some((p) => p.startsWith('DB_DRIVER: must be one of pglite, pg')));
    assert.ok(problems.some((p) => p.startsWith('S3_BUCKET:')));
  });
});

describe('docs/config.md', () => {
  it('documents every variable exactly as lib/config/env.ts declares it (npm run docs:config)', async () => {
    const doc = await readFile(new URL('../../docs/config.md', import.meta.url), 'utf8');
    assert.equal(doc, withTable(doc), 'the table is stale: run npm run docs:config');
    for (const v of VARIABLES) assert.ok(doc.includes(`\`${v.name}\``), v.name);
  });
});

describe('secrets from files (*_FILE)', () => {
  const mesh = (dir: string) => ({
    RAGMESH_PROFILE: 'mesh',
    TRANSPORTER_FILE: `${dir}/transporter`,
    QUEUE_URL_FILE: `${dir}/transporter`,
    DATABASE_URL_FILE: `${dir}/database-url`,
    REDIS_URL_FILE: `${dir}/redis-url`,
    S3_ENDPOINT: 'http://minio:9000',
    S3_ACCESS_KEY_FILE: `${dir}/s3-access`,
    S3_SECRET_KEY_FILE: `${dir}/s3-secret`,
    QDRANT_URL: 'http://qdrant:6333',
    JWT_SECRET_FILE: `${dir}/jwt`,
  });

  it('reads every secret of a Swarm stack from /run/secrets-style files, trailing newline dropped', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const dir = await mkdtemp(`${(await import('node:os')).tmpdir()}/secrets-`);
    try {
      await writeFile(`${dir}/transporter`, 'amqp://ragmesh:r%40b@rabbitmq:5672/ragmesh\n');
      await writeFile(`${dir}/database-url`, 'postgres://ragmesh:pw@postgres:5432/ragmesh\n');
      await writeFile(`${dir}/redis-url`, 'redis://:pw@redis:6379/0');
      await writeFile(`${dir}/s3-access`, 'ragmesh-app\n');
      await writeFile(`${dir}/s3-secret`, 'minio secret with spaces\n');
      await writeFile(`${dir}/jwt`, `${'j'.repeat(40)}\n`);
      const config = loadConfig(mesh(dir));
      assert.equal(config.transporter, 'amqp://ragmesh:r%40b@rabbitmq:5672/ragmesh');
      assert.equal(config.db.url, 'postgres://ragmesh:pw@postgres:5432/ragmesh');
      assert.equal(config.kv.url, 'redis://:pw@redis:6379/0');
      assert.equal(config.objects.s3?.accessKey, 'ragmesh-app');
      assert.equal(config.objects.s3?.secretKey, 'minio secret with spaces');
      assert.equal(config.auth.jwtSecret, 'j'.repeat(40));
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('reports a missing file and a secret given twice, with the other problems', () => {
    const problems = problemsOf({ ...mesh('/nonexistent'), JWT_SECRET: 'x'.repeat(40) });
    assert.ok(problems.some((p) => /^DATABASE_URL_FILE: cannot read \/nonexistent\/database-url \(ENOENT\)/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /^JWT_SECRET_FILE: cannot be set together with JWT_SECRET/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('TRANSPORTER:')), 'the unread value is then missing too');
  });

  it('is offered for every secret variable and documented for each', async () => {
    const doc = await readFile(new URL('../../docs/config.md', import.meta.url), 'utf8');
    const secrets = VARIABLES.filter((v) => v.secret).map((v) => v.name);
    for (const name of ['DATABASE_URL', 'REDIS_URL', 'S3_ACCESS_KEY', 'S3_SECRET_KEY', 'QUEUE_URL', 'TRANSPORTER', 'JWT_SECRET']) assert.ok(secrets.includes(name), name);
    for (const name of secrets) assert.ok(doc.includes(`\`${name}_FILE\``), name);
  });
});
