import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AmqpJobQueue } from '../adapters/queue/amqp.ts';
import { tenantScope } from '../ports/tenant-scope.ts';
import { DATABASE_BACKENDS, type TestDatabase } from '../../test/support/databases.ts';
import { seedIngest, testJobsContext } from '../../test/support/jobs.ts';
import { waitFor } from '../../test/support/processes.ts';
import { createTestVhost, type Disposable } from '../../test/support/services.ts';
import { enqueueJob, relayOutbox } from './commands.ts';
import { jobMessage } from './message.ts';
import { reconcileDeadLetters, sweepJobs } from './sweep.ts';

const postgres = DATABASE_BACKENDS.find((b) => b.name === 'postgres')!;
const scope = tenantScope('acme');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('job sweepers with injected faults (real PostgreSQL)', () => {
  let t: TestDatabase;
  let h: Awaited<ReturnType<typeof testJobsContext>>;

  before(async () => {
    t = await postgres.open();
    h = await testJobsContext(t, { settings: { maxAttempts: 3, backoffMs: 20, leaseMs: 500 } });
    await h.ctx.repos.tenants.recordMember(scope, 'alice', ['editor']);
  });
  after(async () => {
    await h.dispose();
    await t.dispose();
  });

  it('re-queues a job whose worker died without ack or heartbeat, fails one out of attempts, and touches nothing live', async () => {
    // A worker took this job and was SIGKILLed: no ack, no heartbeat, the lease lapses.
    const dead = await seedIngest(h.ctx, scope);
    await h.ctx.repos.jobs.claim(scope, dead.job.id, 'killed-worker', 50);
    // This one died on its last attempt.
    const spent = await seedIngest(h.ctx, scope);
    for (let i = 0; i < 3; i++) {
      await h.ctx.repos.jobs.claim(scope, spent.job.id, `killed-${i}`, 1);
      await sleep(5);
    }
    // Live: a worker that heart-beats, a job queued a moment ago, a finished one.
    const live = await seedIngest(h.ctx, scope);
    await h.ctx.repos.jobs.claim(scope, live.job.id, 'live-worker', 60_000);
    const fresh = await seedIngest(h.ctx, scope);
    const finished = await seedIngest(h.ctx, scope);
    await h.ctx.repos.jobs.claim(scope, finished.job.id, 'w', 60_000);
    await h.ctx.repos.jobs.transition(scope, finished.job.id, 'ready');
    await relayOutbox(h.ctx, { limit: 1000 });
    await sleep(100);
    const before = await t.db.knex('jobs').whereIn('id', [live.job.id, fresh.job.id, finished.job.id]).orderBy('id');
    const publishedBefore = h.memoryQueue.published.length;

    const counts = await sweepJobs(h.ctx, { staleAfterMs: 60_000 });
    assert.deepEqual({ ...counts, relayed: undefined }, { requeued: 1, failed: 1, republished: 0, reconciled: 0, relayed: undefined });

    const requeued = (await h.ctx.repos.jobs.get(scope, dead.job.id))!;
    assert.equal(requeued.status, 'queued');
    assert.equal(requeued.attempts, 1, 'the dead attempt is counted');
    assert.equal(requeued.errorCode, 'LEASE_EXPIRED');
    assert.match(requeued.error!, /killed-worker/);
    assert.equal(requeued.leaseOwner, null);
    const republished = h.memoryQueue.published.slice(publishedBefore);
    assert.deepEqual(republished.map((p) => p.message.jobId), [dead.job.id], 'its message went out again, nothing else');
    assert.equal(republished[0]!.message.attempt, 2);

    const failed = (await h.ctx.repos.jobs.get(scope, spent.job.id))!;
    assert.equal(failed.status, 'failed');
    assert.equal(failed.errorCode, 'LEASE_EXPIRED');
    assert.equal((await h.ctx.repos.documents.get(scope, spent.document.id))!.status, 'failed');
    assert.ok((await h.memoryQueue.listDeadLetters('ingest', 100)).some((l) => l.message.jobId === spent.job.id && /^LEASE_EXPIRED: /.test(l.reason)));

    const afterRows = await t.db.knex('jobs').whereIn('id', [live.job.id, fresh.job.id, finished.job.id]).orderBy('id');
    assert.deepEqual(afterRows, before, 'the live lease, the fresh queued job and the finished job are untouched');
  });

  it('re-publishes a queued job whose message is gone, once, and leaves jobs whose message waits in the outbox', async () => {
    const lost = await seedIngest(h.ctx, scope);
    await relayOutbox(h.ctx, { jobIds: [lost.job.id] });
    // The broker lost the message (a restart without a durable queue, say) and the row has waited past the deadline.
    await t.db.knex('jobs').where({ id: lost.job.id }).update({ available_at: new Date(Date.now() - 3_600_000) });
    const pending = await seedIngest(h.ctx, scope); // its message is still in the outbox
    await t.db.knex('jobs').where({ id: pending.job.id }).update({ available_at: new Date(Date.now() - 3_600_000) });
    const relayAway = h.ctx.queue;
    h.ctx.queue = async () => Promise.reject(new Error('broker down'));
    const publishedBefore = h.memoryQueue.published.length;
    try {
      // The broker is down during this sweep: the lost job's message is decided (outbox) but cannot go out yet.
      const counts = await sweepJobs(h.ctx, { staleAfterMs: 60_000 });
      assert.equal(counts.republished, 1, 'only the lost one: the other has its message in the outbox');
      assert.equal(counts.relayed, 0);
    } finally {
      h.ctx.queue = relayAway;
    }
    const counts = await sweepJobs(h.ctx, { staleAfterMs: 60_000 });
    assert.equal(counts.republished, 0, 'not again: its message waits in the outbox');
    assert.equal(counts.relayed, 2);
    const out = h.memoryQueue.published.slice(publishedBefore).map((p) => p.message.jobId).sort();
    assert.deepEqual(out, [lost.job.id, pending.job.id].sort(), 'the lost one re-published, the pending one relayed');
    assert.equal((await sweepJobs(h.ctx, { staleAfterMs: 60_000 })).republished, 0, 'not again at the next sweep');
  });
});

describe('reconciliation with what RabbitMQ dead-letters by itself (real PostgreSQL and RabbitMQ)', () => {
  let t: TestDatabase;
  let vhost: Disposable<string>;
  let queue: AmqpJobQueue;
  let h: Awaited<ReturnType<typeof testJobsContext>>;

  before(async () => {
    t = await postgres.open();
    vhost = await createTestVhost();
    queue = await AmqpJobQueue.connect(vhost.value, { prefix: 'rmtest', deliveryLimit: 1 });
    h = await testJobsContext(t, { queue: async () => queue, settings: { leaseMs: 300 } });
    await h.ctx.repos.tenants.recordMember(scope, 'alice', ['editor']);
  });
  after(async () => {
    await queue.close();
    await vhost.dispose();
    await h.dispose();
    await t.dispose();
  });

  it('fails a row still running for a message the broker dead-lettered after workers died holding it; leaves the letter for a replay', async () => {
    const { job, document } = await seedIngest(h.ctx, scope);
    await relayOutbox(h.ctx, { jobIds: [job.id] });
    // Two workers take the message, claim the job and die without an ack: delivery limit 1 is exceeded.
    for (let i = 0; i < 2; i++) {
      const worker = await AmqpJobQueue.connect(vhost.value, { prefix: 'rmtest', deliveryLimit: 1 });
      let got = false;
      await worker.consume('ingest', async () => {
        await h.ctx.repos.jobs.claim(scope, job.id, `worker-${i}`, 300);
        got = true;
        await new Promise(() => undefined);
      }, { prefetch: 1 });
      await waitFor('a delivery', async () => got, 15_000);
      await worker.close();
    }
    await waitFor('the broker to dead-letter it', async () => (await queue.depth('ingest')).dead === 1, 15_000);
    await sleep(400); // the last lease lapses
    assert.equal((await h.ctx.repos.jobs.get(scope, job.id))!.status, 'running', 'the row does not know yet');

    assert.equal(await reconcileDeadLetters(h.ctx), 1);
    const failed = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(failed.status, 'failed');
    assert.equal(failed.errorCode, 'DEAD_LETTERED');
    assert.match(failed.error!, /delivery limit/);
    assert.equal((await h.ctx.repos.documents.get(scope, document.id))!.status, 'failed');
    assert.equal((await queue.depth('ingest')).dead, 1, 'the letter stays for a replay');
    assert.equal(await reconcileDeadLetters(h.ctx), 0, 'idempotent');
  });

  it('accepts a job while RabbitMQ is unreachable (outbox) and delivers it when the broker is back', async () => {
    const reachable = h.ctx.queue;
    let refused = 0;
    h.ctx.queue = () =>
      AmqpJobQueue.connect('amqp://guest:guest@127.0.0.1:1/none', { prefix: 'rmtest', deliveryLimit: 1 }).catch((err: unknown) => {
        refused++;
        throw err;
      });
    let result;
    try {
      const { payload } = await seedIngest(h.ctx, scope);
      result = await enqueueJob(h.ctx, scope, { type: 'ingest', payload: { ...payload, documentId: payload.documentId, contentHash: 'other-content' } });
      const jobId = result.job.id;
      // The api answered at once; its attempt to relay failed, the message stays in the outbox.
      await waitFor('the relay attempt to fail', async () => refused > 0, 15_000);
      assert.equal((await h.ctx.repos.outbox.listForJob(scope, jobId)).length, 1);
    } finally {
      h.ctx.queue = reachable;
    }
    assert.equal(result.created, true, 'accepted');
    assert.equal((await h.ctx.repos.outbox.listForJob(scope, result.job.id)).length, 1, 'its message waits in the outbox');

    const got: string[] = [];
    const consumer = await queue.consume('ingest', async ({ message }) => void got.push(message.jobId), { prefetch: 10 });
    assert.ok((await relayOutbox(h.ctx)).relayed >= 1);
    await waitFor('the message to arrive', async () => got.includes(result.job.id), 15_000);
    await consumer.close();
    assert.equal((await h.ctx.repos.outbox.listForJob(scope, result.job.id)).length, 0);
    assert.deepEqual(jobMessage(result.job, 1).jobId, result.job.id);
  });
});
