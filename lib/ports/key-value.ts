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
  /**
   * A sliding-window log over several keys at once, as one atomic step: a hit is
   * counted in every key only when each stays within its limit over the last
   * `windowMs`; otherwise nothing is counted and `retryAfterMs` says when the fullest
   * key frees a slot. Rate limits rest on it (one user's and one tenant's window together).
   */
  hitWindows(keys: string[], limits: number[], windowMs: number): Promise<WindowVerdict>;
  /**
   * hitWindows answered at once, by a store that holds the windows in this process (the
   * memory store); absent where the answer needs a round trip (Redis). The rate limiter
   * runs before every request and uses it to wait on nothing when it can. `now` (epoch ms)
   * is the caller's clock read, when it already has one for this request.
   */
  hitWindowsNow?(keys: string[], limits: number[], windowMs: number, now?: number): WindowVerdict;
  /**
   * Counted leases: takes a lease for `holder` in the set `key` only when fewer than `cap`
   * unexpired leases are in it, as one atomic step; each lease expires `ttlMs` after it was
   * taken or last renewed, so the leases of a crashed holder free themselves. True when taken.
   */
  takeLease(key: string, holder: string, cap: number, ttlMs: number): Promise<boolean>;
  /** Pushes the lease's expiry to `ttlMs` from now (and takes it again if it had expired). */
  renewLease(key: string, holder: string, ttlMs: number): Promise<void>;
  releaseLease(key: string, holder: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface WindowVerdict {
  allowed: boolean;
  /** 0 when allowed. */
  retryAfterMs: number;
}
