import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { appError, RagmeshError } from '../../errors.ts';
import type { KeyValueStore, WindowVerdict } from '../../ports/key-value.ts';
import { DependencyHealth } from '../dependency-health.ts';

// Compare-and-delete must be one atomic step, or a lock could expire and be taken by
// another holder between our GET and DEL.
const DELETE_IF_EQUALS = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
// The expiry is set only by the first increment, so the window is fixed, not sliding.
const INCREMENT_IN_WINDOW = `local n = redis.call('incr', KEYS[1]) if n == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end return n`;

/** How long one command may wait for Redis (a paused or stalled server) before it counts as unavailable. */
export const REDIS_COMMAND_TIMEOUT_MS = 500;

// A sliding-window log per key in a sorted set scored by Redis's own clock (replicas of
// the api may disagree on time; the one Redis does not). Check every key first, then
// count the hit in all or none, so a refused request never uses up anyone's window.
// Returns 0 when the hit was counted, else the milliseconds until a slot frees.
const HIT_WINDOWS = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local retry = 0
for i, key in ipairs(KEYS) do
  redis.call('zremrangebyscore', key, '-inf', now - window)
  if redis.call('zcard', key) >= tonumber(ARGV[2 + i]) then
    local oldest = redis.call('zrange', key, 0, 0, 'WITHSCORES')
    local wait = tonumber(oldest[2]) + window - now
    if wait < 1 then wait = 1 end
    if wait > retry then retry = wait end
  end
end
if retry > 0 then return retry end
for i, key in ipairs(KEYS) do
  redis.call('zadd', key, now, ARGV[2])
  redis.call('pexpire', key, window)
end
return 0`;

// Counted leases: a sorted set of holders scored by their expiry on Redis's clock. Expired
// leases are dropped, then the lease is taken only under the cap; the key lives as long
// as its longest lease, so an idle set vanishes.
const TAKE_LEASE = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if not redis.call('zscore', KEYS[1], ARGV[1]) and redis.call('zcard', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('zadd', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
if redis.call('pttl', KEYS[1]) < tonumber(ARGV[3]) then redis.call('pexpire', KEYS[1], ARGV[3]) end
return 1`;
const RENEW_LEASE = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('pttl', KEYS[1]) < tonumber(ARGV[2]) then redis.call('pexpire', KEYS[1], ARGV[2]) end
return 1`;

export class RedisKeyValueStore implements KeyValueStore {
  readonly backend = 'redis' as const;
  readonly health: DependencyHealth;

  /** Whether the socket is corked until the next tick (see batchWrites). */
  private corked = false;

  private constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    this.health = new DependencyHealth('kv', async () => {
      await this.redis.ping();
    });
  }

  /**
   * ioredis reconnects on its own with backoff. While it is disconnected, commands fail
   * at once (no offline queue) and a command Redis does not answer (CLIENT PAUSE, a
   * stalled server) fails after REDIS_COMMAND_TIMEOUT_MS: either way as a retryable
   * 503 KV_UNAVAILABLE, so callers degrade (see degradable.ts) instead of waiting.
   */
  static async connect(url: string, prefix: string): Promise<RedisKeyValueStore> {
    const redis = new Redis(url, {
      keyPrefix: prefix,
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
      connectTimeout: 2000,
      enableReadyCheck: true,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    redis.on('error', () => {
      // Reported through ping()/readiness and command failures; without a listener
      // ioredis would print every reconnect attempt as an unhandled error.
    });
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw err;
    }
    return new RedisKeyValueStore(redis, prefix);
  }

  async get(key: string): Promise<string | null> {
    return this.command(() => this.redis.get(key));
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    await this.command(() => (ttlMs ? this.redis.set(key, value, 'PX', ttlMs) : this.redis.set(key, value)));
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    return (await this.command(() => this.redis.set(key, value, 'PX', ttlMs, 'NX'))) === 'OK';
  }

  async deleteIfEquals(key: string, expected: string): Promise<boolean> {
    return (await this.command(() => this.redis.eval(DELETE_IF_EQUALS, 1, key, expected))) === 1;
  }

  async delete(key: string): Promise<void> {
    await this.command(() => this.redis.del(key));
  }

  /** SCAN, not KEYS: it never blocks Redis. ioredis's keyPrefix does not apply to SCAN patterns, so it is added and stripped here. */
  async deleteByPrefix(prefix: string): Promise<string[]> {
    const pattern = `${this.prefix}${prefix}`.replace(/[*?[\]\\]/g, '\\$&') + '*';
    const deleted: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await this.command(() => this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000));
      cursor = next;
      const keys = found.map((k) => k.slice(this.prefix.length));
      if (keys.length > 0) {
        await this.command(() => this.redis.del(...keys));
        deleted.push(...keys);
      }
    } while (cursor !== '0');
    return deleted;
  }

  async incrementInWindow(key: string, windowMs: number): Promise<number> {
    return Number(await this.command(() => this.redis.eval(INCREMENT_IN_WINDOW, 1, key, windowMs)));
  }

  async hitWindows(keys: string[], limits: number[], windowMs: number): Promise<WindowVerdict> {
    if (keys.length === 0) return { allowed: true, retryAfterMs: 0 };
    const retryAfterMs = Number(await this.command(() => this.redis.eval(HIT_WINDOWS, keys.length, ...keys, windowMs, randomUUID(), ...limits)));
    return { allowed: retryAfterMs === 0, retryAfterMs };
  }

  async takeLease(key: string, holder: string, cap: number, ttlMs: number): Promise<boolean> {
    return Number(await this.command(() => this.redis.eval(TAKE_LEASE, 1, key, holder, cap, ttlMs))) === 1;
  }

  async renewLease(key: string, holder: string, ttlMs: number): Promise<void> {
    await this.command(() => this.redis.eval(RENEW_LEASE, 1, key, holder, ttlMs));
  }

  async releaseLease(key: string, holder: string): Promise<void> {
    await this.command(() => this.redis.zrem(key, holder));
  }

  async ping(): Promise<void> {
    await this.command(() => this.redis.ping());
  }

  async close(): Promise<void> {
    this.health.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  /**
   * Commands sent in one tick leave in one socket write, as Node's HTTP responses do:
   * taking a stream slot sends two (the tenant's lease and the user's slot) at once, and
   * as two writes each woke Redis, which on a busy 2-core machine often took the CPU from
   * the api between them (bench:sse traced 0.2–6 ms between the two). Replies are not
   * delayed; nothing is held past the tick.
   */
  private batchWrites(): void {
    if (this.corked) return;
    const socket = (this.redis as unknown as { stream?: { cork?(): void; uncork(): void; writable?: boolean } }).stream;
    if (typeof socket?.cork !== 'function' || !socket.writable) return;
    this.corked = true;
    socket.cork();
    process.nextTick(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  /** Runs one command; a connection-class failure becomes KV_UNAVAILABLE (errors of the command itself pass). */
  private async command<T>(run: () => Promise<T>): Promise<T> {
    this.batchWrites();
    try {
      return await run();
    } catch (err) {
      if (err instanceof RagmeshError || !isRedisUnavailable(err)) throw err;
      this.health.reportDown(err as Error);
      throw Object.assign(appError('KV_UNAVAILABLE', 'Redis is unreachable right now'), { cause: err });
    }
  }
}

/**
 * Redis replied with an error (WRONGTYPE, a script error) vs. no usable reply: a
 * timeout, a closed or unwritable connection, too many retries.
 */
export function isRedisUnavailable(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: string } | null;
  if (!e) return false;
  if (e.name === 'ReplyError') return /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/.test(String(e.message));
  return true;
}
