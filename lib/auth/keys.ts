import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';

/**
 * The signing keyset: EdDSA (Ed25519) keys named by `kid`.
 * - `active` signs new tokens;
 * - `next` is published and trusted already, so when a rotation makes it active,
 *   replicas that still hold the previous keyset accept its tokens;
 * - `retiring` keys no longer sign but verify until `retiresAt` (the longest token
 *   lifetime after they stopped signing), so a rotation logs no one out.
 * A key removed from the set verifies nothing.
 */
export type KeyState = 'active' | 'next' | 'retiring';

export interface StoredKey {
  kid: string;
  alg: 'EdDSA';
  state: KeyState;
  createdAt: string;
  /** When a retiring key stops verifying; `keys rotate` drops it after that. */
  retiresAt?: string;
  /** The private key as a JWK (OKP, Ed25519). */
  jwk: JWK;
}

export interface KeySet {
  version: 1;
  keys: StoredKey[];
}

export async function generateKey(state: KeyState, now = new Date()): Promise<StoredKey> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' }) as JWK;
  const kid = (await calculateJwkThumbprint({ kty: jwk.kty!, crv: jwk.crv!, x: jwk.x! })).slice(0, 16);
  return { kid, alg: 'EdDSA', state, createdAt: now.toISOString(), jwk };
}

export async function newKeySet(now = new Date()): Promise<KeySet> {
  return { version: 1, keys: [await generateKey('active', now), await generateKey('next', now)] };
}

/** Checks a keyset read from disk: exactly one active key, at most one next, every key complete. */
export function parseKeySet(text: string, source: string): KeySet {
  let value: KeySet;
  try {
    value = JSON.parse(text) as KeySet;
  } catch {
    throw new Error(`${source}: the signing keyset is not JSON`);
  }
  if (value?.version !== 1 || !Array.isArray(value.keys)) throw new Error(`${source}: not a ragmesh signing keyset (version 1)`);
  for (const key of value.keys) {
    if (typeof key.kid !== 'string' || key.alg !== 'EdDSA' || !['active', 'next', 'retiring'].includes(key.state) || key.jwk?.kty !== 'OKP' || typeof key.jwk.d !== 'string') {
      throw new Error(`${source}: key ${String(key?.kid)} is incomplete`);
    }
  }
  if (value.keys.filter((k) => k.state === 'active').length !== 1) throw new Error(`${source}: the keyset needs exactly one active key`);
  if (value.keys.filter((k) => k.state === 'next').length > 1) throw new Error(`${source}: the keyset has more than one next key`);
  return value;
}

export async function readKeySet(file: string): Promise<KeySet | null> {
  try {
    return parseKeySet(await readFile(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Writes atomically (temp file + rename), private to the owner, so a reader never sees half a keyset. */
export async function writeKeySet(file: string, set: KeySet): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(set, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, file);
}

/** The keyset at `file`, created (active + next) when absent; concurrent creators agree on one. */
export async function ensureKeySet(file: string): Promise<KeySet> {
  const existing = await readKeySet(file);
  if (existing) return existing;
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    await writeFile(file, `${JSON.stringify(await newKeySet(), null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return (await readKeySet(file))!;
}

/**
 * One rotation: next becomes active, active starts retiring (verifying until
 * `now + tokenTtlSeconds`, when every token it signed has expired), a fresh next is
 * made, and retiring keys past their date are dropped.
 */
export async function rotateKeySet(set: KeySet, tokenTtlSeconds: number, now = new Date()): Promise<KeySet> {
  const retiresAt = new Date(now.getTime() + tokenTtlSeconds * 1000).toISOString();
  const kept = set.keys.filter((k) => k.state !== 'retiring' || Date.parse(k.retiresAt ?? '') > now.getTime());
  const next = kept.find((k) => k.state === 'next') ?? (await generateKey('next', now));
  const keys: StoredKey[] = kept
    .filter((k) => k !== next)
    .map((k) => (k.state === 'active' ? { ...k, state: 'retiring' as const, retiresAt } : k));
  keys.unshift({ ...next, state: 'active' });
  keys.push(await generateKey('next', now));
  return { version: 1, keys };
}

/** Drops a key at once: tokens it signed stop working (e.g. a leaked key). The active key cannot be retired; rotate first. */
export function retireKey(set: KeySet, kid: string): KeySet {
  const key = set.keys.find((k) => k.kid === kid);
  if (!key) throw new Error(`no key ${kid}`);
  if (key.state === 'active') throw new Error(`key ${kid} is active; rotate first, then retire it`);
  return { version: 1, keys: set.keys.filter((k) => k.kid !== kid) };
}

/** Public halves of the keys that verify (active, next, retiring), as a JWKS. */
export function publicJwks(set: KeySet): { keys: JWK[] } {
  return {
    keys: set.keys.map((k) => ({ kty: k.jwk.kty, crv: k.jwk.crv, x: k.jwk.x, kid: k.kid, alg: 'EdDSA', use: 'sig' })),
  };
}

/** Key objects of a keyset, imported once. */
export class LoadedKeys {
  private readonly verifiers = new Map<string, KeyObject>();
  readonly signer: { kid: string; key: KeyObject };

  constructor(readonly set: KeySet) {
    for (const k of set.keys) {
      if (k.state === 'retiring' && k.retiresAt && Date.parse(k.retiresAt) <= Date.now()) continue;
      this.verifiers.set(k.kid, createPublicKey({ key: { kty: k.jwk.kty, crv: k.jwk.crv, x: k.jwk.x } as never, format: 'jwk' }));
    }
    const active = set.keys.find((k) => k.state === 'active')!;
    this.signer = { kid: active.kid, key: createPrivateKey({ key: active.jwk as never, format: 'jwk' }) };
  }

  verifier(kid: string): KeyObject | undefined {
    return this.verifiers.get(kid);
  }
}

/** Modification time of the keyset file, to notice a rotation by another process. */
export async function keySetVersion(file: string): Promise<number | null> {
  try {
    return (await stat(file)).mtimeMs;
  } catch {
    return null;
  }
}
