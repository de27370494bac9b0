import type { KeyValueStore, WindowVerdict } from '../../ports/key-value.ts';

interface Entry {
  value: string;
  expiresAt: number | null;
}

/**
 * The embedded profile's stand-in for Redis: one process, so a Map is enough. Expired
 * entries are dropped on read and by a periodic sweep, so memory stays bounded by
 * live keys. Contents vanish on restart, which is fine: nothing here is a source of truth.
 */
export class MemoryKeyValueStore implements KeyValueStore {
  readonly backend = 'memory' as const;
  private readonly entries = new Map<string, Entry>();
  /** Sliding-window logs: hit times in ascending order, per key. */
  private readonly windows = new Map<string, { hits: number[]; expiresAt: number }>();
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
    const now = Date.now();
    let retryAfterMs = 0;
    const logs = keys.map((key, i) => {
      let log = this.windows.get(key);
      if (!log) {
        log = { hits: [], expiresAt: 0 };
        this.windows.set(key, log);
      }
      let drop = 0;
      while (drop < log.hits.length && log.hits[drop]! <= now - windowMs) drop++;
      if (drop) log.hits.splice(0, drop);
      if (log.hits.length >= limits[i]!) retryAfterMs = Math.max(retryAfterMs, log.hits[0]! + windowMs - now, 1);
      return log;
    });
    if (retryAfterMs > 0) return { allowed: false, retryAfterMs };
    for (const log of logs) {
      log.hits.push(now);
      log.expiresAt = now + windowMs;
    }
    return { allowed: true, retryAfterMs: 0 };
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.entries.clear();
    this.windows.clear();
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
  }
}
