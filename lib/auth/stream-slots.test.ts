import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { waitFor } from '../../test/support/processes.ts';
import { REDIS_BASE_URL, testKeyPrefix } from '../../test/support/services.ts';
import { MemoryKeyValueStore } from '../adapters/kv/memory.ts';
import { RedisKeyValueStore } from '../adapters/kv/redis.ts';
import type { KeyValueStore } from '../ports/key-value.ts';
import { StreamSlots, streamSlotKey } from './stream-slots.ts';

const CAPS = { perUser: { answer: 2, events: 8 }, perTenant: { answer: 3, events: 0 } };

/**
 * Per-tenant stream caps: counted across replicas (two StreamSlots, each with its own
 * Redis connection, as two api processes), and a crashed replica's slots come back once
 * their leases expire. The embedded default counts in memory the same way.
 */
describe('StreamSlots: per-tenant caps', () => {
  const prefix = testKeyPrefix();
  const opened: KeyValueStore[] = [];
  const redis = async () => {
    const kv = await RedisKeyValueStore.connect(REDIS_BASE_URL, prefix);
    opened.push(kv);
    return kv;
  };
  after(async () => {
    for (const kv of opened) await kv.close().catch(() => undefined);
    const raw = new Redis(REDIS_BASE_URL);
    const keys = await raw.keys(`${prefix}*`);
    if (keys.length) await raw.del(...keys);
    await raw.quit();
  });

  it('shares the tenant cap across replicas on real Redis, and frees it on release', async () => {
    const [kvA, kvB] = [await redis(), await redis()];
    const a = new StreamSlots(async () => kvA, CAPS);
    const b = new StreamSlots(async () => kvB, CAPS);
    const first = await a.take('answer', 'acme', 'alice');
    await b.take('answer', 'acme', 'bob');
    await a.take('answer', 'acme', 'carol');
    await assert.rejects(() => b.take('answer', 'acme', 'dave'), (err: { code?: number; type?: string; message?: string; data?: { retryAfterSeconds?: number } }) => {
      assert.equal(err.code, 429);
      assert.equal(err.type, 'TOO_MANY_STREAMS');
      assert.match(err.message ?? '', /per tenant/);
      assert.ok((err.data?.retryAfterSeconds ?? 0) >= 1);
      return true;
    });
    // Dave's own slot was asked for together with the tenant lease: the refusal gave it back.
    assert.equal(await kvB.get(streamSlotKey('answer', 'acme', 'dave', 0)), null);
    await a.take('answer', 'other-tenant', 'dave');
    await b.take('events', 'acme', 'dave');
    await first();
    await b.take('answer', 'acme', 'dave');
  });

  it('a user over the user cap does not use up a tenant slot', async () => {
    const kv = await redis();
    const slots = new StreamSlots(async () => kv, CAPS);
    await slots.take('answer', 't2', 'erin');
    await slots.take('answer', 't2', 'erin');
    await assert.rejects(() => slots.take('answer', 't2', 'erin'), /per user/);
    // The refused take gave its tenant lease back: the third tenant slot is free.
    await slots.take('answer', 't2', 'frank');
  });

  it("a crashed replica's slots free themselves once their leases expire; a live replica's stay", async () => {
    const ttl = 1500;
    const [kvLive, kvCrash] = [await redis(), await redis()];
    const live = new StreamSlots(async () => kvLive, CAPS, ttl);
    const crashing = new StreamSlots(async () => kvCrash, CAPS, ttl);
    await live.take('answer', 't3', 'gina');
    await crashing.take('answer', 't3', 'hank');
    await crashing.take('answer', 't3', 'ivan');
    await assert.rejects(() => live.take('answer', 't3', 'judy'), { code: 429 });
    // The replica dies: its connection is gone, so it renews nothing (its timers only fail).
    await kvCrash.close();
    const judy = await waitFor('the crashed replica\'s tenant leases to expire', () => live.take('answer', 't3', 'judy').catch(() => null), 10_000);
    assert.equal(typeof judy, 'function');
    await live.take('answer', 't3', 'kate');
    // Gina's stream, renewed all along, is still counted: the tenant is full again.
    await assert.rejects(() => live.take('answer', 't3', 'liam'), { code: 429 });
  });

  it('counts the same way in memory (the embedded default)', async () => {
    const kv = new MemoryKeyValueStore();
    try {
      const slots = new StreamSlots(async () => kv, CAPS);
      const release = await slots.take('answer', 'acme', 'a');
      await slots.take('answer', 'acme', 'b');
      await slots.take('answer', 'acme', 'c');
      await assert.rejects(() => slots.take('answer', 'acme', 'd'), /per tenant/);
      assert.equal(await kv.get(streamSlotKey('answer', 'acme', 'd', 0)), null, 'the refused take gave its user slot back');
      await release();
      await slots.take('answer', 'acme', 'd');
    } finally {
      await kv.close();
    }
  });
});
