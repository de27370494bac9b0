import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import YAML from 'yaml';

const ALLOWED_ACTIONS = new Set([
  's3:GetBucketLocation',
  's3:ListBucket',
  's3:ListBucketMultipartUploads',
  's3:GetObject',
  's3:PutObject',
  's3:DeleteObject',
  's3:AbortMultipartUpload',
  's3:ListMultipartUploadParts',
]);
const BUCKETS = ['ragmesh', 'models', 'ragmesh-backups'];

describe('least privilege in object storage (deploy/minio)', () => {
  it('the services\' policy reaches ragmesh\'s buckets only, with object and listing actions only', async () => {
    const policy = JSON.parse(await readFile('deploy/minio/ragmesh-policy.json', 'utf8')) as { Statement: Array<{ Effect: string; Action: string[]; Resource: string[] }> };
    for (const statement of policy.Statement) {
      assert.equal(statement.Effect, 'Allow');
      for (const action of statement.Action) assert.ok(ALLOWED_ACTIONS.has(action), `no ${action}: no wildcards, no admin, no bucket or policy changes`);
      for (const resource of statement.Resource) {
        const bucket = /^arn:aws:s3:::([^/]+)(\/\*)?$/.exec(resource)?.[1];
        assert.ok(bucket && BUCKETS.includes(bucket), `resource ${resource}`);
      }
    }
  });

  it('the setup script uses the root credentials only to create the buckets and the user', async () => {
    const script = await readFile('deploy/minio/setup.sh', 'utf8');
    assert.match(script, /mc admin policy create ragmesh-root ragmesh-services/);
    assert.match(script, /mc admin policy attach ragmesh-root ragmesh-services --user/);
    assert.match(script, /mc alias remove ragmesh-root/);
  });

  it('no ragmesh service of the stack gets the MinIO root credentials', async () => {
    const stack = YAML.parse(await readFile('stack.yml', 'utf8')) as { services: Record<string, { environment?: Record<string, string>; secrets?: unknown[] }> };
    for (const [name, service] of Object.entries(stack.services)) {
      if (name === 'minio') continue;
      const secrets = JSON.stringify(service.secrets ?? []);
      assert.ok(!secrets.includes('minio_root'), `${name} holds a MinIO root secret`);
      assert.ok(!JSON.stringify(service.environment ?? {}).includes('MINIO_ROOT'), `${name} has MinIO root variables`);
    }
  });
});
