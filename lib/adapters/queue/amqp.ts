import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Message } from 'amqplib';
import { appError } from '../../errors.ts';
import { redeliveryDelayMs, type Consumer, type ConsumeOptions, type DeadLetter, type JobDelivery, type JobMessage, type JobQueue } from '../../ports/job-queue.ts';

/** Header counting how often handlers threw on a message (it travels through the delay queues). */
const FAILURES_HEADER = 'x-ragmesh-failures';

type Log = { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };

interface Registration {
  queue: string;
  handler: (d: JobDelivery) => Promise<void>;
  prefetch: number;
  channel: Channel | null;
  tag: string | null;
  inFlight: number;
  closed: boolean;
  idle: Array<() => void>;
}

/**
 * RabbitMQ job queues through amqplib. Per queue Q:
 * - `<p>.jobs.Q`: a quorum queue (replicated, durable). Its delivery limit sends a
 *   message whose worker keeps dying (crash, OOM) to the dead letters instead of
 *   looping forever.
 * - `<p>.jobs.Q.dead`: the dead letters, with the reason in a header.
 * - `<p>.jobs.Q.delay.<ms>`: one holding queue per retry delay; expired messages
 *   flow back to Q. One queue per delay because RabbitMQ expires messages only at
 *   the head of a queue: mixed delays in one queue would wait for the longest.
 * Messages are persistent and every publish waits for the broker's confirm. The
 * connection is re-opened after a broker restart and consumers are re-attached.
 */
export class AmqpJobQueue implements JobQueue {
  readonly backend = 'amqp' as const;
  private connection: ChannelModel | null = null;
  private publisher: ConfirmChannel | null = null;
  private connecting: Promise<void> | null = null;
  private readonly declared = new Set<string>();
  private readonly registrations = new Set<Registration>();
  private closed = false;
  private reconnectDelayMs = 250;

  private constructor(
    private readonly url: string,
    private readonly prefix: string,
    private readonly deliveryLimit: number,
    private readonly logger?: Log,
  ) {}

  /**
   * `heartbeatS` (default 5) is the AMQP heartbeat asked for unless the URL names one:
   * a consumer that only waits for deliveries writes nothing, so without frequent
   * heartbeats it finds out its connection died (a partition, a broker that dropped it)
   * only at RabbitMQ's own heartbeat, up to two minutes later, holding its jobs.
   */
  static async connect(url: string, options: { prefix: string; deliveryLimit: number; heartbeatS?: number; logger?: Log }): Promise<AmqpJobQueue> {
    const queue = new AmqpJobQueue(withHeartbeat(url, options.heartbeatS ?? 5), options.prefix, options.deliveryLimit, options.logger);
    await queue.ensureConnected();
    return queue;
  }

  async publish(queue: string, message: JobMessage, options: { delayMs?: number } = {}): Promise<void> {
    // Delay queues are made per distinct delay: round to keep their number small.
    if (options.delayMs && options.delayMs > 0) options = { delayMs: roundDelay(options.delayMs) };
    const channel = await this.publishChannel();
    await this.declare(channel, queue);
    const body = Buffer.from(JSON.stringify(message));
    const props = { persistent: true, contentType: 'application/json', messageId: message.jobId };
    if (options.delayMs && options.delayMs > 0) {
      const delayQueue = await this.declareDelay(channel, queue, Math.round(options.delayMs));
      await confirm(channel, (cb) => channel.sendToQueue(delayQueue, body, props, cb));
    } else {
      await confirm(channel, (cb) => channel.publish(this.exchange, queue, body, props, cb));
    }
  }

  async deadLetter(queue: string, message: JobMessage, reason: string): Promise<void> {
    const channel = await this.publishChannel();
    await this.declare(channel, queue);
    const body = Buffer.from(JSON.stringify(message));
    await confirm(channel, (cb) =>
      channel.publish(this.deadExchange, queue, body, {
        persistent: true,
        contentType: 'application/json',
        messageId: message.jobId,
        headers: { 'x-reason': reason.slice(0, 2000), 'x-dead-at': new Date().toISOString() },
      }, cb),
    );
  }

  async consume(queue: string, handler: (d: JobDelivery) => Promise<void>, options: ConsumeOptions): Promise<Consumer> {
    const registration: Registration = { queue, handler, prefetch: Math.max(1, options.prefetch), channel: null, tag: null, inFlight: 0, closed: false, idle: [] };
    this.registrations.add(registration);
    await this.attach(registration);
    return {
      close: async () => {
        registration.closed = true;
        this.registrations.delete(registration);
        if (registration.channel && registration.tag) await registration.channel.cancel(registration.tag).catch(() => undefined);
        if (registration.inFlight > 0) await new Promise<void>((resolve) => registration.idle.push(resolve));
        await registration.channel?.close().catch(() => undefined);
      },
    };
  }

  /**
   * Reads without removing: takes up to `limit` dead letters, then hands them all back
   * (nack with requeue) so the listing leaves the queue as it was.
   */
  async listDeadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    return this.withDeadLetters(queue, limit, () => false);
  }

  async takeDeadLetter(queue: string, jobId: string): Promise<DeadLetter | null> {
    let found: DeadLetter | null = null;
    await this.withDeadLetters(queue, 10_000, (letter) => {
      if (found || letter.message.jobId !== jobId) return false;
      found = letter;
      return true;
    });
    return found;
  }

  async replayDeadLetter(queue: string, jobId: string): Promise<DeadLetter | null> {
    let found: DeadLetter | null = null;
    await this.withDeadLetters(queue, 10_000, (letter) => {
      if (found || letter.message.jobId !== jobId) return false;
      found = letter;
      return true;
    }, async (letter) => {
      await this.publish(queue, { ...letter.message, attempt: 1, enqueuedAt: new Date().toISOString() });
    });
    return found;
  }

  async depth(queue: string): Promise<{ ready: number; dead: number }> {
    const channel = await this.publishChannel();
    await this.declare(channel, queue);
    const [main, dead] = await Promise.all([channel.checkQueue(this.queueName(queue)), channel.checkQueue(this.deadQueueName(queue))]);
    return { ready: main.messageCount, dead: dead.messageCount };
  }

  async ping(): Promise<void> {
    const channel = await this.publishChannel();
    await channel.checkExchange(this.exchange);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const registration of [...this.registrations]) {
      registration.closed = true;
      if (registration.channel && registration.tag) await registration.channel.cancel(registration.tag).catch(() => undefined);
    }
    await this.connection?.close().catch(() => undefined);
  }

  private get exchange() {
    return `${this.prefix}.jobs`;
  }
  private get deadExchange() {
    return `${this.prefix}.jobs.dead`;
  }
  private queueName(queue: string) {
    return `${this.prefix}.jobs.${queue}`;
  }
  private deadQueueName(queue: string) {
    return `${this.prefix}.jobs.${queue}.dead`;
  }

  private async ensureConnected(): Promise<void> {
    if (this.publisher) return;
    this.connecting ??= (async () => {
      const connection = await amqp.connect(this.url, { noDelay: true });
      connection.on('error', (err: Error) => this.logger?.warn({ err }, 'job queue connection error'));
      connection.on('close', () => this.onConnectionLost());
      const publisher = await connection.createConfirmChannel();
      publisher.on('error', (err: Error) => this.logger?.warn({ err }, 'job queue channel error'));
      await publisher.assertExchange(this.exchange, 'direct', { durable: true });
      await publisher.assertExchange(this.deadExchange, 'direct', { durable: true });
      this.connection = connection;
      this.publisher = publisher;
      this.declared.clear();
      this.reconnectDelayMs = 250;
    })().finally(() => {
      this.connecting = null;
    });
    await this.connecting;
    for (const registration of this.registrations) if (!registration.channel) await this.attach(registration);
  }

  private onConnectionLost(): void {
    this.connection = null;
    this.publisher = null;
    for (const registration of this.registrations) {
      registration.channel = null;
      registration.tag = null;
    }
    if (this.closed) return;
    this.logger?.warn({ retryInMs: this.reconnectDelayMs }, 'job queue connection lost; reconnecting');
    const retry = () => {
      if (this.closed) return;
      this.ensureConnected()
        .then(() => this.logger?.info({}, 'job queue reconnected'))
        .catch(() => {
          this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 5000);
          setTimeout(retry, this.reconnectDelayMs).unref();
        });
    };
    setTimeout(retry, this.reconnectDelayMs).unref();
  }

  /** The confirm channel, waiting up to 10 s for a reconnect in progress. */
  private async publishChannel(): Promise<ConfirmChannel> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (this.closed) throw appError('QUEUE_CLOSED', 'The job queue is closed');
      if (this.publisher) return this.publisher;
      try {
        await this.ensureConnected();
      } catch (err) {
        if (Date.now() > deadline) throw appError('QUEUE_UNAVAILABLE', `RabbitMQ is unreachable: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  private async declare(channel: Channel, queue: string): Promise<void> {
    if (this.declared.has(queue)) return;
    await channel.assertQueue(this.queueName(queue), {
      durable: true,
      arguments: {
        'x-queue-type': 'quorum',
        'x-delivery-limit': this.deliveryLimit,
        'x-dead-letter-exchange': this.deadExchange,
        'x-dead-letter-routing-key': queue,
      },
    });
    await channel.bindQueue(this.queueName(queue), this.exchange, queue);
    await channel.assertQueue(this.deadQueueName(queue), { durable: true, arguments: { 'x-queue-type': 'classic' } });
    await channel.bindQueue(this.deadQueueName(queue), this.deadExchange, queue);
    this.declared.add(queue);
  }

  private async declareDelay(channel: Channel, queue: string, delayMs: number): Promise<string> {
    const name = `${this.queueName(queue)}.delay.${delayMs}`;
    if (this.declared.has(name)) return name;
    await channel.assertQueue(name, {
      durable: true,
      arguments: {
        'x-queue-type': 'classic',
        'x-message-ttl': delayMs,
        'x-dead-letter-exchange': this.exchange,
        'x-dead-letter-routing-key': queue,
      },
    });
    this.declared.add(name);
    return name;
  }

  private async attach(registration: Registration): Promise<void> {
    if (registration.closed || !this.connection) return;
    const channel = await this.connection.createChannel();
    channel.on('error', (err: Error) => this.logger?.warn({ err, queue: registration.queue }, 'job consumer channel error'));
    await this.declare(channel, registration.queue);
    await channel.prefetch(registration.prefetch);
    registration.channel = channel;
    const { consumerTag } = await channel.consume(this.queueName(registration.queue), (msg) => {
      if (msg) void this.deliver(registration, channel, msg);
    }, { noAck: false });
    registration.tag = consumerTag;
  }

  private async deliver(registration: Registration, channel: Channel, msg: ConsumeMessage): Promise<void> {
    registration.inFlight++;
    try {
      let message: JobMessage;
      try {
        message = JSON.parse(msg.content.toString('utf8')) as JobMessage;
      } catch {
        // Not ours to run, never will be: straight to the dead letters (via the queue's DLX).
        channel.nack(msg, false, false);
        return;
      }
      // Quorum queues count deliveries; any count > 0 means an earlier delivery was not acknowledged.
      const deliveries = Number(msg.properties.headers?.['x-delivery-count'] ?? 0);
      try {
        await registration.handler({ message, redelivered: msg.fields.redelivered || deliveries > 0 });
        channel.ack(msg);
      } catch (err) {
        await this.redeliverLater(registration, channel, msg, err);
      }
    } catch {
      // The channel died under us: the broker will deliver the message again.
    } finally {
      registration.inFlight--;
      if (registration.inFlight === 0) registration.idle.splice(0).forEach((resolve) => resolve());
    }
  }

  /**
   * The handler could not record any outcome (a dependency is down). A nack with
   * requeue would bring the message straight back and burn the quorum queue's delivery
   * limit within milliseconds; instead a copy waits in a delay queue (1 s, 2 s … 60 s by
   * the failures so far) and the original is acknowledged once the copy is confirmed.
   * If even that fails (the broker is going away), the message stays unacknowledged
   * until its channel closes and the broker delivers it again.
   */
  private async redeliverLater(registration: Registration, channel: Channel, msg: ConsumeMessage, err: unknown): Promise<void> {
    const failures = Number(msg.properties.headers?.[FAILURES_HEADER] ?? 0) + 1;
    const delayMs = redeliveryDelayMs(failures);
    this.logger?.warn({ err, queue: registration.queue, failures, retryInMs: delayMs }, 'job handler failed; the message comes back after a delay');
    try {
      const publisher = await this.publishChannel();
      const delayQueue = await this.declareDelay(publisher, registration.queue, delayMs);
      const headers: Record<string, unknown> = { ...(msg.properties.headers ?? {}), [FAILURES_HEADER]: failures };
      delete headers['x-delivery-count'];
      delete headers['x-death'];
      await confirm(publisher, (cb) =>
        publisher.sendToQueue(delayQueue, msg.content, { persistent: true, contentType: 'application/json', messageId: msg.properties.messageId, headers }, cb),
      );
      channel.ack(msg);
    } catch (publishErr) {
      this.logger?.warn({ err: publishErr, queue: registration.queue }, 'could not park a failed message for later; it stays unacknowledged');
    }
  }

  /**
   * Takes dead letters one by one (at most `limit`), lets `take` pick some to remove
   * (after `onTaken` succeeded) and requeues the rest in their order.
   */
  private async withDeadLetters(
    queue: string,
    limit: number,
    take: (letter: DeadLetter) => boolean,
    onTaken?: (letter: DeadLetter) => Promise<void>,
  ): Promise<DeadLetter[]> {
    await this.publishChannel();
    const channel = await this.connection!.createChannel();
    try {
      await this.declare(channel, queue);
      const held: Message[] = [];
      const letters: DeadLetter[] = [];
      try {
        while (held.length < limit) {
          const msg = await channel.get(this.deadQueueName(queue), { noAck: false });
          if (!msg) break;
          const letter = toDeadLetter(msg);
          if (letter && take(letter)) {
            if (onTaken) await onTaken(letter);
            channel.ack(msg);
            letters.push(letter);
            continue;
          }
          held.push(msg);
          if (letter) letters.push(letter);
        }
      } finally {
        // nack of everything held, in one go, keeps their order at the head of the queue.
        if (held.length > 0) channel.nack(held[held.length - 1]!, true, true);
      }
      return letters;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }
}

/** The URL with `heartbeat=S` added, unless it names one already (or S is 0: the broker's own). */
export function withHeartbeat(url: string, seconds: number): string {
  if (seconds <= 0) return url;
  const parsed = new URL(url);
  if (parsed.searchParams.has('heartbeat')) return url;
  parsed.searchParams.set('heartbeat', String(seconds));
  return parsed.toString();
}

/** Delays rounded to 2 significant digits (1234 → 1200 ms), so retries do not spawn a queue per millisecond. */
function roundDelay(ms: number): number {
  const magnitude = 10 ** Math.max(0, Math.floor(Math.log10(ms)) - 1);
  return Math.max(1, Math.round(ms / magnitude) * magnitude);
}

function confirm(channel: ConfirmChannel, send: (cb: (err: unknown) => void) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    send((err) => (err ? reject(err instanceof Error ? err : new Error('publish was not confirmed by RabbitMQ')) : resolve()));
  });
}

function toDeadLetter(msg: Message): DeadLetter | null {
  let message: JobMessage;
  try {
    message = JSON.parse(msg.content.toString('utf8')) as JobMessage;
  } catch {
    return null;
  }
  const headers = msg.properties.headers ?? {};
  const death = (headers['x-death'] as Array<{ reason?: string; time?: unknown }> | undefined)?.[0];
  const reason = typeof headers['x-reason'] === 'string' ? headers['x-reason'] : death?.reason === 'delivery_limit' ? 'the worker died on every delivery (delivery limit reached)' : (death?.reason ?? 'unknown');
  const deadAt = typeof headers['x-dead-at'] === 'string' ? headers['x-dead-at'] : amqpTimestamp(death?.time);
  return { message, reason, deadAt };
}

/** x-death times arrive as AMQP timestamps: seconds, bare or as { '!': 'timestamp', value }. */
function amqpTimestamp(value: unknown): string {
  const seconds = typeof value === 'number' ? value : Number((value as { value?: unknown } | undefined)?.value);
  return Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : new Date().toISOString();
}
