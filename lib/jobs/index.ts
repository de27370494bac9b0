/**
 * The job lifecycle, in one place (see docs/architecture.md, "Jobs").
 *
 * - registry.ts: job types (payload validator, queue, idempotency key, document rule);
 *   a new type is one file in types/ plus one import line in types/index.ts.
 * - commands.ts: what users and services ask — enqueue, cancel, retry, replay a dead
 *   letter, delete a document with everything derived from it, settle a document's status.
 * - worker.ts: what happens to a delivered message — claim with a lease, heartbeat,
 *   run the type's handler, then ready / retry / dead letter / cancel, acked only after.
 * - sweep.ts: expired leases, queued rows without a message, broker dead letters.
 * - message.ts: the one queue-message builder. The outbox (lib/repositories/outbox.ts)
 *   carries every message from the transaction that decided it to the queue.
 */
export * from './commands.ts';
export * from './context.ts';
export * from './message.ts';
export * from './model.ts';
export * from './registry.ts';
export * from './sweep.ts';
export * from './worker.ts';
export * from './types/index.ts';
