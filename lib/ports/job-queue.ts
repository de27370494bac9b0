/**
 * Durable job queues for the batch paths (ingest, analyze, maintenance). The job row
 * in the database is the truth; a message only says "work on job X". A consumer
 * acknowledges a message after its handler returned, i.e. after the step it ran was
 * committed; a consumer that dies leaves the message to be delivered again.
 */
export interface JobMessage {
  jobId: string;
  tenantId: string;
  type: string;
  /** 1 for the first delivery; retries carry the next attempt number. */
  attempt: number;
  enqueuedAt: string;
}

export interface JobDelivery {
  message: JobMessage;
  /** The broker delivered this message before and saw no acknowledgement (a worker died). */
  redelivered: boolean;
}

export interface DeadLetter {
  message: JobMessage;
  reason: string;
  deadAt: string;
}

export interface ConsumeOptions {
  /** Messages in flight for this consumer: bounded prefetch. */
  prefetch: number;
}

export interface Consumer {
  /** Stops taking new messages and waits for the handlers in flight. */
  close(): Promise<void>;
}

export interface JobQueue {
  readonly backend: 'memory' | 'amqp';
  /** Resolves once the broker has the message on disk (publisher confirm); `delayMs` holds it back first. */
  publish(queue: string, message: JobMessage, options?: { delayMs?: number }): Promise<void>;
  /** Parks a message that must not be retried, with the reason, where an operator can list and replay it. */
  deadLetter(queue: string, message: JobMessage, reason: string): Promise<void>;
  /**
   * Runs `handler` for each message. The message is acknowledged when the handler
   * resolves. When it throws (it could not even record an outcome: a dependency is
   * down), the message comes back after a growing delay, through the delay queues:
   * never at once, and never counted against the broker's delivery limit, which is
   * kept for workers that die holding a message.
   */
  consume(queue: string, handler: (delivery: JobDelivery) => Promise<void>, options: ConsumeOptions): Promise<Consumer>;
  listDeadLetters(queue: string, limit: number): Promise<DeadLetter[]>;
  /** Moves the dead letter of `jobId` back to the queue; null if there is none. */
  replayDeadLetter(queue: string, jobId: string): Promise<DeadLetter | null>;
  /** Removes the dead letter of `jobId` and returns it; null if there is none. */
  takeDeadLetter(queue: string, jobId: string): Promise<DeadLetter | null>;
  depth(queue: string): Promise<{ ready: number; dead: number }>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** How long a message whose handler threw waits before it comes back: 1 s, 2 s, 4 s … 60 s. */
export function redeliveryDelayMs(failures: number): number {
  return Math.min(1000 * 2 ** Math.max(0, failures - 1), 60_000);
}

/** Exponential backoff: base, 4×base, 16×base … capped at 10 minutes. */
export function retryDelayMs(baseMs: number, attempt: number): number {
  return Math.min(baseMs * 4 ** Math.max(0, attempt - 1), 600_000);
}
