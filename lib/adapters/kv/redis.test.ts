import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { REDIS_BASE_URL, testKeyPrefix } from '../../../test/support/services.ts';
import { RedisKeyValueStore } from './redis.ts';

/** Counts the socket writes (write or writev syscalls) of the store's connection. */
function countWrites(kv: RedisKeyValueStore): { readonly count: number } {
  const socket = (kv as unknown as { redis: { stream: { _writeGeneric: (...args: unknown[]) => unknown } } }).redis.stream;
  const write = socket._writeGeneric;
  const counter = { count: 0 };
  socket._writeGeneric = function (this: unknown, ...args: unknown[]) {
    counter.count++;
    return write.apply(this, args);
  };
  return counter;
}

describe('RedisKeyValueStore writes', () => {
  let kv: RedisKeyValueStore;
  before(async () => {
    kv = await RedisKeyValueStore.connect(REDIS_BASE_URL, testKeyPrefix());
  });
  after(() => kv.close());

  it('sends the commands of one tick in one socket write, and answers each', async () => {
    const writes = countWrites(kv);
    // What taking a stream slot sends: the tenant's lease and the user's first slot, together.
    const [lease, slot] = await Promise.all([kv.takeLease('lease', 'h1', 5, 5000), kv.setIfAbsent('slot', 'h1', 5000)]);
    assert.equal(lease, true);
    assert.equal(slot, true);
    assert.equal(writes.count, 1);
    // Commands of later ticks are not held for anything: each goes out in its tick.
    assert.equal(await kv.setIfAbsent('slot', 'h2', 5000), false);
    assert.equal(await kv.get('slot'), 'h1');
    assert.equal(writes.count, 3);
    await Promise.all([kv.releaseLease('lease', 'h1'), kv.deleteIfEquals('slot', 'h1')]);
    assert.equal(writes.count, 4);
    assert.equal(await kv.get('slot'), null);
  });
});
