import { hash } from 'node:crypto';
import type { Principal } from './jwt.ts';
import { looksLikeApiKey, type ApiKeyAuthenticator } from './api-keys.ts';
import type { AccessTokens } from './tokens.ts';

export interface CredentialCacheSettings {
  /** Verified credentials kept per process; the least recently used goes first. */
  maxEntries: number;
  /**
   * How long an API key's row is trusted without reading it again. A revocation or role
   * change also evicts the key at once on every replica that hears the broadcast
   * (`forget`); this bounds the staleness of a replica that missed it.
   */
  apiKeyTtlMs: number;
}

export const DEFAULT_CREDENTIAL_CACHE: CredentialCacheSettings = { maxEntries: 10_000, apiKeyTtlMs: 5_000 };

/** Broadcast to every api replica when API keys were revoked or their roles changed. */
export const CREDENTIALS_CHANGED_EVENT = 'auth.credentialsChanged';

/** Which cached credentials a revocation or role change makes stale. */
export interface CredentialChange {
  tenantId: string;
  /** Every API key of this user (a role change); absent: only `keyId`. */
  userId?: string;
  keyId?: string;
}

interface Entry {
  principal: Principal;
  /** Epoch ms after which the entry is not used: the JWT's exp, or now + apiKeyTtlMs for an API key. */
  until: number;
  /** The signing key of a JWT, looked up again on every hit so a retired key's tokens stop at once. */
  kid?: string;
  /** The API key's id, for `recordUse` and eviction. */
  keyId?: string;
}

/**
 * Authenticates a Bearer credential (an EdDSA/HS256 JWT or an API key) and keeps what
 * it verified in a bounded LRU keyed by the SHA-256 of the credential, so a repeated
 * token costs a hash and a map lookup instead of a signature check (~0.4 ms for
 * Ed25519 through jose) or a database read. Nothing that would refuse the credential
 * is skipped by a hit:
 *
 * - a JWT is used until its `exp` only, and its `kid` must still be in the keyset
 *   (a retired key's tokens are refused within the keyset reload interval, 1 s);
 * - an API key is used for `apiKeyTtlMs` at most, and `forget` (called on revoke
 *   and role change, here and via the broadcast on other replicas) evicts it at once;
 * - only successes are cached: a bad token is verified (and refused) every time.
 */
export class CredentialVerifier {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly tokens: AccessTokens,
    private readonly apiKeys: ApiKeyAuthenticator,
    private readonly settings: CredentialCacheSettings = DEFAULT_CREDENTIAL_CACHE,
    /** Runs once per credential this process has not cached (e.g. recording the token's member); a failure is not cached. */
    private readonly onFirstSight: (principal: Principal, kind: 'jwt' | 'apiKey') => Promise<void> = async () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  async authenticate(token: string): Promise<Principal> {
    // The hit path stays synchronous where it can: this runs before every request.
    const key = hash('sha256', token, 'base64url');
    const now = this.now();
    const hit = this.entries.get(key);
    if (hit) {
      if (hit.until > now && (hit.kid === undefined || (this.tokens.trustsKnown(hit.kid) ?? (await this.tokens.trusts(hit.kid))))) {
        // Refreshing the position keeps busy credentials in; Map order is the LRU order.
        this.entries.delete(key);
        this.entries.set(key, hit);
        if (hit.keyId) {
          const recording = this.apiKeys.recordUse(hit.keyId);
          if (recording) await recording;
        }
        return hit.principal;
      }
      this.entries.delete(key);
    }
    let entry: Entry;
    if (looksLikeApiKey(token)) {
      const { principal, keyId } = await this.apiKeys.authenticate(token);
      await this.onFirstSight(principal, 'apiKey');
      entry = { principal: freeze(principal), until: now + this.settings.apiKeyTtlMs, keyId };
    } else {
      const { principal, exp, kid } = await this.tokens.verifyDetailed(token);
      await this.onFirstSight(principal, 'jwt');
      // verify() enforced exp; a token without one (HS256 of existing setups) is verified again after the API key TTL.
      entry = { principal: freeze(principal), until: exp !== null ? exp * 1000 : now + this.settings.apiKeyTtlMs, ...(kid !== null ? { kid } : {}) };
    }
    this.entries.set(key, entry);
    if (this.entries.size > this.settings.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return entry.principal;
  }

  /** Drops cached API keys a revocation or role change made stale. */
  forget(change: CredentialChange): number {
    let dropped = 0;
    for (const [key, entry] of this.entries) {
      if (entry.keyId === undefined || entry.principal.tenantId !== change.tenantId) continue;
      if (entry.keyId === change.keyId || (change.userId !== undefined && entry.principal.userId === change.userId)) {
        this.entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }
}

/** One principal object serves many requests: frozen, so no request can change another's caller. */
function freeze(principal: Principal): Principal {
  const { tenantId, userId, roles } = principal;
  return Object.freeze({ tenantId, userId, roles: Object.freeze([...roles]) as Principal['roles'] });
}
