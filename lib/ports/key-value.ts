/**
 * The Redis duties of ragmesh: cache entries with TTL, locks, rate-limit counters and
 * idempotency keys. Never a source of truth: losing everything here must only cost
 * recomputation. Keys are namespaced by the adapter's prefix.
 */
export interface KeyValueStore {
  readonly backend: 'memory' | 'redis';
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /** Sets only when the key is absent; true when this call set it. Locks and idempotency keys rest on it. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Deletes only when the stored value equals `expected`, so a lock holder never frees someone else's lock. */
  deleteIfEquals(key: string, expected: string): Promise<boolean>;
  delete(key: string): Promise<void>;
  /** Deletes every key that starts with `prefix`; returns the keys it deleted. For indexes kept as key families (e.g. a document's cached answers). */
  deleteByPrefix(prefix: string): Promise<string[]>;
  /** Adds one to a counter that expires `windowMs` after its first increment; returns the new count. */
  incrementInWindow(key: string, windowMs: number): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
