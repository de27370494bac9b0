import { RagmeshError } from '../../errors.ts';
import type { KeyValueStore } from '../../ports/key-value.ts';
import { degradations } from '../dependency-health.ts';
import { MemoryKeyValueStore } from './memory.ts';

/**
 * The process-local stand-in used while Redis is unreachable: caches start empty
 * (every lookup misses), and caps and rate limits count within this process only,
 * which is stricter per process and looser across the mesh, never unbounded.
 */
const local = new MemoryKeyValueStore();

/** Holds nothing: reads miss, writes vanish. */
const MISSING: KeyValueStore = {
  backend: 'memory',
  get: async () => null,
  set: async () => undefined,
  setIfAbsent: async () => true,
  deleteIfEquals: async () => false,
  delete: async () => undefined,
  deleteByPrefix: async () => [],
  incrementInWindow: async () => 1,
  hitWindows: async () => ({ allowed: true, retryAfterMs: 0 }),
  takeLease: async () => true,
  renewLease: async () => undefined,
  releaseLease: async () => undefined,
  ping: async () => undefined,
  close: async () => undefined,
};

export const isKvUnavailable = (err: unknown): boolean => err instanceof RagmeshError && err.type === 'KV_UNAVAILABLE';

/**
 * A view of `kv` for one `use` that keeps working when Redis does not answer: each
 * operation that fails with KV_UNAVAILABLE runs against the process-local store
 * instead and is counted in `degradations` (logged and exposed as a metric). Only
 * for duties where a per-process answer is safe: caches, stream caps, rate limits.
 * Locks that must hold across processes use the store itself and fail with 503.
 */
export function degradable(kv: KeyValueStore, use: string, options: { cache?: boolean } = {}): KeyValueStore {
  if (kv.backend === 'memory') return kv;
  // A cache must not answer from a local copy that outlived an invalidation it never
  // saw (between two outages): while Redis is away it stores nothing and every read misses.
  const fallback = options.cache ? MISSING : local;
  const run = async <T>(op: (store: KeyValueStore) => Promise<T>): Promise<T> => {
    try {
      return await op(kv);
    } catch (err) {
      if (!isKvUnavailable(err)) throw err;
      degradations.record({ dependency: 'kv', use, error: (err as Error).message });
      return op(fallback);
    }
  };
  return {
    backend: kv.backend,
    get: (key) => run((s) => s.get(key)),
    set: (key, value, ttlMs) => run((s) => s.set(key, value, ttlMs)),
    setIfAbsent: (key, value, ttlMs) => run((s) => s.setIfAbsent(key, value, ttlMs)),
    deleteIfEquals: (key, expected) => run((s) => s.deleteIfEquals(key, expected)),
    delete: (key) => run((s) => s.delete(key)),
    deleteByPrefix: (prefix) => run((s) => s.deleteByPrefix(prefix)),
    incrementInWindow: (key, windowMs) => run((s) => s.incrementInWindow(key, windowMs)),
    hitWindows: (keys, limits, windowMs) => run((s) => s.hitWindows(keys, limits, windowMs)),
    takeLease: (key, holder, cap, ttlMs) => run((s) => s.takeLease(key, holder, cap, ttlMs)),
    renewLease: (key, holder, ttlMs) => run((s) => s.renewLease(key, holder, ttlMs)),
    releaseLease: (key, holder) => run((s) => s.releaseLease(key, holder)),
    ping: () => kv.ping(),
    close: () => kv.close(),
  };
}
