import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Errors } from 'moleculer';
import { appError } from '../errors.ts';
import { tenantScope } from '../ports/tenant-scope.ts';
import { DATABASE_BACKENDS, type TestDatabase } from '../../test/support/databases.ts';
import { seedIngest, testJobsContext } from '../../test/support/jobs.ts';
import { relayOutbox } from './commands.ts';
import { jobMessage } from './message.ts';
import { runJobDelivery, WorkerShutdown, type JobHandler, type JobRun } from './worker.ts';

const postgres = DATABASE_BACKENDS.find((b) => b.name === 'postgres')!;

/** What a handler does in each test; the lifecycle around it is the real one. */
function handler(run: (r: JobRun<'ingest'>) => Promise<void>, onCanceled?: () => Promise<void>): JobHandler<'ingest'> {
  return { type: 'ingest', run, onCanceled: onCanceled && (async () => onCanceled()) };
}

describe('job worker: one delivery of a message (real PostgreSQL)', () => {
  let t: TestDatabase;
  let h: Awaited<ReturnType<typeof testJobsContext>>;
  const scope = tenantScope('acme');
  const opts = () => ({ workerId: 'worker-1', running: new Map<string, AbortController>(), cancelPollMs: 50 });
  const delivery = (job: { id: string; tenantId: string; type: string }, redelivered = false) => ({ message: jobMessage(job, 1), redelivered });

  before(async () => {
    t = await postgres.open();
    h = await testJobsContext(t, { settings: { maxAttempts: 2, backoffMs: 10_000, leaseMs: 600 } });
    await h.ctx.repos.tenants.recordMember(scope, 'alice', ['editor']);
  });
  after(async () => {
    await h.dispose();
    await t.dispose();
  });

  it('runs the handler under a lease and marks the job ready; a second delivery of the same message is dropped', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    let runs = 0;
    const work = handler(async (r) => {
      runs++;
      assert.equal(r.job.status, 'running');
      assert.equal(r.job.leaseOwner, 'worker-1');
      assert.equal(r.job.attempts, 1);
      assert.equal(r.resumable, false);
      await r.progress('extract', 0.5);
    });
    await runJobDelivery(h.ctx, work, delivery(job), opts());
    const done = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(done.status, 'ready');
    assert.equal(done.leaseOwner, null, 'the lease ends with the run');
    await runJobDelivery(h.ctx, work, delivery(job, true), opts());
    assert.equal(runs, 1);
  });

  it('a delivery of a job this process is still running stops that run, then resumes the job: never two runs at once', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    const options = opts();
    let active = 0;
    let overlapped = false;
    const signals: AbortSignal[] = [];
    let started!: () => void;
    const firstStarted = new Promise<void>((resolve) => (started = resolve));
    const work = handler(async (r) => {
      if (++active > 1) overlapped = true;
      signals.push(r.signal);
      try {
        if (signals.length === 1) {
          started();
          // A step that honours its signal, as the pipeline's steps do.
          await new Promise<void>((_, reject) => r.signal.addEventListener('abort', () => reject(r.signal.reason), { once: true }));
        }
        assert.equal(r.resumable, true, 'the second run resumes');
      } finally {
        active--;
      }
    });
    const first = runJobDelivery(h.ctx, work, delivery(job), options);
    await firstStarted;
    await runJobDelivery(h.ctx, work, delivery(job, true), options);
    await first;
    assert.equal(signals.length, 2);
    assert.equal(signals[0]!.aborted, true, 'the first run was told to stop');
    assert.equal(overlapped, false);
    const done = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(done.status, 'ready');
    assert.equal(done.attempts, 2);
    assert.equal(options.running.size, 0);
  });

  it('a run that does not stop when superseded is left behind after a lease, and cannot commit after the new run', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    const options = opts();
    let runs = 0;
    let started!: () => void;
    let release!: () => void;
    const firstStarted = new Promise<void>((resolve) => (started = resolve));
    const stuck = new Promise<void>((resolve) => (release = resolve));
    const work = handler(async () => {
      if (++runs > 1) return;
      started();
      // A call lost with the connection: it ignores the signal.
      await stuck;
    });
    const first = runJobDelivery(h.ctx, work, delivery(job), options);
    await firstStarted;
    await runJobDelivery(h.ctx, work, delivery(job, true), options);
    assert.equal(runs, 2);
    const done = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(done.status, 'ready');
    assert.equal(done.attempts, 2);
    release();
    await first;
    const after = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(after.status, 'ready');
    assert.equal(after.updatedAt.getTime(), done.updatedAt.getTime(), 'the stopped run wrote nothing');
  });

  it('renews the lease while the handler works (heartbeats)', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    const seen: number[] = [];
    await runJobDelivery(h.ctx, handler(async () => {
      // Work for three lease periods: without heartbeats the lease would lapse.
      for (let i = 0; i < 9; i++) {
        await new Promise((r) => setTimeout(r, 200));
        seen.push((await h.ctx.repos.jobs.get(scope, job.id))!.leaseExpiresAt!.getTime());
      }
      assert.ok(seen.at(-1)! > Date.now(), 'the lease is live after three lease periods of work');
    }), delivery(job), opts());
    assert.ok(new Set(seen).size > 1, 'the lease moved forward');
    assert.equal((await h.ctx.repos.jobs.get(scope, job.id))!.status, 'ready');
  });

  it('a job that cannot start yet (notYet) stays queued, unclaimed, its message back after the delay; it runs once it can', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    let wait: number | null = 250;
    let runs = 0;
    const work: JobHandler<'ingest'> = { ...handler(async () => void runs++), notYet: async ({ payload }) => (assert.equal(payload.documentId, job.documentId), wait) };
    const publishedBefore = h.memoryQueue.published.length;
    await runJobDelivery(h.ctx, work, delivery(job), opts());
    const waiting = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(runs, 0);
    assert.equal(waiting.status, 'queued');
    assert.equal(waiting.attempts, 0, 'no attempt counted while it waits');
    assert.equal(waiting.leaseOwner, null);
    assert.ok(waiting.availableAt!.getTime() > Date.now(), 'due again later: the sweeper does not take it for a lost message');
    assert.deepEqual(h.memoryQueue.published.slice(publishedBefore).map((p) => [p.message.jobId, p.delayMs]), [[job.id, 250]]);

    wait = null;
    await runJobDelivery(h.ctx, work, delivery(job, true), opts());
    assert.equal(runs, 1);
    const done = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(done.status, 'ready');
    assert.equal(done.attempts, 1);
  });

  it('a retryable failure queues the job with its error and a delayed message, in one transaction, then acks', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    await relayOutbox(h.ctx, { jobIds: [job.id] });
    await runJobDelivery(h.ctx, handler(async () => {
      throw appError('INTERNAL', 'the extractor crashed');
    }), delivery(job), opts());
    const queued = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(queued.status, 'queued');
    assert.equal(queued.attempts, 1);
    assert.equal(queued.errorCode, 'INTERNAL');
    assert.match(queued.error!, /the extractor crashed \(retrying in 10 s\)/);
    assert.ok(queued.availableAt!.getTime() > Date.now() + 5000, 'due after the backoff');
    assert.equal((await h.ctx.repos.outbox.listForJob(scope, job.id)).length, 0, 'the delayed message was relayed');
  });

  it('an outage of a dependency (the service bus gone) spends no attempts: the job waits it out, then finishes', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    let down = true;
    const work = handler(async () => {
      // What a call to emb throws while this process has lost RabbitMQ.
      if (down) throw new Errors.BrokerDisconnectedError('The broker is disconnected');
    });
    // More failed deliveries than the suite's maxAttempts (2): none of them counts.
    for (let i = 0; i < 4; i++) {
      await runJobDelivery(h.ctx, work, delivery(job, i > 0), opts());
      const waiting = (await h.ctx.repos.jobs.get(scope, job.id))!;
      assert.equal(waiting.status, 'queued');
      assert.equal(waiting.attempts, 0, 'the attempt was given back');
      assert.equal(waiting.errorCode, 'BROKER_UNAVAILABLE');
      assert.match(waiting.error!, /waiting for it to come back/);
      assert.ok(waiting.outageSince, 'the wait is dated');
      assert.ok(waiting.availableAt!.getTime() > Date.now(), 'retried after a delay, not at once');
    }
    down = false;
    await runJobDelivery(h.ctx, work, delivery(job, true), opts());
    const done = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(done.status, 'ready');
    assert.equal(done.attempts, 1);
    assert.equal(done.outageSince, null);
  });

  it('an outage longer than JOB_OUTAGE_PATIENCE_MS counts attempts again, and fails the job once they are used up', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    const work = handler(async () => {
      throw appError('DATABASE_UNAVAILABLE', 'PostgreSQL refused the connection (ECONNREFUSED)');
    });
    await runJobDelivery(h.ctx, work, delivery(job), opts());
    assert.equal((await h.ctx.repos.jobs.get(scope, job.id))!.attempts, 0);
    // The outage began longer ago than the patience allows.
    await t.db.knex('jobs').where({ id: job.id }).update({ outage_since: new Date(Date.now() - 601_000) });
    await runJobDelivery(h.ctx, work, delivery(job, true), opts());
    const counted = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(counted.status, 'queued');
    assert.equal(counted.attempts, 1, 'past the patience the attempt counts');
    await runJobDelivery(h.ctx, work, delivery(job, true), opts());
    const failed = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(failed.status, 'failed');
    assert.equal(failed.errorCode, 'DATABASE_UNAVAILABLE');
  });

  it('a permanent failure fails the job, settles its document and dead-letters the message with the reason', async () => {
    const { job, document } = await seedIngest(h.ctx, scope);
    await runJobDelivery(h.ctx, handler(async () => {
      throw appError('UNREADABLE_FILE', 'The PDF is truncated');
    }), delivery(job), opts());
    const failed = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(failed.status, 'failed');
    assert.equal(failed.errorCode, 'UNREADABLE_FILE');
    assert.equal((await h.ctx.repos.documents.get(scope, document.id))!.status, 'failed');
    const letter = (await h.memoryQueue.listDeadLetters('ingest', 1000)).find((l) => l.message.jobId === job.id);
    assert.equal(letter?.reason, 'UNREADABLE_FILE: The PDF is truncated');
  });

  it('when the outcome cannot be recorded (the database refuses), it throws so the message is not acked, and the next delivery resumes the job', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    let failWrites = true;
    const faulty = { ...h.ctx, repos: Object.create(h.ctx.repos, { transaction: { value: (work: never) => (failWrites ? Promise.reject(new Error('the database system is shutting down')) : h.ctx.repos.transaction(work)) } }) };
    const work = handler(async (r) => {
      if (r.job.attempts === 1) throw appError('SERVICE_UNAVAILABLE', 'emb is restarting');
    });
    await assert.rejects(() => runJobDelivery(faulty, work, delivery(job), opts()), /shutting down/);
    const stuck = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(stuck.status, 'running', 'nothing was recorded: the row still says running under the lease');
    assert.equal(stuck.leaseOwner, 'worker-1');

    // The database is back; the message comes back to the same worker (or, once the lease lapsed, any): it resumes.
    failWrites = false;
    await runJobDelivery(faulty, work, delivery(job, true), opts());
    const done = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(done.status, 'ready');
    assert.equal(done.attempts, 2, 'both attempts counted');
  });

  it('a redelivered message of a running job resumes it once the lease expired, and leaves a live lease alone', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    await h.ctx.repos.jobs.claim(scope, job.id, 'worker-dead', 600); // its worker was SIGKILLed
    let runs = 0;
    const work = handler(async (r) => {
      runs++;
      assert.equal(r.resumable, true);
    });
    const publishedBefore = h.memoryQueue.published.length;
    await runJobDelivery(h.ctx, work, delivery(job, true), opts());
    assert.equal(runs, 0, 'the lease is live: someone may still be working on it');
    assert.equal((await h.ctx.repos.jobs.get(scope, job.id))!.leaseOwner, 'worker-dead');
    // It looks again after a lease period instead of dropping the job.
    assert.deepEqual(h.memoryQueue.published.slice(publishedBefore).map((p) => [p.message.jobId, p.delayMs]), [[job.id, 600]]);

    await new Promise((r) => setTimeout(r, 700));
    await runJobDelivery(h.ctx, work, delivery(job, true), opts());
    assert.equal(runs, 1);
    const done = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(done.status, 'ready');
    assert.equal(done.attempts, 2);
  });

  it('a job whose attempts are used up by dying workers fails with ATTEMPTS_EXHAUSTED and a dead letter', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    await h.ctx.repos.jobs.claim(scope, job.id, 'w-a', 1);
    await new Promise((r) => setTimeout(r, 10));
    await h.ctx.repos.jobs.claim(scope, job.id, 'w-b', 1);
    await new Promise((r) => setTimeout(r, 10));
    let runs = 0;
    await runJobDelivery(h.ctx, handler(async () => void runs++), delivery(job, true), opts());
    assert.equal(runs, 0);
    const failed = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(failed.status, 'failed');
    assert.equal(failed.errorCode, 'ATTEMPTS_EXHAUSTED');
    assert.equal(failed.attempts, 3);
    assert.ok((await h.memoryQueue.listDeadLetters('ingest', 1000)).some((l) => l.message.jobId === job.id));
  });

  it('a worker that lost its lease to another stops and writes nothing', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    await runJobDelivery(h.ctx, handler(async (r) => {
      // The sweeper gave the job to another worker while this one was stalled.
      await t.db.knex('jobs').where({ id: job.id }).update({ lease_owner: 'worker-2' });
      await new Promise((resolve) => r.signal.addEventListener('abort', resolve, { once: true }));
      throw r.signal.reason;
    }), delivery(job), opts());
    const row = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(row.status, 'running');
    assert.equal(row.leaseOwner, 'worker-2');
  });

  it('a cancel asked through the database stops the run; the job is canceled and the handler cleans up', async () => {
    const { job, document } = await seedIngest(h.ctx, scope);
    let cleaned = false;
    await runJobDelivery(h.ctx, handler(async (r) => {
      await h.ctx.repos.jobs.requestCancel(scope, job.id);
      await new Promise((resolve) => r.signal.addEventListener('abort', resolve, { once: true }));
      throw r.signal.reason;
    }, async () => void (cleaned = true)), delivery(job), opts());
    assert.equal((await h.ctx.repos.jobs.get(scope, job.id))!.status, 'canceled');
    assert.equal((await h.ctx.repos.documents.get(scope, document.id))!.status, 'canceled');
    assert.equal(cleaned, true);
  });

  it('a shutdown releases the lease and hands the message back', async () => {
    const { job } = await seedIngest(h.ctx, scope);
    const o = opts();
    await assert.rejects(() => runJobDelivery(h.ctx, handler(async (r) => {
      o.running.get(job.id)!.abort(new WorkerShutdown());
      throw r.signal.reason;
    }), delivery(job), o), WorkerShutdown);
    const row = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(row.status, 'running');
    assert.ok(row.leaseExpiresAt!.getTime() <= Date.now(), 'the next delivery may take it at once');
  });
});
