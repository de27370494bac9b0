import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DATABASE_BACKENDS, type TestDatabase } from '../../test/support/databases.ts';
import { tempDir } from '../../test/support/services.ts';
import { tenantScope } from '../ports/tenant-scope.ts';
import { ApiKeysRepository } from '../repositories/api-keys.ts';
import { TenantsRepository } from '../repositories/tenants.ts';
import { ApiKeyAuthenticator, mintApiKey } from './api-keys.ts';
import { CredentialVerifier } from './credentials.ts';
import { readKeySet, retireKey, rotateKeySet, writeKeySet } from './keys.ts';
import { AccessTokens } from './tokens.ts';

const alice = { tenantId: 'acme', userId: 'alice', roles: ['editor' as const] };

/** Counts what reaches the verifiers behind the cache. */
function counted(tokens: AccessTokens, apiKeys: ApiKeyAuthenticator) {
  const calls = { jwt: 0, apiKey: 0 };
  const verify = tokens.verifyDetailed.bind(tokens);
  tokens.verifyDetailed = (t) => (calls.jwt++, verify(t));
  const read = apiKeys.authenticate.bind(apiKeys);
  apiKeys.authenticate = (t) => (calls.apiKey++, read(t));
  return calls;
}

describe('CredentialVerifier (cache of verified tokens and API keys)', () => {
  let database: TestDatabase;
  let dir: { value: string; dispose(): Promise<void> };
  let tokens: AccessTokens;
  const keysFile = () => path.join(dir.value, 'keys.json');
  before(async () => {
    database = await DATABASE_BACKENDS.find((b) => b.name === 'pglite')!.open();
    dir = await tempDir();
    tokens = await AccessTokens.open({ issuer: 'ragmesh', audience: 'ragmesh', keysFile: keysFile(), hsSecret: null, createKeys: true });
    await new TenantsRepository(database.db.knex).recordMember(tenantScope('acme'), 'bob', ['viewer', 'editor']);
  });
  after(async () => {
    await database.dispose();
    await dir.dispose();
  });

  const newKey = async (roles: ('viewer' | 'editor')[] = ['viewer']) => {
    const minted = mintApiKey();
    await new ApiKeysRepository(database.db.knex).create(tenantScope('acme'), { id: minted.id, userId: 'bob', name: 'k', roles, secretHash: minted.secretHash, createdBy: 'bob' });
    return minted;
  };

  it('verifies a token once and serves it from the cache until its exp, then verifies it again', async () => {
    let now = Date.now();
    const apiKeys = new ApiKeyAuthenticator(async () => database.db.knex);
    const calls = counted(tokens, apiKeys);
    const cache = new CredentialVerifier(tokens, apiKeys, { maxEntries: 100, apiKeyTtlMs: 5000 }, undefined, () => now);
    const token = await tokens.sign(alice, 60);
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;
    assert.deepEqual(await cache.authenticate(token), alice);
    assert.deepEqual(await cache.authenticate(token), alice);
    assert.equal(calls.jwt, 1);
    now = exp * 1000 - 1;
    await cache.authenticate(token);
    assert.equal(calls.jwt, 1, 'still before exp');
    now = exp * 1000;
    // At exp the cache lets go; jose (on the real clock, where the token is still young) decides again.
    await cache.authenticate(token);
    assert.equal(calls.jwt, 2);
  });

  it('never caches a refusal, and hands out a principal no request can change', async () => {
    const apiKeys = new ApiKeyAuthenticator(async () => database.db.knex);
    const calls = counted(tokens, apiKeys);
    const cache = new CredentialVerifier(tokens, apiKeys);
    const token = await tokens.sign(alice, 60);
    const forged = `${token.slice(0, -4)}AAAA`;
    await assert.rejects(() => cache.authenticate(forged), { code: 401 });
    await assert.rejects(() => cache.authenticate(forged), { code: 401 });
    assert.equal(calls.jwt, 2);
    assert.equal(cache.size, 0);
    const principal = await cache.authenticate(token);
    assert.throws(() => (principal.roles as string[]).push('admin'));
    assert.deepEqual((await cache.authenticate(token)).roles, ['editor']);
  });

  it('serves a hit only for the very credential it verified: a forged payload under a cached signature is verified (and refused)', async () => {
    const apiKeys = new ApiKeyAuthenticator(async () => database.db.knex);
    const calls = counted(tokens, apiKeys);
    const cache = new CredentialVerifier(tokens, apiKeys);
    const token = await tokens.sign(alice, 60);
    await cache.authenticate(token);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: 'mallory', roles: ['admin'] })).toString('base64url')}.${signature}`;
    assert.equal(forged.slice(-32), token.slice(-32), 'same tail as the cached token');
    await assert.rejects(() => cache.authenticate(forged), { code: 401 });
    assert.equal(calls.jwt, 2, 'the forged token went to the verifier');
    // A refusal leaves the cached token as it was.
    assert.deepEqual(await cache.authenticate(token), alice);
    assert.equal(calls.jwt, 2);
  });

  it('cachedPrincipal and cachedBearer answer a verified credential without a promise and leave everything else to authenticate()', async () => {
    let now = Date.now();
    const apiKeys = new ApiKeyAuthenticator(async () => database.db.knex);
    const calls = counted(tokens, apiKeys);
    const cache = new CredentialVerifier(tokens, apiKeys, { maxEntries: 100, apiKeyTtlMs: 5000 }, undefined, () => now);
    const token = await tokens.sign(alice, 60);
    assert.equal(cache.cachedPrincipal(token), undefined, 'never seen');
    await cache.authenticate(token);
    assert.deepEqual(cache.cachedPrincipal(token), alice);
    assert.deepEqual(cache.cachedBearer(`Bearer ${token}`), alice);
    assert.equal(cache.cachedBearer(`bearer ${token}`), undefined, 'only the header form bearerToken accepts');
    assert.equal(cache.cachedBearer(`Bearer ${token} `), undefined);
    // Same tail (hence the same key), another payload: not the credential that was verified.
    const [, payload, signature] = token.split('.');
    const forged = `${Buffer.from(JSON.stringify({ tid: 'acme', sub: 'alice', roles: ['admin'] })).toString('base64url')}.${payload}.${signature}`;
    assert.equal(cache.cachedPrincipal(forged), undefined);
    assert.equal(cache.cachedBearer(`Bearer ${forged}`), undefined);
    const exp = JSON.parse(Buffer.from(payload!, 'base64url').toString()).exp as number;
    now = exp * 1000;
    assert.equal(cache.cachedPrincipal(token), undefined, 'expired');
    assert.equal(cache.cachedBearer(`Bearer ${token}`), undefined);
    assert.equal(calls.jwt, 1);

    now = Date.now();
    const key = await newKey();
    await cache.authenticate(key.token);
    assert.deepEqual(cache.cachedPrincipal(key.token), { tenantId: 'acme', userId: 'bob', roles: ['viewer'] });
    assert.equal(cache.forget({ tenantId: 'acme', keyId: key.id }), 1);
    assert.equal(cache.cachedPrincipal(key.token), undefined, 'forgotten (revoked)');
    assert.equal(cache.cachedBearer(`Bearer ${key.token}`), undefined);
    await cache.authenticate(key.token);
    now += 4000;
    assert.ok(cache.cachedPrincipal(key.token), 'within the TTL');
    now += 61_000;
    assert.equal(cache.cachedPrincipal(key.token), undefined, 'past the TTL (and its last use is due to be written)');
  });

  it('keeps at most maxEntries credentials, dropping the least recently used', async () => {
    const apiKeys = new ApiKeyAuthenticator(async () => database.db.knex);
    const calls = counted(tokens, apiKeys);
    const cache = new CredentialVerifier(tokens, apiKeys, { maxEntries: 2, apiKeyTtlMs: 5000 });
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((u) => tokens.sign({ ...alice, userId: u }, 60)));
    await cache.authenticate(a!);
    await cache.authenticate(b!);
    await cache.authenticate(a!); // a is now the most recent
    await cache.authenticate(c!); // b goes
    assert.equal(cache.size, 2);
    assert.equal(calls.jwt, 3);
    await cache.authenticate(a!);
    assert.equal(calls.jwt, 3, 'a stayed');
    await cache.authenticate(b!);
    assert.equal(calls.jwt, 4, 'b was dropped');
  });

  it('refuses a cached token once its signing key is retired (at the next keyset look, within a second)', async () => {
    const cache = new CredentialVerifier(tokens, new ApiKeyAuthenticator(async () => database.db.knex));
    const token = await tokens.sign(alice, 60);
    const oldKid = tokens.activeKid!;
    await cache.authenticate(token);
    const rotated = await rotateKeySet((await readKeySet(keysFile()))!, 60);
    await writeKeySet(keysFile(), retireKey(rotated, oldKid));
    const until = Date.now() + 5000;
    let refusal: unknown = null;
    // Waits on the verifier's own reload (it looks at the file at most once a second), not a fixed time.
    while (!refusal && Date.now() < until) {
      refusal = await cache.authenticate(token).then(() => null, (err: unknown) => err);
      if (!refusal) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((refusal as { type?: string } | null)?.type, 'UNKNOWN_SIGNING_KEY');
    assert.equal(cache.cachedPrincipal(token), undefined);
  });

  it('reads an API key once per TTL; a revocation is refused at once after forget(), and after the TTL without it', async () => {
    let now = Date.now();
    const apiKeys = new ApiKeyAuthenticator(async () => database.db.knex);
    const calls = counted(tokens, apiKeys);
    const here = new CredentialVerifier(tokens, apiKeys, { maxEntries: 100, apiKeyTtlMs: 5000 }, undefined, () => now);
    // Another replica: it never hears the broadcast.
    const elsewhere = new CredentialVerifier(tokens, new ApiKeyAuthenticator(async () => database.db.knex), { maxEntries: 100, apiKeyTtlMs: 5000 }, undefined, () => now);
    const key = await newKey();
    assert.deepEqual(await here.authenticate(key.token), { tenantId: 'acme', userId: 'bob', roles: ['viewer'] });
    await here.authenticate(key.token);
    await elsewhere.authenticate(key.token);
    assert.equal(calls.apiKey, 1);

    await new ApiKeysRepository(database.db.knex).revoke(tenantScope('acme'), key.id);
    assert.equal(here.forget({ tenantId: 'acme', keyId: key.id }), 1);
    await assert.rejects(() => here.authenticate(key.token), { code: 401, type: 'API_KEY_REVOKED' });
    // Bounded staleness where the event was lost: accepted until the TTL, refused from then on.
    await elsewhere.authenticate(key.token);
    now += 5000;
    await assert.rejects(() => elsewhere.authenticate(key.token), { code: 401, type: 'API_KEY_REVOKED' });
  });

  it("drops every cached key of a user whose roles changed, and no other tenant's", async () => {
    const cache = new CredentialVerifier(tokens, new ApiKeyAuthenticator(async () => database.db.knex));
    const one = await newKey(['viewer', 'editor']);
    const two = await newKey(['editor']);
    await cache.authenticate(one.token);
    await cache.authenticate(two.token);
    assert.equal(cache.forget({ tenantId: 'other', userId: 'bob' }), 0);
    await new ApiKeysRepository(database.db.knex).setRolesOfUser(tenantScope('acme'), 'bob', ['viewer']);
    assert.equal(cache.forget({ tenantId: 'acme', userId: 'bob' }), 2);
    assert.deepEqual((await cache.authenticate(two.token)).roles, ['viewer']);
  });
});
