import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../../../test/support/processes.ts';
import { Redis } from 'ioredis';
import type { KeyValueStore } from '../../ports/key-value.ts';
import { REDIS_BASE_URL, testKeyPrefix } from '../../../test/support/services.ts';
import { MemoryKeyValueStore } from './memory.ts';
import { RedisKeyValueStore } from './redis.ts';

/** One behaviour, two backends: the embedded stand-in must act like Redis. */
function keyValueContract(name: string, open: () => Promise<KeyValueStore>, onClose?: () => Promise<void>) {
  describe(`KeyValueStore contract: ${name}`, () => {
    let kv: KeyValueStore;
    before(async () => {
      kv = await open();
    });
    after(async () => {
      await kv.close();
      await onClose?.();
    });

    it('gets what it set and forgets it after the TTL', async () => {
      await kv.set('a', '1', 80);
      assert.equal(await kv.get('a'), '1');
      await waitFor('a to expire', async () => (await kv.get('a')) === null, 5000);
      await kv.set('b', 'kept');
      await kv.delete('b');
      assert.equal(await kv.get('b'), null);
    });

    it('setIfAbsent lets exactly one of many concurrent callers win', async () => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => kv.setIfAbsent('lock', `holder-${i}`, 5000)));
      assert.equal(results.filter(Boolean).length, 1);
      const winner = `holder-${results.indexOf(true)}`;
      assert.equal(await kv.get('lock'), winner);
      assert.equal(await kv.deleteIfEquals('lock', 'someone-else'), false, 'a non-holder cannot release');
      assert.equal(await kv.deleteIfEquals('lock', winner), true);
      assert.equal(await kv.setIfAbsent('lock', 'next', 5000), true, 'free again after release');
    });

    it('counts within a fixed window, then starts over', async () => {
      const counts = [];
      for (let i = 0; i < 3; i++) counts.push(await kv.incrementInWindow('rate', 150));
      assert.deepEqual(counts, [1, 2, 3]);
      // Once the window has passed, the count starts over at 1.
      await waitFor('a new window', async () => (await kv.incrementInWindow('rate', 150)) === 1, 5000);
    });

    it('deletes a key family by prefix, and nothing outside it', async () => {
      await kv.set('fam:a:1', 'x');
      await kv.set('fam:a:2', 'y', 60_000);
      await kv.set('fam:ab', 'z');
      await kv.set('fam:b:1', 'w');
      assert.deepEqual((await kv.deleteByPrefix('fam:a:')).sort(), ['fam:a:1', 'fam:a:2']);
      assert.equal(await kv.get('fam:a:1'), null);
      assert.equal(await kv.get('fam:ab'), 'z');
      assert.equal(await kv.get('fam:b:1'), 'w');
      assert.deepEqual(await kv.deleteByPrefix('fam:a:'), []);
      assert.deepEqual(await kv.deleteByPrefix('fam:*'), [], 'glob characters are literal');
    });

    it('hitWindows counts a hit in every key or in none, and slides', async () => {
      const windowMs = 400;
      const verdicts = await Promise.all(Array.from({ length: 5 }, () => kv.hitWindows(['w:user', 'w:tenant'], [3, 10], windowMs)));
      assert.equal(verdicts.filter((v) => v.allowed).length, 3, 'concurrent hits past the limit are refused atomically');
      const refused = verdicts.find((v) => !v.allowed)!;
      assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= windowMs, `retry after ${refused.retryAfterMs}`);
      // The user's window is full, so the tenant's must not have counted the refused hits:
      // another user of the tenant still has 10 - 3 = 7.
      const other = [];
      for (let i = 0; i < 8; i++) other.push((await kv.hitWindows(['w:user2', 'w:tenant'], [100, 10], windowMs)).allowed);
      assert.deepEqual(other, [true, true, true, true, true, true, true, false]);
      // Once the oldest hits leave the window, slots free up again.
      await new Promise((resolve) => setTimeout(resolve, refused.retryAfterMs + 20));
      assert.equal((await kv.hitWindows(['w:user'], [3], windowMs)).allowed, true);
    });

    it('hitWindows keeps counting exactly once a full window has slid out, again and again', async () => {
      const windowMs = 1000;
      for (let round = 0; round < 2; round++) {
        const verdicts = await Promise.all(Array.from({ length: 101 }, () => kv.hitWindows(['w:many'], [100], windowMs)));
        const lastHit = Date.now();
        assert.equal(verdicts.filter((v) => v.allowed).length, 100, `round ${round}: 100 of 101 allowed`);
        // Every hit of this round has left the window by then: the next round starts empty.
        await new Promise((resolve) => setTimeout(resolve, lastHit + windowMs + 20 - Date.now()));
      }
    });

    it('takeLease counts leases atomically under the cap; release and expiry free them; renew keeps one', async () => {
      const taken = await Promise.all(['a', 'b', 'c', 'd'].map((h) => kv.takeLease('lease:t', h, 2, 60_000)));
      assert.equal(taken.filter(Boolean).length, 2, 'concurrent takes past the cap are refused atomically');
      const holders = ['a', 'b', 'c', 'd'].filter((_, i) => taken[i]);
      assert.equal(await kv.takeLease('lease:t', holders[0]!, 2, 60_000), true, 'a holder taking again keeps its one lease');
      await kv.releaseLease('lease:t', holders[0]!);
      assert.equal(await kv.takeLease('lease:t', 'e', 2, 60_000), true, 'a released lease is free');
      assert.equal(await kv.takeLease('lease:t', 'f', 2, 60_000), false);

      // A holder that stops renewing (a crashed replica) loses its lease after the TTL; a renewed one stays.
      const ttl = 600;
      assert.equal(await kv.takeLease('lease:crash', 'crashed', 2, ttl), true);
      assert.equal(await kv.takeLease('lease:crash', 'alive', 2, ttl), true);
      assert.equal(await kv.takeLease('lease:crash', 'late', 2, ttl), false);
      const renewing = setInterval(() => void kv.renewLease('lease:crash', 'alive', ttl), ttl / 4);
      try {
        const taken = await waitFor('the crashed holder\'s lease to expire', async () => ((await kv.takeLease('lease:crash', 'late', 2, ttl)) ? true : null), 5_000);
        assert.equal(taken, true);
        assert.equal(await kv.takeLease('lease:crash', 'another', 2, ttl), false, 'the renewed lease is still counted');
      } finally {
        clearInterval(renewing);
      }
    });

    it('answers ping', async () => {
      await kv.ping();
    });
  });
}

keyValueContract('memory', async () => new MemoryKeyValueStore());

const prefix = testKeyPrefix();
keyValueContract(
  'redis (real server)',
  () => RedisKeyValueStore.connect(REDIS_BASE_URL, prefix),
  async () => {
    const redis = new Redis(REDIS_BASE_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  },
);

describe('RedisKeyValueStore', () => {
  it('writes its keys under the configured prefix only', async () => {
    const p = testKeyPrefix();
    const kv = await RedisKeyValueStore.connect(REDIS_BASE_URL, p);
    const raw = new Redis(REDIS_BASE_URL);
    try {
      await kv.set('x', 'y');
      await kv.incrementInWindow('n', 1000);
      assert.equal(await raw.get(`${p}x`), 'y');
      assert.equal(await raw.get(`${p}n`), '1');
      assert.equal(await raw.get('x'), null);
    } finally {
      await raw.del(`${p}x`, `${p}n`);
      await raw.quit();
      await kv.close();
    }
  });

  it('fails to connect to a server that is not there', async () => {
    await assert.rejects(() => RedisKeyValueStore.connect('redis://127.0.0.1:1/0', testKeyPrefix()));
  });
});
