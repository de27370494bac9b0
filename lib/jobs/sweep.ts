import { tenantScope } from '../ports/tenant-scope.ts';
import type { JobsContext } from './context.ts';
import { relayOutbox, settleJobOutcome } from './commands.ts';
import { jobMessage } from './message.ts';
import { jobTypeOf, jobTypes } from './registry.ts';
import { jobQueues } from './types/index.ts';

/** RabbitMQ stamps x-death in whole seconds: a row touched within this of a death is not newer than it. */
const DEATH_TIME_SLACK_MS = 1500;
const BATCH = 500;

export interface SweepCounts {
  /** Running jobs whose lease lapsed, queued again (attempts left). */
  requeued: number;
  /** Running jobs whose lease lapsed with no attempts left, failed with a reason. */
  failed: number;
  /** Queued jobs whose message was long overdue, published again. */
  republished: number;
  /** Rows still queued/running for a message RabbitMQ dead-lettered by itself, failed. */
  reconciled: number;
  /** Outbox messages relayed by this sweep. */
  relayed: number;
}

/**
 * The job sweepers (run by the maintenance service on a schedule). Each only acts on
 * rows that nobody owns: a lease that lapsed (`leaseGraceMs` after its expiry), a
 * queued row whose message was due `staleAfterMs` ago with nothing in the outbox, a
 * dead letter newer than the row. Every change is guarded in its UPDATE, so a worker
 * that comes back to life at the same moment wins or loses cleanly.
 */
export async function sweepJobs(ctx: JobsContext, options: { staleAfterMs: number; leaseGraceMs?: number; now?: Date }): Promise<SweepCounts> {
  const now = options.now ?? new Date();
  const counts: SweepCounts = { requeued: 0, failed: 0, republished: 0, reconciled: 0, relayed: 0 };
  const { repos } = ctx;
  const expiredBefore = new Date(now.getTime() - (options.leaseGraceMs ?? 0));

  for (const job of await repos.jobs.listLeaseExpired(expiredBefore, BATCH, new Date(now.getTime() - options.staleAfterMs))) {
    if (!isKnownType(job.type, ctx)) continue;
    const scope = tenantScope(job.tenantId);
    const definition = jobTypeOf(job.type);
    const reason = `the worker stopped heart-beating (lease of ${job.leaseOwner ?? 'unknown'} expired at ${job.leaseExpiresAt?.toISOString() ?? 'never set'})`;
    const moved = await repos.transaction(async (trx) => {
      if (job.attempts >= job.maxAttempts) {
        const row = await repos.jobs.transition(scope, job.id, 'failed', { error: `${reason} after ${job.attempts} attempts`, errorCode: 'LEASE_EXPIRED' }, trx, { leaseExpiredBefore: expiredBefore });
        if (row) {
          await settleJobOutcome(ctx, scope, row, 'failed', trx);
          await repos.outbox.add(scope, { queue: definition.queue, kind: 'dead', reason: `LEASE_EXPIRED: ${reason}`, message: jobMessage(row, row.attempts) }, trx);
        }
        return row;
      }
      const row = await repos.jobs.transition(scope, job.id, 'queued', { error: reason, errorCode: 'LEASE_EXPIRED', availableAt: now }, trx, { leaseExpiredBefore: expiredBefore });
      if (row) await repos.outbox.add(scope, { queue: definition.queue, message: jobMessage(row, row.attempts + 1) }, trx);
      return row;
    });
    if (!moved) continue;
    if (moved.status === 'failed') counts.failed++;
    else counts.requeued++;
    ctx.notify.updated(moved);
  }

  for (const job of await repos.jobs.listQueuedOverdue(new Date(now.getTime() - options.staleAfterMs), BATCH)) {
    if (!isKnownType(job.type, ctx)) continue;
    const scope = tenantScope(job.tenantId);
    const definition = jobTypeOf(job.type);
    const republished = await repos.transaction(async (trx) => {
      if (!(await repos.jobs.markRepublished(scope, job.id, trx))) return false;
      await repos.outbox.add(scope, { queue: definition.queue, message: jobMessage(job, job.attempts + 1) }, trx);
      return true;
    });
    if (republished) counts.republished++;
  }

  // The broker may be the thing that is down: the database sweeps above stand on their own.
  counts.reconciled = await reconcileDeadLetters(ctx, now).catch((err: unknown) => {
    ctx.logger.warn({ err }, 'dead letters could not be reconciled (the queue is unreachable)');
    return 0;
  });
  const relay = await relayOutbox(ctx, { limit: 1000 });
  counts.relayed = relay.relayed;
  return counts;
}

/**
 * Rows still queued or running for a message that RabbitMQ dead-lettered by itself
 * (its delivery limit: workers died holding it) are failed with the letter's reason;
 * the letter stays for a replay. A row changed after the death, or one whose lease
 * is live, is left alone: someone acted on it since.
 */
export async function reconcileDeadLetters(ctx: JobsContext, now = new Date()): Promise<number> {
  const queue = await ctx.queue();
  let reconciled = 0;
  for (const name of jobQueues()) {
    for (const letter of await queue.listDeadLetters(name, 1000)) {
      let scope;
      try {
        scope = tenantScope(letter.message.tenantId);
      } catch {
        continue;
      }
      const job = await ctx.repos.jobs.get(scope, letter.message.jobId);
      if (!job || (job.status !== 'queued' && job.status !== 'running')) continue;
      const deadAt = new Date(letter.deadAt);
      const failed = await ctx.repos.transaction(async (trx) => {
        const row = await ctx.repos.jobs.transition(scope, job.id, 'failed', { error: letter.reason, errorCode: 'DEAD_LETTERED' }, trx, {
          leaseExpiredBefore: now,
          updatedNotAfter: new Date(deadAt.getTime() + DEATH_TIME_SLACK_MS),
        });
        if (row) await settleJobOutcome(ctx, scope, row, 'failed', trx);
        return row;
      });
      if (failed) {
        reconciled++;
        ctx.notify.updated(failed);
      }
    }
  }
  return reconciled;
}

/**
 * The embedded profile's queue lives in memory: at boot, every unfinished job gets its
 * message again, and leases of the previous run (the same single process) end.
 */
export async function recoverInMemoryQueue(ctx: JobsContext): Promise<number> {
  const { repos } = ctx;
  await repos.jobs.expireAllLeases();
  const queue = await ctx.queue();
  const jobs = (await repos.jobs.listUnfinished(null, { limit: 10_000 })).filter((job) => isKnownType(job.type, ctx));
  for (const job of jobs) await queue.publish(jobTypeOf(job.type).queue, jobMessage(job, job.attempts + 1));
  await relayOutbox(ctx, { limit: 10_000 });
  return jobs.length;
}

/** A row of a type this process does not define (a newer deployment's) is left to the processes that do. */
function isKnownType(type: string, ctx: JobsContext): boolean {
  if (jobTypes().some((t) => t.type === type)) return true;
  ctx.logger.debug({ type }, 'job of an unknown type left alone by the sweeper');
  return false;
}
