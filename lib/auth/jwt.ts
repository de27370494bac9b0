import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import type { Config } from '../config/env.ts';
import { appError } from '../errors.ts';
import { TENANT_ID_PATTERN } from '../ports/tenant-scope.ts';

export const ROLES = ['viewer', 'editor', 'admin', 'tenant_admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling; the api puts it in ctx.meta.auth, so every service of the call sees it. */
export interface Principal {
  tenantId: string;
  userId: string;
  roles: Role[];
}

export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;

export function parseRole(value: string): Role {
  if ((ROLES as readonly string[]).includes(value)) return value as Role;
  throw appError('INVALID_ROLE', `Unknown role "${value}"; use one of ${ROLES.join(', ')}`);
}

export async function signAccessToken(
  principal: Principal,
  secret: string,
  options: { issuer: string; ttlSeconds: number },
): Promise<string> {
  if (!TENANT_ID_PATTERN.test(principal.tenantId)) throw appError('INVALID_TENANT', 'Invalid tenant id');
  if (!USER_ID_PATTERN.test(principal.userId)) throw appError('INVALID_USER', 'Invalid user id');
  principal.roles.forEach(parseRole);
  return new SignJWT({ tid: principal.tenantId, roles: principal.roles })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(principal.userId)
    .setIssuer(options.issuer)
    .setIssuedAt()
    .setExpirationTime(`${options.ttlSeconds}s`)
    .sign(new TextEncoder().encode(secret));
}

/**
 * HS256 tokens of existing setups (JWT_SECRET). New code signs with lib/auth/tokens.ts
 * (EdDSA, kid); AccessTokens.verify accepts both. Verifies signature, algorithm,
 * issuer and expiry, then the claims' shape. Any failure is a 401.
 */
export async function verifyAccessToken(token: string, secret: string, issuer: string): Promise<Principal> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, new TextEncoder().encode(secret), { algorithms: ['HS256'], issuer }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw appError('TOKEN_EXPIRED', 'The access token has expired');
    throw appError('INVALID_TOKEN', 'The access token is invalid');
  }
  return principalOf(payload);
}

/** The caller a verified token's claims name; claims of the wrong shape are a 401. */
export function principalOf(payload: object): Principal {
  const { tid, roles, sub } = payload as { tid?: unknown; roles?: unknown; sub?: unknown };
  if (typeof tid !== 'string' || !TENANT_ID_PATTERN.test(tid)) throw appError('INVALID_TOKEN', 'The token has no valid tenant');
  if (typeof sub !== 'string' || !USER_ID_PATTERN.test(sub)) throw appError('INVALID_TOKEN', 'The token has no valid subject');
  if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string' && (ROLES as readonly string[]).includes(r))) {
    throw appError('INVALID_TOKEN', 'The token has invalid roles');
  }
  return { tenantId: tid, userId: sub, roles: roles as Role[] };
}

/**
 * The HS256 secret: JWT_SECRET when set (required in the mesh profile, checked by
 * loadConfig); otherwise the embedded profile keeps one in DATA_DIR/secrets, created
 * on first start, so `npm start` and `npm run token` agree without any setup.
 */
export async function resolveJwtSecret(config: Config): Promise<string> {
  if (config.auth.jwtSecret) return config.auth.jwtSecret;
  const file = path.join(config.dataDir, 'secrets', 'jwt-secret');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const secret = randomBytes(48).toString('base64url');
  // Written whole under a temporary name, then linked into place: link() fails if the
  // file exists, so a concurrent starter never reads a created-but-empty file.
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(temporary, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(temporary, file);
    return secret;
  } catch (err) {
    // Another starter linked its secret first: theirs wins.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(file, 'utf8')).trim();
    throw err;
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
}
