import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import amqp from 'amqplib';
import { Transporters } from 'moleculer';
import { AMQP_HOST } from '../../test/support/services.ts';
import { CORKED_AMQP, CorkedAmqpTransporter, corkMuxerPasses } from './amqp-transporter.ts';

describe('AMQP frames of one muxer pass in one socket write', () => {
  let model: amqp.ChannelModel;
  before(async () => {
    model = await amqp.connect(`amqp://guest:guest@${AMQP_HOST}`);
  });
  after(() => model.close());

  it('finds amqplib internals it relies on (fails loudly on an amqplib that moved them)', () => {
    assert.equal(corkMuxerPasses(model), true);
    assert.equal(corkMuxerPasses({}), false, 'anything else is left alone');
  });

  it('writes the messages published in one tick at once, all delivered, in order', async () => {
    const channel = await model.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    const received: string[] = [];
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    await channel.consume(queue, (msg) => {
      received.push(msg!.content.toString());
      if (received.length === 3) done();
    }, { noAck: true });

    const socket = (model as unknown as { connection: { stream: { _writeGeneric: (...args: unknown[]) => unknown } } }).connection.stream;
    const write = socket._writeGeneric;
    let writes = 0;
    socket._writeGeneric = function (this: unknown, ...args: unknown[]) {
      writes++;
      return write.apply(this, args);
    };
    // Over 2 KB: amqplib writes it as two frames; with the two small ones, four frames.
    const big = 'x'.repeat(3000);
    channel.sendToQueue(queue, Buffer.from(big));
    channel.sendToQueue(queue, Buffer.from('second'));
    channel.sendToQueue(queue, Buffer.from('third'));
    await all;
    socket._writeGeneric = write;
    assert.deepEqual(received, [big, 'second', 'third']);
    assert.equal(writes, 1);
  });

  it('is the transporter moleculer.config.ts names, and corks each connection it is given (a reconnect too) as it gets it', async () => {
    const transporter = Transporters.resolve({ type: CORKED_AMQP, options: { url: `amqp://${AMQP_HOST}` } }) as unknown as { connection: unknown };
    assert.ok(transporter instanceof CorkedAmqpTransporter);
    const fresh = await amqp.connect(`amqp://guest:guest@${AMQP_HOST}`);
    try {
      const muxer = (fresh as unknown as { connection: { muxer: object } }).connection.muxer;
      assert.equal(Object.hasOwn(muxer, '_readIncoming'), false);
      transporter.connection = fresh;
      assert.equal(transporter.connection, fresh);
      assert.equal(Object.hasOwn(muxer, '_readIncoming'), true);
      transporter.connection = null;
    } finally {
      await fresh.close();
    }
  });
});
