import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import { appError } from '../errors.ts';
import { ApiKeysRepository } from '../repositories/api-keys.ts';
import type { Principal } from './jwt.ts';

/** `rmk_<18 hex id>_<43 base64url secret>`: the id finds the row, the secret proves possession. */
const API_KEY = /^rmk_([0-9a-f]{18})_([A-Za-z0-9_-]{43})$/;
/** last_used_at is written at most this often per key, so a busy key costs no write per request. */
const TOUCH_EVERY_MS = 60_000;

export function looksLikeApiKey(token: string): boolean {
  return token.startsWith('rmk_');
}

const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');

/** A fresh key: the token is shown once; only the hash is stored. */
export function mintApiKey(): { id: string; token: string; secretHash: string } {
  const id = randomBytes(9).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, token: `rmk_${id}_${secret}`, secretHash: hashSecret(secret) };
}

/**
 * Authenticates API keys presented as Bearer tokens by reading the key's row (one
 * indexed lookup). CredentialVerifier (./credentials.ts) caches what it returns for a
 * few seconds and evicts it on revocation, so not every request pays the read.
 */
export class ApiKeyAuthenticator {
  private readonly touched = new Map<string, number>();

  constructor(private readonly knex: () => Promise<Knex>) {}

  async authenticate(token: string): Promise<{ principal: Principal; keyId: string }> {
    const match = API_KEY.exec(token);
    if (!match) throw appError('INVALID_API_KEY', 'The API key is malformed');
    const key = await new ApiKeysRepository(await this.knex()).credential(match[1]!);
    const presented = Buffer.from(hashSecret(match[2]!), 'hex');
    if (!key || !timingSafeEqual(presented, Buffer.from(key.secretHash, 'hex'))) throw appError('INVALID_API_KEY', 'The API key is not valid');
    if (key.revokedAt) throw appError('API_KEY_REVOKED', 'The API key was revoked');
    await this.recordUse(key.id);
    return { principal: { tenantId: key.tenantId, userId: key.userId, roles: key.roles }, keyId: key.id };
  }

  /** Whether recordUse would write now (the key's last write here is a minute old): the cache's hit path then waits for it. */
  useDue(keyId: string, now = Date.now()): boolean {
    return (this.touched.get(keyId) ?? 0) + TOUCH_EVERY_MS <= now;
  }

  /** Records a use of the key as its last-used time: written at most once a minute per key and process. */
  recordUse(keyId: string): Promise<void> | undefined {
    const now = Date.now();
    // Nothing to await on the common path: the caller runs before every request.
    if (!this.useDue(keyId, now)) return undefined;
    this.touched.set(keyId, now);
    if (this.touched.size > 100_000) this.touched.clear();
    return this.knex().then((knex) => new ApiKeysRepository(knex).touch(keyId, new Date(now)));
  }
}
