import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { JobDelivery, JobMessage, JobQueue } from '../../ports/job-queue.ts';
import { createTestVhost, type Disposable } from '../../../test/support/services.ts';
import { waitFor } from '../../../test/support/processes.ts';
import { AmqpJobQueue } from './amqp.ts';
import { MemoryJobQueue } from './memory.ts';

const message = (over: Partial<JobMessage> = {}): JobMessage => ({
  jobId: randomUUID(),
  tenantId: 'acme',
  type: 'ingest',
  attempt: 1,
  enqueuedAt: new Date().toISOString(),
  ...over,
});

/** One behaviour for the in-process queue and RabbitMQ. */
function jobQueueContract(name: string, open: () => Promise<{ queue: JobQueue; dispose(): Promise<void> }>) {
  describe(`JobQueue contract: ${name}`, () => {
    let queue: JobQueue;
    let dispose: () => Promise<void>;
    before(async () => {
      ({ queue, dispose } = await open());
    });
    after(async () => {
      await queue.close();
      await dispose();
    });

    it('delivers each published message to a consumer, never more than prefetch at once', async () => {
      const q = `t${randomUUID().slice(0, 8)}`;
      const sent = Array.from({ length: 6 }, () => message());
      for (const m of sent) await queue.publish(q, m);
      const seen: string[] = [];
      let inFlight = 0;
      let maxInFlight = 0;
      const consumer = await queue.consume(q, async ({ message: m }) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await sleep(30);
        seen.push(m.jobId);
        inFlight--;
      }, { prefetch: 2 });
      await waitFor('all six messages', async () => seen.length === 6, 10_000);
      await consumer.close();
      assert.deepEqual([...seen].sort(), sent.map((m) => m.jobId).sort());
      assert.equal(maxInFlight, 2);
      assert.deepEqual(await queue.depth(q), { ready: 0, dead: 0 });
    });

    it('delivers again a message whose handler failed before acknowledging', async () => {
      const q = `t${randomUUID().slice(0, 8)}`;
      const m = message();
      await queue.publish(q, m);
      const deliveries: JobDelivery[] = [];
      const consumer = await queue.consume(q, async (d) => {
        deliveries.push(d);
        if (deliveries.length === 1) throw new Error('worker lost its database connection');
      }, { prefetch: 1 });
      await waitFor('the second delivery', async () => deliveries.length === 2, 10_000);
      await consumer.close();
      assert.equal(deliveries[1]!.message.jobId, m.jobId);
    });

    it('holds a delayed message back for the delay', async () => {
      const q = `t${randomUUID().slice(0, 8)}`;
      const started = Date.now();
      let arrivedAfter = -1;
      const consumer = await queue.consume(q, async () => {
        arrivedAfter = Date.now() - started;
      }, { prefetch: 1 });
      await queue.publish(q, message({ attempt: 2 }), { delayMs: 300 });
      await waitFor('the delayed message', async () => arrivedAfter >= 0, 10_000);
      await consumer.close();
      assert.ok(arrivedAfter >= 280, `arrived after ${arrivedAfter} ms`);
    });

    it('lists dead letters with their reason without consuming them, and replays one', async () => {
      const q = `t${randomUUID().slice(0, 8)}`;
      const [a, b] = [message(), message()];
      await queue.deadLetter(q, a, 'UNREADABLE_FILE: the PDF is truncated');
      await queue.deadLetter(q, b, 'EMBED_FAILED: emb is down');
      const first = await queue.listDeadLetters(q, 10);
      assert.deepEqual(first.map((d) => d.message.jobId), [a.jobId, b.jobId]);
      assert.equal(first[0]!.reason, 'UNREADABLE_FILE: the PDF is truncated');
      assert.deepEqual((await queue.listDeadLetters(q, 10)).map((d) => d.message.jobId), [a.jobId, b.jobId], 'listing changed nothing');
      assert.equal((await queue.depth(q)).dead, 2);

      const replayed = await queue.replayDeadLetter(q, b.jobId);
      assert.equal(replayed?.message.jobId, b.jobId);
      assert.equal(await queue.replayDeadLetter(q, randomUUID()), null);
      const got: JobMessage[] = [];
      const consumer = await queue.consume(q, async ({ message: m }) => void got.push(m), { prefetch: 1 });
      await waitFor('the replayed message', async () => got.length === 1, 10_000);
      await consumer.close();
      assert.equal(got[0]!.jobId, b.jobId);
      assert.equal(got[0]!.attempt, 1);
      assert.deepEqual((await queue.listDeadLetters(q, 10)).map((d) => d.message.jobId), [a.jobId]);

      const taken = await queue.takeDeadLetter(q, a.jobId);
      assert.equal(taken?.reason, 'UNREADABLE_FILE: the PDF is truncated');
      assert.equal(await queue.takeDeadLetter(q, a.jobId), null);
      assert.equal((await queue.depth(q)).dead, 0, 'taken, not replayed');
      assert.equal((await queue.depth(q)).ready, 0);
    });
  });
}

jobQueueContract('memory', async () => ({ queue: new MemoryJobQueue(), dispose: async () => undefined }));

let vhost: Disposable<string>;
jobQueueContract('amqp (real RabbitMQ)', async () => {
  vhost = await createTestVhost();
  return { queue: await AmqpJobQueue.connect(vhost.value, { prefix: 'rmtest', deliveryLimit: 3 }), dispose: () => vhost.dispose() };
});

describe('AmqpJobQueue on a real RabbitMQ', () => {
  let v: Disposable<string>;
  before(async () => {
    v = await createTestVhost();
  });
  after(() => v.dispose());

  it('gives an unacknowledged message to another worker when the first one dies, and counts it as redelivered', async () => {
    const q = 'ingest';
    const dying = await AmqpJobQueue.connect(v.value, { prefix: 'rmtest', deliveryLimit: 5 });
    const m = message();
    let started = false;
    await dying.consume(q, async () => {
      started = true;
      await new Promise(() => undefined); // never finishes: the process "dies" below
    }, { prefetch: 1 });
    await dying.publish(q, m);
    await waitFor('the first worker to start', async () => started, 10_000);
    await dying.close(); // connection gone, no ack: like SIGKILL

    const survivor = await AmqpJobQueue.connect(v.value, { prefix: 'rmtest', deliveryLimit: 5 });
    const deliveries: JobDelivery[] = [];
    const consumer = await survivor.consume(q, async (d) => void deliveries.push(d), { prefetch: 1 });
    await waitFor('redelivery', async () => deliveries.length === 1, 10_000);
    await consumer.close();
    await survivor.close();
    assert.equal(deliveries[0]!.message.jobId, m.jobId);
    assert.equal(deliveries[0]!.redelivered, true);
  });

  it('brings back a message whose handler keeps throwing after a growing delay, without using up the delivery limit', async () => {
    const queue = await AmqpJobQueue.connect(v.value, { prefix: 'rmtest', deliveryLimit: 2 });
    const q = 'outage';
    const m = message();
    const seen: number[] = [];
    const consumer = await queue.consume(q, async () => {
      seen.push(Date.now());
      // The database is down for the first four deliveries.
      if (seen.length <= 4) throw new Error('the database system is shutting down');
    }, { prefetch: 1 });
    await queue.publish(q, m);
    await waitFor('the fifth delivery', async () => seen.length === 5, 30_000);
    await consumer.close();
    assert.deepEqual(await queue.depth(q), { ready: 0, dead: 0 }, 'handled, and never dead-lettered despite a delivery limit of 2');
    // 1 s, 2 s, 4 s, 8 s between deliveries: each gap at least the previous one's delay.
    const gaps = seen.slice(1).map((t, i) => t - seen[i]!);
    assert.ok(gaps.every((g, i) => g >= 1000 * 2 ** i * 0.9), `gaps ${gaps.join(', ')}`);
    await queue.close();
  });

  it('dead-letters a message whose worker dies holding it on every delivery (delivery limit)', async () => {
    const q = 'poison';
    const m = message();
    const publisher = await AmqpJobQueue.connect(v.value, { prefix: 'rmtest', deliveryLimit: 2 });
    await publisher.publish(q, m);
    let deliveries = 0;
    // Each worker takes the message and its connection drops without an ack, like a SIGKILL.
    while ((await publisher.depth(q)).dead === 0 && deliveries < 6) {
      const worker = await AmqpJobQueue.connect(v.value, { prefix: 'rmtest', deliveryLimit: 2 });
      let got = false;
      await worker.consume(q, async () => {
        got = true;
        await new Promise(() => undefined);
      }, { prefetch: 1 });
      await waitFor('a delivery or the dead letter', async () => got || (await publisher.depth(q)).dead === 1, 15_000);
      if (got) deliveries++;
      await worker.close();
    }
    await waitFor('the broker to dead-letter it', async () => (await publisher.depth(q)).dead === 1, 15_000);
    const [letter] = await publisher.listDeadLetters(q, 10);
    assert.equal(letter?.message.jobId, m.jobId);
    assert.match(letter!.reason, /delivery limit/);
    assert.equal(deliveries, 3);
    await publisher.close();
  });

  it('reconnects after the broker drops its connections, and keeps consuming', async () => {
    // The queue says when it notices the broker closed it: the test waits on that, not on a clock.
    let lost = false;
    const logger = { warn: (_o: object, msg: string) => void (lost ||= msg.includes('connection lost')), info: () => undefined, error: () => undefined };
    const queue = await AmqpJobQueue.connect(v.value, { prefix: 'rmtest', deliveryLimit: 5, logger: logger as never });
    const got: string[] = [];
    await queue.consume('reconnect', async ({ message: m }) => void got.push(m.jobId), { prefetch: 1 });
    await queue.publish('reconnect', message());
    await waitFor('first message', async () => got.length === 1, 10_000);

    const vhostName = new URL(v.value).pathname.slice(1);
    await promisify(execFile)('rabbitmqctl', ['-q', 'close_all_connections', '--vhost', vhostName, 'test: broker restart']);
    await waitFor('the queue to notice the closed connection', async () => lost, 10_000);
    await queue.publish('reconnect', message()); // waits for the reconnect
    await waitFor('a message after the reconnect', async () => got.length === 2, 15_000);
    await queue.close();
  });
});
