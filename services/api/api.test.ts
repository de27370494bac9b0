import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signAccessToken, type Role } from '../../lib/auth/jwt.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../../test/support/embedded.ts';
import { httpJson } from '../../test/support/http.ts';

describe('api gateway (embedded profile, all six services in one broker)', () => {
  let embedded: EmbeddedNode;
  let base: string;
  const token = (roles: Role[], tenantId = 'acme', userId = 'alice') => embedded.token(roles, userId, tenantId);

  before(async () => {
    embedded = await startEmbeddedNode();
    base = embedded.base;
  });
  after(() => embedded.stop());

  it('answers /healthz, /readyz (with its database check) and /api/version', async () => {
    assert.deepEqual((await httpJson(`${base}/healthz`)).body, { status: 'ok' });
    const ready = await httpJson(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(ready.body.ready, true);
    assert.equal(ready.body.checks.db.ok, true);
    const version = await httpJson(`${base}/api/version`);
    assert.equal(version.body.name, 'ragmesh');
    assert.match(version.body.version, /^\d+\.\d+\.\d+$/);
    assert.match(version.body.node, /^v22\./);
    assert.equal(version.body.profile, 'embedded');
  });

  it('refuses missing, malformed and forged tokens with 401 and a stable code', async () => {
    const missing = await httpJson(`${base}/api/v1/me`);
    assert.equal(missing.status, 401);
    assert.equal(missing.body.error.code, 'MISSING_TOKEN');
    assert.equal((await httpJson(`${base}/api/v1/me`, { headers: { Authorization: 'Basic abc' } })).body.error.code, 'INVALID_TOKEN');
    const forged = await signAccessToken({ tenantId: 'acme', userId: 'mallory', roles: ['admin'] }, 'not-the-secret-but-long-enough-000000', { issuer: 'ragmesh', ttlSeconds: 60 });
    const res = await httpJson(`${base}/api/v1/me`, { token: forged });
    assert.equal(res.status, 401);
    assert.equal(res.body.error.code, 'INVALID_TOKEN');
    assert.equal(res.body.error.retryable, false);
  });

  it('puts the principal into the call context and records the membership once', async () => {
    const t = await token(['editor']);
    const first = await httpJson(`${base}/api/v1/me`, { token: t });
    assert.equal(first.status, 200);
    assert.deepEqual({ ...first.body, memberSince: undefined }, { tenantId: 'acme', userId: 'alice', roles: ['editor'], memberSince: undefined });
    const second = await httpJson(`${base}/api/v1/me`, { token: t });
    assert.equal(second.body.memberSince, first.body.memberSince);
  });

  it('lets only admins see the status of every service, each asked through the broker', async () => {
    const viewer = await httpJson(`${base}/api/v1/status`, { token: await token(['viewer']) });
    assert.equal(viewer.status, 403);
    assert.equal(viewer.body.error.code, 'FORBIDDEN');
    const admin = await httpJson(`${base}/api/v1/status`, { token: await token(['admin']) });
    assert.equal(admin.status, 200);
    assert.equal(admin.body.ready, true);
    assert.deepEqual(admin.body.missing, []);
    assert.deepEqual(admin.body.services.map((s: { service: string }) => s.service), ['analyze', 'api', 'emb', 'ingest', 'llm', 'maintenance']);
  });

  it('echoes a sane X-Request-ID and replaces a hostile one', async () => {
    const kept = await httpJson(`${base}/healthz`, { headers: { 'X-Request-ID': 'client-req-12345' } });
    assert.equal(kept.headers.get('x-request-id'), 'client-req-12345');
    const replaced = await httpJson(`${base}/api/v1/me`, { headers: { 'X-Request-ID': 'evil\tinjected "quote" {json}' } });
    assert.match(replaced.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(replaced.body.error.request_id, replaced.headers.get('x-request-id'));
  });

  it('answers unknown routes with a JSON 404', async () => {
    const res = await httpJson(`${base}/api/v1/nothing-here`, { token: await token(['viewer']) });
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'ROUTE_NOT_FOUND');
  });
});
