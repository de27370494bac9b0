import { SignJWT, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Config } from '../config/env.ts';
import { appError } from '../errors.ts';
import { TENANT_ID_PATTERN } from '../ports/tenant-scope.ts';
import { ROLES, USER_ID_PATTERN, parseRole, principalOf, type Principal } from './jwt.ts';
import { ensureKeySet, keySetVersion, LoadedKeys, publicJwks, readKeySet, type KeySet } from './keys.ts';

/** How often a verifier looks at the keyset file for a rotation made by another process. */
const RELOAD_CHECK_MS = 1000;

export interface TokenSettings {
  issuer: string;
  audience: string;
  keysFile: string;
  /** HS256 secret of existing setups; null = HS256 tokens are refused. */
  hsSecret: string | null;
  /** Create the keyset when absent (the embedded profile); the mesh reads its Swarm secret only. */
  createKeys: boolean;
}

export function tokenSettings(config: Config, hsSecret: string | null): TokenSettings {
  return {
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    keysFile: config.auth.keysFile,
    hsSecret,
    createKeys: config.profile === 'embedded',
  };
}

/**
 * Signs and verifies access tokens. New tokens are EdDSA, signed by the keyset's active
 * key and naming it in `kid`; verification accepts any key of the keyset that still
 * verifies (active, next, retiring), and HS256 with the configured secret for
 * existing setups. Every failure is a 401 with a stable code.
 */
export class AccessTokens {
  private loaded: LoadedKeys | null;
  private version: number | null;
  private lastCheck = 0;
  private checking: Promise<void> | null = null;

  private constructor(
    private readonly settings: TokenSettings,
    set: KeySet | null,
    version: number | null,
  ) {
    this.loaded = set ? new LoadedKeys(set) : null;
    this.version = version;
    this.lastCheck = Date.now();
  }

  static async open(settings: TokenSettings): Promise<AccessTokens> {
    const set = settings.createKeys ? await ensureKeySet(settings.keysFile) : await readKeySet(settings.keysFile);
    if (!set && !settings.hsSecret) throw new Error(`No signing keyset at ${settings.keysFile} and no JWT_SECRET: run \`npm run keys -- init\``);
    return new AccessTokens(settings, set, await keySetVersion(settings.keysFile));
  }

  /** The kid new tokens carry, or null when only HS256 is configured. */
  get activeKid(): string | null {
    return this.loaded?.signer.kid ?? null;
  }

  jwks(): { keys: unknown[] } {
    return this.loaded ? publicJwks(this.loaded.set) : { keys: [] };
  }

  async sign(principal: Principal, ttlSeconds: number, extra: { notBefore?: number } = {}): Promise<string> {
    if (!TENANT_ID_PATTERN.test(principal.tenantId)) throw appError('INVALID_TENANT', 'Invalid tenant id');
    if (!USER_ID_PATTERN.test(principal.userId)) throw appError('INVALID_USER', 'Invalid user id');
    principal.roles.forEach(parseRole);
    const jwt = new SignJWT({ tid: principal.tenantId, roles: principal.roles })
      .setSubject(principal.userId)
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setIssuedAt()
      .setExpirationTime(`${ttlSeconds}s`);
    if (extra.notBefore !== undefined) jwt.setNotBefore(extra.notBefore);
    if (this.loaded) {
      const { kid, key } = this.loaded.signer;
      return jwt.setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' }).sign(key);
    }
    return jwt.setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(this.settings.hsSecret!));
  }

  async verify(token: string): Promise<Principal> {
    return (await this.verifyDetailed(token)).principal;
  }

  /** verify(), plus what a cache of verified tokens needs: the expiry (epoch s, null without exp) and the signing key. */
  async verifyDetailed(token: string): Promise<{ principal: Principal; exp: number | null; kid: string | null }> {
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw appError('INVALID_TOKEN', 'The access token is malformed');
    }
    let payload: JWTPayload;
    try {
      if (header.alg === 'HS256') {
        if (!this.settings.hsSecret) throw appError('INVALID_TOKEN', 'HS256 tokens are not accepted here');
        ({ payload } = await jwtVerify(token, new TextEncoder().encode(this.settings.hsSecret), { algorithms: ['HS256'], issuer: this.settings.issuer }));
        // Tokens of existing setups carry no audience; one that does must name ours.
        if (payload.aud !== undefined && ![payload.aud].flat().includes(this.settings.audience)) {
          throw appError('INVALID_TOKEN', 'The token is for another audience');
        }
      } else if (header.alg === 'EdDSA' || header.alg === 'Ed25519') {
        if (typeof header.kid !== 'string') throw appError('INVALID_TOKEN', 'The token names no signing key (kid)');
        const key = await this.verifierFor(header.kid);
        if (!key) throw appError('UNKNOWN_SIGNING_KEY', 'The token was signed by a key that is not (or no longer) trusted');
        ({ payload } = await jwtVerify(token, key, {
          algorithms: ['EdDSA', 'Ed25519'],
          issuer: this.settings.issuer,
          audience: this.settings.audience,
          requiredClaims: ['exp', 'sub'],
        }));
      } else {
        throw appError('INVALID_TOKEN', `Tokens signed with ${String(header.alg).slice(0, 16)} are not accepted`);
      }
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw appError('TOKEN_EXPIRED', 'The access token has expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf') throw appError('TOKEN_NOT_YET_VALID', 'The access token is not valid yet');
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud') throw appError('INVALID_TOKEN', 'The token is for another audience');
      if ((err as { name?: string }).name === 'RagmeshError') throw err;
      throw appError('INVALID_TOKEN', 'The access token is invalid');
    }
    return { principal: principalOf(payload), exp: typeof payload.exp === 'number' ? payload.exp : null, kid: typeof header.kid === 'string' && header.alg !== 'HS256' ? header.kid : null };
  }

  /**
   * Whether tokens of `kid` still verify, by the keyset as loaded: no request waits. When
   * the keyset file is due for a look (once a second), the look starts in the background
   * and the answer changes as soon as it has read a rotation or retirement, a few
   * milliseconds later. A failed look keeps the loaded keyset; the next one tries again.
   */
  trustsKnown(kid: string, now = Date.now()): boolean {
    if (now - this.lastCheck >= RELOAD_CHECK_MS && !this.checking) void this.maybeReload(false).catch(() => undefined);
    return this.loaded?.verifier(kid) !== undefined;
  }

  /**
   * The key of a kid. A rotation by `npm run keys` (another process) shows as a new
   * file version: looked at no more than once a second, and at once for an unknown kid.
   */
  private async verifierFor(kid: string) {
    await this.maybeReload(this.loaded?.verifier(kid) === undefined);
    return this.loaded?.verifier(kid);
  }

  private async maybeReload(unknownKid: boolean): Promise<void> {
    const now = Date.now();
    if (now - this.lastCheck < RELOAD_CHECK_MS && !unknownKid) return;
    if (unknownKid && now - this.lastCheck < 100) return;
    this.checking ??= (async () => {
      this.lastCheck = Date.now();
      const version = await keySetVersion(this.settings.keysFile);
      if (version === this.version) return;
      const set = await readKeySet(this.settings.keysFile).catch(() => null);
      if (set) {
        this.loaded = new LoadedKeys(set);
        this.version = version;
      }
    })().finally(() => (this.checking = null));
    await this.checking;
  }
}

export { ROLES };
