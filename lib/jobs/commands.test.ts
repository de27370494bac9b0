import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { storeAnswer } from '../llm/answer-cache.ts';
import { tenantScope } from '../ports/tenant-scope.ts';
import { DATABASE_BACKENDS, type TestDatabase } from '../../test/support/databases.ts';
import { seedIngest, testJobsContext } from '../../test/support/jobs.ts';
import { waitFor } from '../../test/support/processes.ts';
import { cancelJob, deleteDocument, enqueueJob, relayOutbox, replayDeadLetter, retryJob, settleDocumentStatus } from './commands.ts';
import { jobMessage } from './message.ts';
import { payloadOf } from './registry.ts';
import type { IngestPayload } from './types/ingest.ts';

const ALICE = { userId: 'alice', requestId: 'req-commands-test' };

for (const backend of DATABASE_BACKENDS) {
  describe(`job commands on ${backend.name}`, () => {
    let t: TestDatabase;
    let h: Awaited<ReturnType<typeof testJobsContext>>;
    const scope = tenantScope('acme');
    const other = tenantScope('globex');

    before(async () => {
      t = await backend.open();
      h = await testJobsContext(t);
      await h.ctx.repos.tenants.recordMember(scope, 'alice', ['editor']);
      await h.ctx.repos.tenants.recordMember(other, 'bob', ['editor']);
    });
    after(async () => {
      await h.dispose();
      await t.dispose();
    });

    it('enqueue: one job and one message per input, the message relayed and removed from the outbox', async () => {
      const { job, payload } = await seedIngest(h.ctx, scope);
      assert.equal((await h.ctx.repos.outbox.listForJob(scope, job.id)).length, 1, 'the message commits with the job');
      assert.deepEqual(await relayOutbox(h.ctx, { jobIds: [job.id] }), { relayed: 1, failed: 0 });
      assert.equal((await h.ctx.repos.outbox.listForJob(scope, job.id)).length, 0);
      assert.equal((await h.memoryQueue.depth('ingest')).ready, 1);

      const again = await enqueueJob(h.ctx, scope, { type: 'ingest', payload, createdBy: 'alice' });
      assert.equal(again.created, false);
      assert.equal(again.job.id, job.id);
      assert.equal((await h.memoryQueue.depth('ingest')).ready, 1, 'no second message for the same input');
      assert.deepEqual(payloadOf(again.job, 'ingest'), payload, 'the stored payload reads back validated');
    });

    it('enqueue: refuses a payload that does not match its type, and writes nothing', async () => {
      const before = await h.ctx.repos.outbox.count();
      await assert.rejects(
        // @ts-expect-error a run-time check for callers outside TypeScript's reach
        () => enqueueJob(h.ctx, scope, { type: 'ingest', payload: { documentId: 'x' } }),
        { type: 'INVALID_JOB_PAYLOAD' },
      );
      await assert.rejects(() => enqueueJob(h.ctx, scope, { type: 'nope' as 'ingest', payload: {} as IngestPayload }), { type: 'UNKNOWN_JOB_TYPE' });
      assert.equal(await h.ctx.repos.outbox.count(), before);
    });

    it('cancel: a queued job is canceled at once and its new document follows; a finished one is a 409', async () => {
      const { job, document } = await seedIngest(h.ctx, scope);
      const result = await cancelJob(h.ctx, scope, job.id, ALICE);
      assert.equal(result.final, true);
      assert.equal(result.job.status, 'canceled');
      assert.equal((await h.ctx.repos.documents.get(scope, document.id))!.status, 'canceled');
      assert.ok(h.notify.cancels.includes(job.id));
      const entries = (await h.ctx.repos.audit.list(scope, { action: 'job.cancel', limit: 100 })).filter((e) => e.target === job.id);
      assert.equal(entries.length, 1, 'the cancel is audited');
      assert.equal(entries[0]!.actor, 'alice');
      assert.equal(entries[0]!.requestId, 'req-commands-test');
      await assert.rejects(() => cancelJob(h.ctx, scope, job.id, ALICE), { code: 409, type: 'JOB_FINISHED' });
      await assert.rejects(() => cancelJob(h.ctx, other, job.id, ALICE), { code: 404, type: 'JOB_NOT_FOUND' }, 'another tenant cannot see it');
    });

    it('cancel: a running job is asked to stop (202) and stays running until its worker stops', async () => {
      const { job } = await seedIngest(h.ctx, scope);
      await h.ctx.repos.jobs.claim(scope, job.id, 'worker-1', 60_000);
      const result = await cancelJob(h.ctx, scope, job.id, ALICE);
      assert.equal(result.final, false);
      assert.equal(result.job.status, 'running');
      assert.equal(result.job.cancelRequested, true);
    });

    it('retry: a failed job is queued again with its message, and its dead letter taken out', async () => {
      const { job, document } = await seedIngest(h.ctx, scope);
      await relayOutbox(h.ctx, { jobIds: [job.id] });
      await h.ctx.repos.jobs.claim(scope, job.id, 'worker-1', 60_000);
      await h.ctx.repos.jobs.transition(scope, job.id, 'failed', { error: 'emb down', errorCode: 'UNAVAILABLE' });
      await h.memoryQueue.deadLetter('ingest', jobMessage(job, 1), 'UNAVAILABLE: emb down');
      const readyBefore = (await h.memoryQueue.depth('ingest')).ready;

      const queued = await retryJob(h.ctx, scope, job.id, ALICE);
      assert.equal(queued.status, 'queued');
      assert.equal(queued.attempts, 0);
      assert.equal(queued.error, null);
      assert.equal((await h.ctx.repos.documents.get(scope, document.id))!.status, 'queued');
      assert.equal((await h.memoryQueue.listDeadLetters('ingest', 100)).some((l) => l.message.jobId === job.id), false);
      // The message is relayed after the answer (the outbox holds it): exactly one new one.
      await waitFor('the retried job\'s message, out of the outbox', async () => (await h.ctx.repos.outbox.listForJob(scope, job.id)).length === 0, 10_000);
      assert.equal((await h.memoryQueue.depth('ingest')).ready, readyBefore + 1);
      await assert.rejects(() => retryJob(h.ctx, scope, job.id, ALICE), { code: 409, type: 'JOB_NOT_RETRYABLE' });
      const entries = (await h.ctx.repos.audit.list(scope, { action: 'job.retry', limit: 100 })).filter((e) => e.target === job.id);
      assert.equal(entries.length, 1, 'the retry is audited once; the refused second one is not');
      assert.deepEqual([entries[0]!.actor, entries[0]!.details?.from, entries[0]!.details?.errorCode], ['alice', 'failed', 'UNAVAILABLE']);
    });

    it('retry: a job whose document was deleted is a 409', async () => {
      const { job, document } = await seedIngest(h.ctx, scope);
      await cancelJob(h.ctx, scope, job.id, ALICE);
      await h.ctx.repos.documents.delete(scope, document.id);
      await assert.rejects(() => retryJob(h.ctx, scope, job.id, ALICE), { code: 409, type: 'DOCUMENT_DELETED' });
    });

    it('replay: takes the dead letter and queues the job; without a letter it is a 404 and nothing changes', async () => {
      const { job } = await seedIngest(h.ctx, scope);
      await h.ctx.repos.jobs.claim(scope, job.id, 'worker-1', 60_000);
      await h.ctx.repos.jobs.transition(scope, job.id, 'failed', { error: 'bad pdf', errorCode: 'UNREADABLE_FILE' });
      await assert.rejects(() => replayDeadLetter(h.ctx, scope, job.id, { userId: 'root' }), { code: 404, type: 'DEAD_LETTER_NOT_FOUND' });
      assert.equal((await h.ctx.repos.jobs.get(scope, job.id))!.status, 'failed');

      await h.memoryQueue.deadLetter('ingest', jobMessage(job, 1), 'UNREADABLE_FILE: bad pdf');
      const result = await replayDeadLetter(h.ctx, scope, job.id, { userId: 'root', requestId: 'req-1' });
      assert.equal(result.job.status, 'queued');
      assert.equal(result.replayed.reason, 'UNREADABLE_FILE: bad pdf');
      assert.equal((await h.memoryQueue.listDeadLetters('ingest', 100)).some((l) => l.message.jobId === job.id), false);
      const [audit] = await h.ctx.repos.audit.list(scope, 1);
      assert.equal(audit!.action, 'dead-letter.replay');
      assert.equal(audit!.target, job.id);
    });

    it('replay: a row the broker dead-lettered by itself (still running, lease lapsed) is replayed too', async () => {
      const { job } = await seedIngest(h.ctx, scope);
      await h.ctx.repos.jobs.claim(scope, job.id, 'dead-worker', 1);
      await new Promise((r) => setTimeout(r, 20)); // the 1 ms lease lapses
      await h.memoryQueue.deadLetter('ingest', jobMessage(job, 3), 'the worker died on every delivery (delivery limit reached)');
      const result = await replayDeadLetter(h.ctx, scope, job.id, { userId: 'root' });
      assert.equal(result.job.status, 'queued');
    });

    it('settle: a new document takes its job\'s fate; one with an indexed version stays ready', async () => {
      const { job, document } = await seedIngest(h.ctx, scope);
      assert.equal(await settleDocumentStatus(h.ctx, scope, job, 'failed'), 'failed');
      assert.equal((await h.ctx.repos.documents.get(scope, document.id))!.status, 'failed');

      // Version 2 of a ready document fails: version 1 still answers.
      const { job: v2 } = await seedIngest(h.ctx, scope, { documentId: document.id, version: 2, contentHash: 'hash-of-v2' });
      assert.equal(await settleDocumentStatus(h.ctx, scope, v2, 'canceled'), 'ready');
      assert.equal((await h.ctx.repos.documents.get(scope, document.id))!.status, 'ready');
    });

    it('delete: the row, chunks, files, artifacts and cached answers go; open jobs are canceled; audit kept', async () => {
      const { job, document } = await seedIngest(h.ctx, scope);
      await h.ctx.repos.chunks.insertMany(scope, document.id, [
        { ord: 0, text: 'one', tokenCount: 1, lang: 'en', contentHash: 'c1', page: 1, heading: null },
        { ord: 1, text: 'two', tokenCount: 1, lang: 'en', contentHash: 'c2', page: 1, heading: null },
      ]);
      await h.objects.put(document.objectKey!, Buffer.from('hello'));
      await h.objects.put(`tenants/acme/documents/${document.id}/v1/extracted.json`, Buffer.from('{}'));
      await storeAnswer(h.kv, scope, `answers:acme:d${document.id.replaceAll('-', '')}`, [document.id], 'a cached answer citing it');

      const result = await deleteDocument(h.ctx, scope, document.id, { userId: 'alice' });
      assert.deepEqual(result.removed, { chunks: 2, objects: 2, collections: 0, canceledJobs: 1 });
      assert.equal(await h.ctx.repos.documents.get(scope, document.id), null);
      assert.equal(await h.ctx.repos.chunks.countByDocument(scope, document.id), 0);
      assert.equal(await h.objects.stat(document.objectKey!), null);
      let left = 0;
      for await (const _ of h.objects.list(`tenants/acme/documents/${document.id}/`)) left++;
      assert.equal(left, 0);
      assert.equal(await h.kv.get(`answers:acme:d${document.id.replaceAll('-', '')}`), null, 'cached answers citing it are gone');
      assert.ok(h.notify.cancels.includes(job.id));
      assert.equal((await h.ctx.repos.jobs.get(scope, job.id))!.cancelRequested, true);
      assert.equal((await h.ctx.repos.audit.list(scope, 1))[0]!.action, 'document.delete');
      await assert.rejects(() => deleteDocument(h.ctx, scope, document.id, { userId: 'alice' }), { code: 404, type: 'DOCUMENT_NOT_FOUND' });
    });
  });
}
