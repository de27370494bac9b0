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

/** Characters at the end of a credential that key the cache (see CredentialVerifier). */
const TAIL = 32;

/**
 * The cache key of a credential: a 32-bit hash of its length and last TAIL characters
 * (a JWT's signature, an API key's secret). A small integer, so the lookup neither
 * allocates a key string nor hashes one; equal keys of different credentials only take
 * turns in the cache, since a hit must be the very credential (`===`).
 */
function tailKey(token: string, skip = 0): number {
  let h = token.length - skip;
  for (let i = Math.max(skip, token.length - TAIL); i < token.length; i++) h = (Math.imul(h, 31) + token.charCodeAt(i)) | 0;
  return h;
}

const BEARER = 'Bearer ';

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
  /** The whole credential: a hit must be this very string. */
  credential: string;
  /** `Bearer <credential>` as one flat string, for cachedBearer. */
  bearer: string;
  principal: Principal;
  /** Epoch ms after which the entry is not used: the JWT's exp, or now + apiKeyTtlMs for an API key. */
  until: number;
  /** The signing key of a JWT, looked up again on every hit so a retired key's tokens stop at once. */
  kid: string | undefined;
  /** The API key's id, for `recordUse` and eviction. */
  keyId: string | undefined;
  /** The cache's insertion count when the entry last moved to the young end (see `authenticate`). */
  stamp: number;
}

/**
 * Authenticates a Bearer credential (an EdDSA/HS256 JWT or an API key) and keeps what
 * it verified in a bounded LRU keyed by the credential itself, so a repeated token costs
 * a map lookup instead of a signature check (~0.4 ms for Ed25519 through jose) or a
 * database read. Nothing that would refuse the credential is skipped by a hit:
 *
 * - a JWT is used until its `exp` only, and its `kid` must still be in the keyset
 *   (a retired key's tokens are refused within the keyset reload interval, 1 s, and
 *   the file look it starts in the background);
 * - an API key is used for `apiKeyTtlMs` at most, and `forget` (called on revoke
 *   and role change, here and via the broadcast on other replicas) evicts it at once;
 * - only successes are cached: a bad token is verified (and refused) every time.
 *
 * The map's key is a 32-bit hash of the credential's length and last 32 characters (a
 * JWT's signature, an API key's secret; see tailKey), and a hit is used only when the
 * entry's whole credential is the one presented (`===`). Hashing a 300-character token
 * for the lookup cost 0.5 µs and SHA-256 through the crypto binding more, about a third
 * of the whole check; slicing the tail off as a string key still cost an allocation and
 * a string hash per request. Two credentials with equal keys only take turns in the
 * cache: a credential is cached only once verified, and verifying is what a miss does;
 * a refused credential evicts nothing. The process holds each credential in its request
 * headers anyway; a memory dump of the api is a leak of live
 * credentials either way.
 */
export class CredentialVerifier {
  private readonly entries = new Map<number, Entry>();
  /** Insertions and refreshes so far: an entry's age in the LRU order is `clock - stamp`. */
  private clock = 0;
  /** A hit moves its entry to the young end only once it is this old (see `authenticate`). */
  private readonly refreshAge: number;

  constructor(
    private readonly tokens: AccessTokens,
    private readonly apiKeys: ApiKeyAuthenticator,
    private readonly settings: CredentialCacheSettings = DEFAULT_CREDENTIAL_CACHE,
    /** Runs once per credential this process has not cached (e.g. recording the token's member); a failure is not cached. */
    private readonly onFirstSight: (principal: Principal, kind: 'jwt' | 'apiKey') => Promise<void> = async () => undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.refreshAge = Math.max(1, Math.floor(settings.maxEntries / 2));
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The principal of a credential verified before and still good, answered without a
   * promise; undefined when `authenticate` has work to do (a miss, an expired entry, a
   * retired kid, an API key whose last use is due to be written). The gateway calls this
   * first: through HTTP each async layer and each allocation of the hit path cost more
   * than in a loop (bench:auth), and this is the path of nearly every request.
   */
  cachedPrincipal(token: string, now = this.now()): Principal | undefined {
    const key = tailKey(token);
    const hit = this.entries.get(key);
    return hit !== undefined && hit.credential === token ? this.usable(key, hit, now) : undefined;
  }

  /**
   * cachedPrincipal of a whole Authorization header value (`Bearer <credential>`), compared
   * whole with the header the entry was verified under: the header is a flat string from
   * Node's parser, while a credential sliced off it compared 300 characters through V8's
   * slow path (~0.3 µs timed in place, against ~0.07). `now` lets the gateway share one
   * clock read between the checks of a request (each read cost 0.2–0.4 µs in place).
   */
  cachedBearer(header: string, now = this.now()): Principal | undefined {
    const key = tailKey(header, BEARER.length);
    const hit = this.entries.get(key);
    return hit !== undefined && hit.bearer === header ? this.usable(key, hit, now) : undefined;
  }

  private usable(key: number, hit: Entry, now: number): Principal | undefined {
    if (hit.until <= now) return undefined;
    if (hit.kid !== undefined && !this.tokens.trustsKnown(hit.kid, now)) return undefined;
    if (hit.keyId !== undefined && this.apiKeys.useDue(hit.keyId, now)) return undefined;
    this.touch(key, hit);
    return hit.principal;
  }

  async authenticate(token: string): Promise<Principal> {
    const cached = this.cachedPrincipal(token);
    if (cached) return cached;
    const now = this.now();
    const key = tailKey(token);
    const hit = this.entries.get(key);
    if (hit && hit.credential === token) {
      if (hit.until > now && (hit.kid === undefined || this.tokens.trustsKnown(hit.kid, now))) {
        this.touch(key, hit);
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
      entry = { credential: token, bearer: bearerOf(token), principal: freeze(principal), until: now + this.settings.apiKeyTtlMs, kid: undefined, keyId, stamp: 0 };
    } else {
      const { principal, exp, kid } = await this.tokens.verifyDetailed(token);
      await this.onFirstSight(principal, 'jwt');
      // verify() enforced exp; a token without one (HS256 of existing setups) is verified again after the API key TTL.
      entry = { credential: token, bearer: bearerOf(token), principal: freeze(principal), until: exp !== null ? exp * 1000 : now + this.settings.apiKeyTtlMs, kid: kid ?? undefined, keyId: undefined, stamp: 0 };
    }
    entry.stamp = ++this.clock;
    // Another credential with the same key gives way (set keeps the key's place, so it is moved too).
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (this.entries.size > this.settings.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return entry.principal;
  }

  /**
   * Map order is the LRU order. An entry in the younger half stays where it is (it is
   * not next to go); an older one moves to the young end. So a credential used at least
   * once per maxEntries/2 new ones is never dropped, and most hits cost no delete and re-insert.
   */
  private touch(key: number, hit: Entry): void {
    if (this.clock - hit.stamp >= this.refreshAge) {
      this.entries.delete(key);
      hit.stamp = ++this.clock;
      this.entries.set(key, hit);
    }
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

/** `Bearer <token>` built flat (join, not `+`, which makes a two-part string compared the slow way). */
function bearerOf(token: string): string {
  return [BEARER, token].join('');
}

/** One principal object serves many requests: frozen, so no request can change another's caller. */
function freeze(principal: Principal): Principal {
  const { tenantId, userId, roles } = principal;
  return Object.freeze({ tenantId, userId, roles: Object.freeze([...roles]) as Principal['roles'] });
}
