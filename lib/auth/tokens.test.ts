import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SignJWT, decodeProtectedHeader } from 'jose';
import { waitFor } from '../../test/support/processes.ts';
import { tempDir } from '../../test/support/services.ts';
import { signAccessToken } from './jwt.ts';
import { readKeySet, retireKey, rotateKeySet, writeKeySet } from './keys.ts';
import { AccessTokens, type TokenSettings } from './tokens.ts';

const alice = { tenantId: 'acme', userId: 'alice', roles: ['editor' as const] };
const HS = 'an-existing-setups-secret-of-32-chars-or-more';

async function withTokens(fn: (tokens: AccessTokens, settings: TokenSettings) => Promise<void>, hsSecret: string | null = null) {
  const dir = await tempDir();
  try {
    const settings: TokenSettings = { issuer: 'ragmesh', audience: 'ragmesh', keysFile: path.join(dir.value, 'keys.json'), hsSecret, createKeys: true };
    await fn(await AccessTokens.open(settings), settings);
  } finally {
    await dir.dispose();
  }
}

describe('AccessTokens (EdDSA keyset with kid)', () => {
  it('signs with the active key, names it in kid, and publishes active + next in the JWKS', async () => {
    await withTokens(async (tokens, settings) => {
      const token = await tokens.sign(alice, 60);
      const header = decodeProtectedHeader(token);
      assert.equal(header.alg, 'EdDSA');
      assert.equal(header.kid, tokens.activeKid);
      assert.deepEqual(await tokens.verify(token), alice);
      const set = (await readKeySet(settings.keysFile))!;
      assert.deepEqual(tokens.jwks().keys.map((k) => (k as { kid: string }).kid), set.keys.map((k) => k.kid));
      assert.ok(tokens.jwks().keys.every((k) => !('d' in (k as object))), 'no private halves in the JWKS');
    });
  });

  it('rotation: old tokens keep working, new ones carry the new kid, a retired key is refused', async () => {
    await withTokens(async (tokens, settings) => {
      const before = await tokens.sign(alice, 600);
      const oldKid = tokens.activeKid!;
      const rotated = await rotateKeySet((await readKeySet(settings.keysFile))!, 600);
      await writeKeySet(settings.keysFile, rotated);
      // Another process (a second replica, the token script) reads the rotated file.
      const other = await AccessTokens.open(settings);
      const after = await other.sign(alice, 600);
      assert.notEqual(decodeProtectedHeader(after).kid, oldKid);
      assert.equal(decodeProtectedHeader(after).kid, rotated.keys.find((k) => k.state === 'active')!.kid);
      // The first verifier never reloaded: the new active key was its `next`, so it trusts it already.
      assert.deepEqual(await tokens.verify(after), alice);
      assert.deepEqual(await tokens.verify(before), alice, 'a token of the retiring key still works');
      assert.deepEqual(await other.verify(before), alice);
      await writeKeySet(settings.keysFile, retireKey(rotated, oldKid));
      // A verifier notices a rewritten keyset within a second.
      await waitFor('the verifier to drop the retired key', () => tokens.verify(before).then(() => false, (err) => err.type === 'UNKNOWN_SIGNING_KEY'), 5000);
      await waitFor('the other verifier to drop the retired key', () => other.verify(before).then(() => false, (err) => err.code === 401), 5000);
      assert.deepEqual(await tokens.verify(after), alice);
    });
  });

  it('refuses alg none, a wrong kid, a foreign key, expired, not-yet-valid and wrong-audience tokens', async () => {
    await withTokens(async (tokens) => {
      const good = await tokens.sign(alice, 60);
      const [, payload] = good.split('.');
      const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${payload}.`;
      await assert.rejects(() => tokens.verify(none), { code: 401, type: 'INVALID_TOKEN' });
      const [, body, sig] = good.split('.');
      const wrongKid = `${Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: 'not-a-key-of-ours', typ: 'JWT' })).toString('base64url')}.${body}.${sig}`;
      await assert.rejects(() => tokens.verify(wrongKid), { code: 401, type: 'UNKNOWN_SIGNING_KEY' });
      // Right kid, but signed by an attacker's own key.
      const { privateKey } = generateKeyPairSync('ed25519');
      const claims = { tid: 'acme', roles: ['admin'] };
      const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: tokens.activeKid! }).setSubject('mallory').setIssuer('ragmesh').setAudience('ragmesh').setExpirationTime('1m').sign(privateKey);
      await assert.rejects(() => tokens.verify(forged), { code: 401, type: 'INVALID_TOKEN' });
      const now = Math.floor(Date.now() / 1000);
      await assert.rejects(async () => tokens.verify(await tokens.sign(alice, 60, { notBefore: now + 3600 })), { code: 401, type: 'TOKEN_NOT_YET_VALID' });
      // HS256 is refused when no secret is configured (no algorithm confusion with the public key).
      await assert.rejects(async () => tokens.verify(await signAccessToken(alice, HS, { issuer: 'ragmesh', ttlSeconds: 60 })), { code: 401, type: 'INVALID_TOKEN' });
      await assert.rejects(() => tokens.verify('not.a.token'), { code: 401 });
      await assert.rejects(() => tokens.verify(''), { code: 401 });
    });
  });

  it('refuses expired and wrong-audience tokens signed by the right key', async () => {
    const dir = await tempDir();
    try {
      const settings: TokenSettings = { issuer: 'ragmesh', audience: 'ragmesh', keysFile: path.join(dir.value, 'k.json'), hsSecret: null, createKeys: true };
      const tokens = await AccessTokens.open(settings);
      const otherAudience = await AccessTokens.open({ ...settings, audience: 'some-other-service' });
      await assert.rejects(async () => tokens.verify(await otherAudience.sign(alice, 60)), { code: 401, type: 'INVALID_TOKEN' });
      const otherIssuer = await AccessTokens.open({ ...settings, issuer: 'evil' });
      await assert.rejects(async () => tokens.verify(await otherIssuer.sign(alice, 60)), { code: 401, type: 'INVALID_TOKEN' });
      const expired = await tokens.sign(alice, -10 as number);
      await assert.rejects(() => tokens.verify(expired), { code: 401, type: 'TOKEN_EXPIRED' });
    } finally {
      await dir.dispose();
    }
  });

  it('keeps HS256 with JWT_SECRET working for existing setups', async () => {
    await withTokens(async (tokens) => {
      const legacy = await signAccessToken(alice, HS, { issuer: 'ragmesh', ttlSeconds: 60 });
      assert.deepEqual(await tokens.verify(legacy), alice);
      await assert.rejects(async () => tokens.verify(await signAccessToken(alice, `${HS}x`, { issuer: 'ragmesh', ttlSeconds: 60 })), { code: 401 });
    }, HS);
  });
});
