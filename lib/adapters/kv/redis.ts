import { Redis } from 'ioredis';
import type { KeyValueStore } from '../../ports/key-value.ts';

// Compare-and-delete must be one atomic step, or a lock could expire and be taken by
// another holder between our GET and DEL.
const DELETE_IF_EQUALS = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
// The expiry is set only by the first increment, so the window is fixed, not sliding.
const INCREMENT_IN_WINDOW = `local n = redis.call('incr', KEYS[1]) if n == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end return n`;

export class RedisKeyValueStore implements KeyValueStore {
  readonly backend = 'redis' as const;

  private constructor(private readonly redis: Redis) {}

  /**
   * ioredis reconnects on its own with backoff; commands issued while disconnected
   * wait in its offline queue, so a Redis restart costs latency, not errors.
   * `maxRetriesPerRequest` bounds how long one command can wait.
   */
  static async connect(url: string, prefix: string): Promise<RedisKeyValueStore> {
    const redis = new Redis(url, {
      keyPrefix: prefix,
      lazyConnect: true,
      maxRetriesPerRequest: 3,
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
    return new RedisKeyValueStore(redis);
  }

  async get(key: string): Promise<string | null> {
    return this.redis.get(key);
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    if (ttlMs) await this.redis.set(key, value, 'PX', ttlMs);
    else await this.redis.set(key, value);
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(key, value, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async deleteIfEquals(key: string, expected: string): Promise<boolean> {
    return (await this.redis.eval(DELETE_IF_EQUALS, 1, key, expected)) === 1;
  }

  async delete(key: string): Promise<void> {
    await this.redis.del(key);
  }

  async incrementInWindow(key: string, windowMs: number): Promise<number> {
    return Number(await this.redis.eval(INCREMENT_IN_WINDOW, 1, key, windowMs));
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
