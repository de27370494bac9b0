import type { KeyValueStore, WindowVerdict } from '../../ports/key-value.ts';

interface Entry {
  value: string;
  expiresAt: number | null;
}

/**
 * One key's sliding-window log: hit times in ascending order from `head` on. Hits that
 * leave the window advance `head` instead of shifting the array; the array is compacted
 * once the dropped part is its larger half, so a hit costs O(1) amortised however full
 * the window is.
 */
interface WindowLog {
  hits: number[];
  head: number;
  expiresAt: number;
}

/** Every allowed hit answers the same (read-only) verdict: nothing to allocate per request. */
const ALLOWED: WindowVerdict = Object.freeze({ allowed: true, retryAfterMs: 0 });

/**
 * The embedded profile's stand-in for Redis: one process, so a Map is enough. Expired
 * entries are dropped on read and by a periodic sweep, so memory stays bounded by
 * live keys. Contents vanish on restart, which is fine: nothing here is a source of truth.
 */
export class MemoryKeyValueStore implements KeyValueStore {
  readonly backend = 'memory' as const;
  private readonly entries = new Map<string, Entry>();
  /** Sliding-window logs, per key. */
  private readonly windows = new Map<string, WindowLog>();
  /** Counted leases: holder → expiry (epoch ms), per key. */
  private readonly leases = new Map<string, Map<string, number>>();
  /** The logs of the hit being counted (reused: hitWindows runs to its end without a pause). */
  private readonly counting: WindowLog[] = [];
  private readonly sweeper: NodeJS.Timeout;

  constructor(sweepEveryMs = 30_000) {
    this.sweeper = setInterval(() => this.sweep(), sweepEveryMs);
    this.sweeper.unref();
  }

  async get(key: string): Promise<string | null> {
    return this.live(key)?.value ?? null;
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    this.entries.set(key, { value, expiresAt: ttlMs ? Date.now() + ttlMs : null });
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    if (this.live(key)) return false;
    this.entries.set(key, { value, expiresAt: Date.now() + ttlMs });
    return true;
  }

  async deleteIfEquals(key: string, expected: string): Promise<boolean> {
    if (this.live(key)?.value !== expected) return false;
    this.entries.delete(key);
    return true;
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }

  async deleteByPrefix(prefix: string): Promise<string[]> {
    const keys = [...this.entries.keys()].filter((k) => k.startsWith(prefix) && this.live(k));
    for (const key of keys) this.entries.delete(key);
    return keys;
  }

  async incrementInWindow(key: string, windowMs: number): Promise<number> {
    const entry = this.live(key);
    if (!entry) {
      this.entries.set(key, { value: '1', expiresAt: Date.now() + windowMs });
      return 1;
    }
    const next = Number(entry.value) + 1;
    entry.value = String(next);
    return next;
  }

  async hitWindows(keys: string[], limits: number[], windowMs: number): Promise<WindowVerdict> {
    return this.hitWindowsNow(keys, limits, windowMs);
  }

  /** hitWindows answered without a promise: the rate limiter's check of every request waits on nothing here. */
  hitWindowsNow(keys: string[], limits: number[], windowMs: number, now = Date.now()): WindowVerdict {
    const since = now - windowMs;
    const logs = this.counting;
    let retryAfterMs = 0;
    for (let i = 0; i < keys.length; i++) {
      let log = this.windows.get(keys[i]!);
      if (!log) {
        log = { hits: [], head: 0, expiresAt: 0 };
        this.windows.set(keys[i]!, log);
      }
      const hits = log.hits;
      let head = log.head;
      while (head < hits.length && hits[head]! <= since) head++;
      log.head = head;
      if (hits.length - head >= limits[i]!) retryAfterMs = Math.max(retryAfterMs, head < hits.length ? hits[head]! + windowMs - now : windowMs, 1);
      logs[i] = log;
    }
    if (retryAfterMs > 0) return { allowed: false, retryAfterMs };
    for (let i = 0; i < keys.length; i++) {
      const log = logs[i]!;
      if (log.head >= 64 && log.head * 2 >= log.hits.length) {
        log.hits.copyWithin(0, log.head);
        log.hits.length -= log.head;
        log.head = 0;
      }
      log.hits.push(now);
      log.expiresAt = now + windowMs;
    }
    return ALLOWED;
  }

  async takeLease(key: string, holder: string, cap: number, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    let set = this.leases.get(key);
    if (!set) this.leases.set(key, (set = new Map()));
    for (const [h, until] of set) if (until <= now) set.delete(h);
    if (!set.has(holder) && set.size >= cap) return false;
    set.set(holder, now + ttlMs);
    return true;
  }

  async renewLease(key: string, holder: string, ttlMs: number): Promise<void> {
    let set = this.leases.get(key);
    if (!set) this.leases.set(key, (set = new Map()));
    set.set(holder, Date.now() + ttlMs);
  }

  async releaseLease(key: string, holder: string): Promise<void> {
    const set = this.leases.get(key);
    set?.delete(holder);
    if (set?.size === 0) this.leases.delete(key);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.entries.clear();
    this.windows.clear();
    this.leases.clear();
  }

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt !== null && entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt !== null && entry.expiresAt <= now) this.entries.delete(key);
    }
    for (const [key, log] of this.windows) {
      if (log.expiresAt <= now) this.windows.delete(key);
    }
    for (const [key, set] of this.leases) {
      for (const [holder, until] of set) if (until <= now) set.delete(holder);
      if (set.size === 0) this.leases.delete(key);
    }
  }
}
