import type { Knex } from 'knex';
import { appError, classify, isOutage, isRetryable, type RagmeshError } from '../errors.ts';
import { retryDelayMs, type JobDelivery } from '../ports/job-queue.ts';
import { tenantScope, type TenantScope } from '../ports/tenant-scope.ts';
import type { JobPatch, JobRow } from '../repositories/jobs.ts';
import type { JobsContext } from './context.ts';
import { relayOutbox, settleJobOutcome } from './commands.ts';
import { jobMessage } from './message.ts';
import { jobTypeOf, type JobPayloads, type JobTypeName } from './registry.ts';

/** A cancel reached the job: not a failure, nothing to retry. */
export class JobCanceled extends Error {
  constructor() {
    super('canceled');
    this.name = 'JobCanceled';
  }
}

/** The worker is stopping: the job is neither failed nor canceled; it resumes on another delivery. */
export class WorkerShutdown extends Error {
  constructor() {
    super('worker shutting down');
    this.name = 'WorkerShutdown';
  }
}

/** Another worker (or a sweeper) took the job over: this one stops without writing anything. */
export class LeaseLost extends Error {
  constructor() {
    super('the job lease was taken over');
    this.name = 'LeaseLost';
  }
}

/** What a job type's handler gets for one run. */
export interface JobRun<T extends JobTypeName> {
  scope: TenantScope;
  /** The row as claimed: status running, attempts counted, leased to this worker. */
  job: JobRow;
  payload: JobPayloads[T];
  /** Aborted by a cancel (JobCanceled), a lost lease (LeaseLost) or a shutdown (WorkerShutdown). */
  signal: AbortSignal;
  /** A previous run may have stored step results (a retry or a resumed lease). */
  resumable: boolean;
  /** Records progress of the running job (and tells SSE); no-op once it left `running`. */
  progress(step: string, value: number): Promise<void>;
  /**
   * Marks the job ready inside the handler's own final transaction, if this worker
   * still holds the lease (else LeaseLost) and no cancel was asked (else JobCanceled).
   */
  markReady(trx: Knex, patch?: JobPatch): Promise<JobRow>;
}

export interface JobHandler<T extends JobTypeName> {
  type: T;
  run(run: JobRun<T>): Promise<void>;
  /**
   * Asked before a queued job is claimed: a delay in ms when it cannot start yet (an
   * analysis waits for its document's ingest), null when it can. A waiting job is not
   * claimed and no attempt is counted; its message comes back after the delay.
   */
  notYet?(input: { scope: TenantScope; job: JobRow; payload: JobPayloads[T] }): Promise<number | null>;
  /** Cleans what a canceled run wrote (e.g. its vectors), before the job is marked canceled. */
  onCanceled?(run: Pick<JobRun<T>, 'scope' | 'job' | 'payload'>): Promise<void>;
}

export interface WorkerOptions {
  /** Unique per process: the lease owner. */
  workerId: string;
  /** Jobs running in this process, so a cancel event can abort one mid-step. */
  running: Map<string, AbortController>;
  /** How often a running job looks for a cancel asked through the database. */
  cancelPollMs?: number;
}

/** The job's `errorCode`: the catalogued code its origin gave, else INTERNAL. Whether to retry is `isRetryable`, decided there too. */
export const errorCodeOf = (err: unknown): string => classify(err).code;

/**
 * Runs one delivered message of a job type. The message is acknowledged when this
 * resolves, and it resolves only after the state it implies is durable: the job ready,
 * queued again with its retry message in the outbox, failed with its dead letter in the
 * outbox, or canceled. Anything it cannot record (the database is down) makes it
 * throw: the queue adapter then brings the message back after a backoff, and the
 * lease lets the next delivery resume the job.
 */
export async function runJobDelivery<T extends JobTypeName>(ctx: JobsContext, handler: JobHandler<T>, delivery: JobDelivery, options: WorkerOptions): Promise<void> {
  const { message } = delivery;
  const scope = tenantScope(message.tenantId);
  const { jobs } = ctx.repos;
  const definition = jobTypeOf(handler.type);
  const found = await jobs.get(scope, message.jobId);
  // Finished, failed (a replay queues it first), canceled or deleted: an old or duplicate message.
  if (!found || (found.status !== 'queued' && found.status !== 'running')) return;
  if (found.cancelRequested) {
    await finishCanceled(ctx, handler, scope, found, null);
    return;
  }
  if (found.status === 'queued' && handler.notYet) {
    let parsed: JobPayloads[T] | null = null;
    try {
      parsed = definition.parse(found.payload) as JobPayloads[T];
    } catch {
      // A payload that does not parse is the claimed run's to fail, below.
    }
    const waitMs = parsed ? await handler.notYet({ scope, job: found, payload: parsed }) : null;
    if (waitMs !== null) {
      await jobs.postpone(scope, found.id, new Date(Date.now() + waitMs));
      await (await ctx.queue()).publish(definition.queue, jobMessage(found, found.attempts + 1), { delayMs: waitMs });
      return;
    }
  }
  // This process still runs the job, and the broker handed its message out again (the
  // connection dropped and came back). Two runs under one lease would race each other's
  // writes, and the first may be stuck on a call lost with the connection: it is told to
  // stop, and this delivery resumes the job from its stored steps once it has stopped,
  // or a lease later if it does not.
  const earlier = options.running.get(found.id);
  if (earlier) await supersede(earlier, ctx.settings.leaseMs);
  const claimed = await jobs.claim(scope, found.id, options.workerId, ctx.settings.leaseMs);
  if (!claimed) {
    // Another live worker holds the lease (the broker handed its message out again when
    // its connection dropped). Look again once that lease would have lapsed.
    const current = await jobs.get(scope, found.id);
    if (current && (current.status === 'queued' || current.status === 'running')) {
      await (await ctx.queue()).publish(definition.queue, jobMessage(current, current.attempts + 1), { delayMs: ctx.settings.leaseMs });
    }
    return;
  }
  ctx.notify.updated(claimed);
  if (claimed.attempts > claimed.maxAttempts) {
    // Every attempt died without recording an outcome (a crash, an OOM): stop here.
    await finishFailed(ctx, scope, claimed, appError('ATTEMPTS_EXHAUSTED', `The job was attempted ${claimed.maxAttempts} times without finishing${claimed.error ? `; last error: ${claimed.error}` : ''}`));
    return;
  }
  let payload: JobPayloads[T];
  try {
    payload = definition.parse(claimed.payload) as JobPayloads[T];
  } catch (err) {
    await finishFailed(ctx, scope, claimed, err);
    return;
  }

  const abort = new AbortController();
  let settle!: () => void;
  runSettled.set(abort, new Promise<void>((resolve) => (settle = resolve)));
  options.running.set(claimed.id, abort);
  const heartbeat = setInterval(() => {
    jobs.heartbeat(scope, claimed.id, options.workerId, ctx.settings.leaseMs).then(
      (row) => row === null && abort.abort(new LeaseLost()),
      // The database is away: the lease runs on; if it lapses another worker may take over and this one's final write is refused.
      () => undefined,
    );
  }, Math.max(100, Math.floor(ctx.settings.leaseMs / 3)));
  const cancelPoll = setInterval(() => {
    jobs.get(scope, claimed.id).then((row) => row?.cancelRequested && abort.abort(new JobCanceled()), () => undefined);
  }, options.cancelPollMs ?? 1000);
  heartbeat.unref();
  cancelPoll.unref();

  let readyMarked = false;
  const run: JobRun<T> = {
    scope,
    job: claimed,
    payload,
    signal: abort.signal,
    resumable: claimed.attempts > 1 || claimed.step !== null,
    progress: async (step, value) => {
      if (abort.signal.aborted) throw abort.signal.reason;
      const updated = await jobs.reportProgress(scope, claimed.id, step, value);
      if (updated) ctx.notify.updated(updated);
    },
    markReady: async (trx, patch = {}) => {
      const held = await jobs.holdsLease(scope, claimed.id, options.workerId, trx);
      if (!held) throw new LeaseLost();
      if (held.cancelRequested) throw new JobCanceled();
      // Checked with the row locked: a later delivery that superseded this run claims
      // the row only after this transaction ends, so at most one of them commits.
      if (abort.signal.aborted) throw abort.signal.reason;
      const ready = await jobs.transition(scope, claimed.id, 'ready', patch, trx, { leaseOwner: options.workerId });
      if (!ready) throw new LeaseLost();
      readyMarked = true;
      return ready;
    },
  };

  try {
    await handler.run(run);
    if (!readyMarked) await ctx.repos.transaction((trx) => run.markReady(trx));
    const ready = await jobs.get(scope, claimed.id);
    if (ready) ctx.notify.updated(ready);
  } catch (err) {
    const reason = abort.signal.aborted ? abort.signal.reason : err;
    if (reason instanceof WorkerShutdown) {
      // Let the next delivery take it at once rather than after the lease.
      await jobs.releaseLease(scope, claimed.id, options.workerId).catch(() => undefined);
      throw reason;
    }
    if (reason instanceof LeaseLost || err instanceof LeaseLost) return;
    if (reason instanceof JobCanceled || err instanceof JobCanceled || (err as RagmeshError)?.type === 'DOCUMENT_DELETED') {
      await finishCanceled(ctx, handler, scope, claimed, payload);
      return;
    }
    await finishFailed(ctx, scope, claimed, err);
  } finally {
    clearInterval(heartbeat);
    clearInterval(cancelPoll);
    // A delivery that superseded this run already holds the entry.
    if (options.running.get(claimed.id) === abort) options.running.delete(claimed.id);
    settle();
  }
}

/** Settles when the run of that controller has finished with its lease, whatever its outcome. */
const runSettled = new WeakMap<AbortController, Promise<void>>();

/**
 * Stops a run of this process in favour of a new delivery of its job: aborts it as a
 * lost lease (it writes nothing more) and waits until it has stopped, at most `patienceMs`.
 */
async function supersede(run: AbortController, patienceMs: number): Promise<void> {
  if (!run.signal.aborted) run.abort(new LeaseLost());
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([runSettled.get(run), new Promise<void>((resolve) => (timer = setTimeout(resolve, patienceMs)))]);
  clearTimeout(timer);
}

async function finishCanceled<T extends JobTypeName>(ctx: JobsContext, handler: JobHandler<T>, scope: TenantScope, job: JobRow, payload: JobPayloads[T] | null): Promise<void> {
  if (handler.onCanceled) {
    const parsed = payload ?? (jobTypeOf(handler.type).parse(job.payload) as JobPayloads[T]);
    await handler.onCanceled({ scope, job, payload: parsed });
  }
  const canceled = await ctx.repos.transaction(async (trx) => {
    const row = await ctx.repos.jobs.transition(scope, job.id, 'canceled', { error: null, errorCode: null }, trx);
    if (row) await settleJobOutcome(ctx, scope, row, 'canceled', trx);
    return row;
  });
  if (canceled) ctx.notify.updated(canceled);
}

/** Queues the job again with its retry message in the outbox (one transaction), then relays it. */
async function queueAgain(ctx: JobsContext, scope: TenantScope, job: JobRow, patch: JobPatch & { availableAt: Date }): Promise<void> {
  const queued = await ctx.repos.transaction(async (trx) => {
    const row = await ctx.repos.jobs.transition(scope, job.id, 'queued', patch, trx);
    if (row) await ctx.repos.outbox.add(scope, { queue: jobTypeOf(job.type).queue, message: jobMessage(row, row.attempts + 1), availableAt: patch.availableAt }, trx);
    return row;
  });
  if (queued) {
    await relayOutbox(ctx, { jobIds: [job.id] });
    ctx.notify.updated(queued);
  }
}

/**
 * A run failed: queued again after a backoff while attempts remain and the error may
 * pass, else failed with a dead letter. State and message commit together (outbox).
 */
export async function finishFailed(ctx: JobsContext, scope: TenantScope, job: JobRow, err: unknown): Promise<void> {
  const definition = jobTypeOf(job.type);
  const message = (err as Error)?.message ?? String(err);
  const code = errorCodeOf(err);
  const waitingSince = job.outageSince ?? new Date();
  const waitedMs = Date.now() - waitingSince.getTime();
  if (isOutage(err) && waitedMs < ctx.settings.outagePatienceMs) {
    // A dependency is out of reach, not the work at fault: a broker restart must not
    // use up the attempts of every job in flight. Try again soon (backoff doubling with
    // the outage's length, at most 30 s), and give this attempt back.
    const delayMs = Math.min(30_000, Math.max(ctx.settings.backoffMs, Math.round(waitedMs / 2)));
    const availableAt = new Date(Date.now() + delayMs);
    ctx.logger.warn({ err, jobId: job.id, type: job.type, attempts: job.attempts - 1, retryInMs: delayMs, waitingMs: waitedMs }, 'job waits out an outage; retrying without spending an attempt');
    await queueAgain(ctx, scope, job, {
      error: `${message} (waiting for it to come back; retrying in ${Math.max(1, Math.round(delayMs / 1000))} s)`,
      errorCode: code,
      availableAt,
      attempts: Math.max(0, job.attempts - 1),
      outageSince: waitingSince,
    });
    return;
  }
  if (isRetryable(err) && job.attempts < job.maxAttempts) {
    const delayMs = retryDelayMs(ctx.settings.backoffMs, job.attempts);
    const availableAt = new Date(Date.now() + delayMs);
    ctx.logger.warn({ err, jobId: job.id, type: job.type, attempts: job.attempts, retryInMs: delayMs }, 'job attempt failed; retrying');
    // An outage past its patience keeps its start, so the next failure counts too.
    await queueAgain(ctx, scope, job, { error: `${message} (retrying in ${Math.round(delayMs / 1000)} s)`, errorCode: code, availableAt, outageSince: isOutage(err) ? job.outageSince : null });
    return;
  }
  ctx.logger.error({ err, jobId: job.id, type: job.type, attempts: job.attempts, code }, 'job failed');
  const failed = await ctx.repos.transaction(async (trx) => {
    const row = await ctx.repos.jobs.transition(scope, job.id, 'failed', { error: message, errorCode: code }, trx);
    if (row) {
      await settleJobOutcome(ctx, scope, row, 'failed', trx);
      await ctx.repos.outbox.add(scope, { queue: definition.queue, kind: 'dead', reason: `${code}: ${message}`, message: jobMessage(row, row.attempts) }, trx);
    }
    return row;
  });
  if (failed) {
    await relayOutbox(ctx, { jobIds: [job.id] });
    ctx.notify.updated(failed);
  }
}
