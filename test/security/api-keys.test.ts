import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startEmbeddedNode, type EmbeddedNode } from '../support/embedded.ts';

/**
 * API keys through the gateway, with its cache of verified credentials in front: a key
 * works on /api/v1 and /v1, a revocation is refused on the very next request, and a
 * role change applies to the next request too (the route evicts before it answers).
 */
describe('API keys through the gateway (cached credentials)', () => {
  let node: EmbeddedNode;
  before(async () => {
    node = await startEmbeddedNode();
  });
  after(() => node.stop());

  const call = async (method: string, path: string, bearer: string, body?: unknown) => {
    const res = await fetch(`${node.base}${path}`, {
      method,
      headers: { Authorization: `Bearer ${bearer}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  it('stops a revoked key on the next request and applies a role change at once', async () => {
    const admin = await node.token(['tenant_admin', 'editor'], 'root', 'keys');
    const bob = await node.token(['viewer', 'editor'], 'bob', 'keys');
    assert.equal((await call('GET', '/api/v1/me', bob)).status, 200);
    const created = await call('POST', '/api/v1/api-keys', admin, { name: 'laptop', userId: 'bob', roles: ['viewer', 'editor'] });
    assert.equal(created.status, 201);
    const key = created.body.key as string;

    // Warm: the key is in the cache now.
    for (let i = 0; i < 3; i++) assert.deepEqual((await call('GET', '/api/v1/me', key)).body.roles, ['viewer', 'editor']);
    assert.equal((await call('GET', '/v1/models', key)).status, 200);
    const listed = await call('GET', '/api/v1/api-keys?userId=bob', admin);
    assert.ok(listed.body.items[0].lastUsedAt, 'a use is recorded');

    assert.equal((await call('PUT', '/api/v1/users/bob/roles', admin, { roles: ['viewer'] })).status, 200);
    assert.deepEqual((await call('GET', '/api/v1/me', key)).body.roles, ['viewer'], 'role change applies to the next request');

    assert.equal((await call('DELETE', `/api/v1/api-keys/${created.body.id}`, admin)).status, 200);
    for (const path of ['/api/v1/me', '/v1/models']) {
      const refused = await call('GET', path, key);
      assert.equal(refused.status, 401, path);
      assert.equal(refused.body.error.code, 'API_KEY_REVOKED', path);
    }
  });
});
