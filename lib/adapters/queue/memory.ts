import { redeliveryDelayMs, type Consumer, type ConsumeOptions, type DeadLetter, type JobDelivery, type JobMessage, type JobQueue } from '../../ports/job-queue.ts';

interface QueueState {
  ready: JobMessage[];
  dead: DeadLetter[];
  consumers: Array<{ handler: (d: JobDelivery) => Promise<void>; prefetch: number; inFlight: number; closed: boolean; idle: Array<() => void> }>;
  timers: Set<NodeJS.Timeout>;
}

/**
 * The embedded profile's job queue: same contract, one process. It keeps nothing on
 * disk; the ingest service re-queues unfinished job rows at boot, so a restart loses
 * no acknowledged work.
 */
export class MemoryJobQueue implements JobQueue {
  readonly backend = 'memory' as const;
  private readonly queues = new Map<string, QueueState>();
  private closed = false;
  /** How often handlers threw on a message, for its redelivery backoff. */
  private readonly failures = new WeakMap<JobMessage, number>();

  async publish(queue: string, message: JobMessage, options: { delayMs?: number } = {}): Promise<void> {
    const state = this.state(queue);
    if (options.delayMs && options.delayMs > 0) {
      const timer = setTimeout(() => {
        state.timers.delete(timer);
        state.ready.push(message);
        this.dispatch(queue);
      }, options.delayMs);
      timer.unref();
      state.timers.add(timer);
      return;
    }
    state.ready.push(message);
    this.dispatch(queue);
  }

  async deadLetter(queue: string, message: JobMessage, reason: string): Promise<void> {
    this.state(queue).dead.push({ message, reason, deadAt: new Date().toISOString() });
  }

  async consume(queue: string, handler: (d: JobDelivery) => Promise<void>, options: ConsumeOptions): Promise<Consumer> {
    const consumer = { handler, prefetch: Math.max(1, options.prefetch), inFlight: 0, closed: false, idle: [] as Array<() => void> };
    const state = this.state(queue);
    state.consumers.push(consumer);
    this.dispatch(queue);
    return {
      close: async () => {
        consumer.closed = true;
        state.consumers.splice(state.consumers.indexOf(consumer), 1);
        if (consumer.inFlight > 0) await new Promise<void>((resolve) => consumer.idle.push(resolve));
      },
    };
  }

  async listDeadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    return this.state(queue).dead.slice(0, limit);
  }

  async takeDeadLetter(queue: string, jobId: string): Promise<DeadLetter | null> {
    const state = this.state(queue);
    const index = state.dead.findIndex((d) => d.message.jobId === jobId);
    if (index < 0) return null;
    return state.dead.splice(index, 1)[0]!;
  }

  async replayDeadLetter(queue: string, jobId: string): Promise<DeadLetter | null> {
    const letter = await this.takeDeadLetter(queue, jobId);
    if (letter) await this.publish(queue, { ...letter.message, attempt: 1, enqueuedAt: new Date().toISOString() });
    return letter;
  }

  async depth(queue: string): Promise<{ ready: number; dead: number }> {
    const state = this.state(queue);
    return { ready: state.ready.length, dead: state.dead.length };
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('job queue is closed');
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const state of this.queues.values()) for (const timer of state.timers) clearTimeout(timer);
  }

  private state(queue: string): QueueState {
    let state = this.queues.get(queue);
    if (!state) {
      state = { ready: [], dead: [], consumers: [], timers: new Set() };
      this.queues.set(queue, state);
    }
    return state;
  }

  private dispatch(queue: string): void {
    const state = this.state(queue);
    for (const consumer of state.consumers) {
      while (!consumer.closed && consumer.inFlight < consumer.prefetch && state.ready.length > 0) {
        const message = state.ready.shift()!;
        consumer.inFlight++;
        void consumer
          .handler({ message, redelivered: false })
          .catch(() => {
            // Not acknowledged: deliver it again after a growing delay, like the AMQP adapter.
            const failures = (this.failures.get(message) ?? 0) + 1;
            this.failures.set(message, failures);
            const timer = setTimeout(() => {
              state.timers.delete(timer);
              state.ready.push(message);
              this.dispatch(queue);
            }, redeliveryDelayMs(failures));
            timer.unref();
            state.timers.add(timer);
          })
          .finally(() => {
            consumer.inFlight--;
            if (consumer.closed && consumer.inFlight === 0) consumer.idle.splice(0).forEach((resolve) => resolve());
            this.dispatch(queue);
          });
      }
    }
  }
}
