import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { loadConfig } from '../config/env.ts';
import { tempDir } from '../../test/support/services.ts';
import { resolveJwtSecret, signAccessToken, verifyAccessToken } from './jwt.ts';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const opts = { issuer: 'ragmesh', ttlSeconds: 60 };

describe('access tokens', () => {
  it('round-trips tenant, user and roles', async () => {
    const token = await signAccessToken({ tenantId: 'acme', userId: 'alice@acme.io', roles: ['editor', 'admin'] }, SECRET, opts);
    assert.deepEqual(await verifyAccessToken(token, SECRET, 'ragmesh'), { tenantId: 'acme', userId: 'alice@acme.io', roles: ['editor', 'admin'] });
  });

  it('rejects a wrong secret, a wrong issuer, an expired token and alg=none', async () => {
    const token = await signAccessToken({ tenantId: 'acme', userId: 'alice', roles: ['viewer'] }, SECRET, opts);
    await assert.rejects(() => verifyAccessToken(token, `${SECRET}x`, 'ragmesh'), { code: 401, type: 'INVALID_TOKEN' });
    await assert.rejects(() => verifyAccessToken(token, SECRET, 'someone-else'), { code: 401, type: 'INVALID_TOKEN' });
    const expired = await new SignJWT({ tid: 'acme', roles: ['viewer'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setIssuer('ragmesh')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 10)
      .sign(new TextEncoder().encode(SECRET));
    await assert.rejects(() => verifyAccessToken(expired, SECRET, 'ragmesh'), { code: 401, type: 'TOKEN_EXPIRED' });
    const [, payload] = token.split('.');
    const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${payload}.`;
    await assert.rejects(() => verifyAccessToken(unsigned, SECRET, 'ragmesh'), { code: 401, type: 'INVALID_TOKEN' });
  });

  it('rejects a validly signed token whose claims are malformed', async () => {
    const sign = (claims: Record<string, unknown>, sub = 'alice') =>
      new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuer('ragmesh').setExpirationTime('1m').sign(new TextEncoder().encode(SECRET));
    await assert.rejects(async () => verifyAccessToken(await sign({ tid: '../other', roles: ['viewer'] }), SECRET, 'ragmesh'), { code: 401 });
    await assert.rejects(async () => verifyAccessToken(await sign({ tid: 'acme', roles: ['root'] }), SECRET, 'ragmesh'), { code: 401 });
    await assert.rejects(async () => verifyAccessToken(await sign({ tid: 'acme' }), SECRET, 'ragmesh'), { code: 401 });
  });

  it('refuses to sign for an invalid tenant or role', async () => {
    await assert.rejects(() => signAccessToken({ tenantId: 'a b', userId: 'u', roles: ['viewer'] }, SECRET, opts), { code: 400, type: 'INVALID_TENANT' });
    await assert.rejects(() => signAccessToken({ tenantId: 'a', userId: 'u', roles: ['god' as 'viewer'] }, SECRET, opts), { code: 400, type: 'INVALID_ROLE' });
  });
});

describe('resolveJwtSecret', () => {
  it('creates a private secret file once in the embedded profile and reuses it', async () => {
    const dir = await tempDir();
    try {
      const config = loadConfig({ DATA_DIR: dir.value });
      const [first, concurrent] = await Promise.all([resolveJwtSecret(config), resolveJwtSecret(config)]);
      assert.equal(first, concurrent);
      assert.ok(first.length >= 32);
      assert.equal(await resolveJwtSecret(config), first);
      assert.equal((await stat(`${dir.value}/secrets/jwt-secret`)).mode & 0o777, 0o600);
    } finally {
      await dir.dispose();
    }
  });

  it('uses JWT_SECRET when given', async () => {
    assert.equal(await resolveJwtSecret(loadConfig({ JWT_SECRET: SECRET })), SECRET);
  });
});
