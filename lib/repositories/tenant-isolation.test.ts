import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { tenantScope, type TenantScope } from '../ports/tenant-scope.ts';
import { DATABASE_BACKENDS, type TestDatabase } from '../../test/support/databases.ts';
import { AuditRepository } from './audit.ts';
import { ChatsRepository } from './chats.ts';
import { ChunksRepository } from './chunks.ts';
import { DocumentsRepository } from './documents.ts';
import { JobsRepository } from './jobs.ts';
import { TenantsRepository } from './tenants.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

for (const backend of DATABASE_BACKENDS) {
  describe(`repositories on ${backend.name}`, () => {
    let t: TestDatabase;
    let repos: {
      tenants: TenantsRepository;
      documents: DocumentsRepository;
      chunks: ChunksRepository;
      jobs: JobsRepository;
      chats: ChatsRepository;
      audit: AuditRepository;
    };
    const A = tenantScope('acme');
    const B = tenantScope('globex');

    /** Small factory: one tenant with a document, two chunks, a job, a chat with a message and an audit row. */
    async function seed(scope: TenantScope, text: string) {
      await repos.tenants.recordMember(scope, 'alice', ['editor']);
      const { document } = await repos.documents.create(scope, {
        sourceId: 'handbook',
        mime: 'text/plain',
        sizeBytes: text.length,
        contentHash: sha(text),
        tags: ['hr'],
      });
      const chunks = await repos.chunks.insertMany(scope, document.id, [
        { ord: 0, text, page: 1, lang: 'en', contentHash: sha(`${text}0`), tokenCount: 3 },
        { ord: 1, text: `${text} again`, page: 2, lang: 'en', contentHash: sha(`${text}1`), tokenCount: 4 },
      ]);
      const { job } = await repos.jobs.create(scope, { type: 'ingest', idempotencyKey: `handbook:${sha(text)}:extract`, documentId: document.id });
      const chat = await repos.chats.create(scope, 'alice', 'Questions');
      await repos.chats.addMessage(scope, chat.id, { role: 'user', content: `about ${text}?` });
      await repos.audit.record(scope, { actor: 'alice', action: 'document.upload', target: document.id });
      return { document, chunks, job, chat };
    }

    let a: Awaited<ReturnType<typeof seed>>;
    let b: Awaited<ReturnType<typeof seed>>;

    before(async () => {
      t = await backend.open();
      const k = t.db.knex;
      repos = {
        tenants: new TenantsRepository(k),
        documents: new DocumentsRepository(k),
        chunks: new ChunksRepository(k),
        jobs: new JobsRepository(k),
        chats: new ChatsRepository(k),
        audit: new AuditRepository(k),
      };
      // The same user id and the same file in both tenants: isolation must not rely on distinct ids.
      a = await seed(A, 'vacation policy');
      b = await seed(B, 'vacation policy');
    });
    after(() => t.dispose());

    it("never returns tenant B's rows to a read scoped to tenant A", async () => {
      assert.deepEqual((await repos.documents.list(A, { limit: 100 })).map((d) => d.id), [a.document.id]);
      assert.equal(await repos.documents.get(A, b.document.id), null);
      assert.equal((await repos.documents.findByContentHash(A, sha('vacation policy')))?.id, a.document.id);
      assert.equal((await repos.documents.findBySource(A, 'handbook'))?.id, a.document.id);
      assert.deepEqual(await repos.chunks.listByDocument(A, b.document.id), []);
      assert.deepEqual(await repos.chunks.getMany(A, b.chunks.map((c) => c.id)), []);
      assert.equal((await repos.chunks.listByDocument(A, a.document.id)).length, 2);
      assert.equal(await repos.jobs.get(A, b.job.id), null);
      assert.deepEqual((await repos.jobs.list(A, { limit: 100 })).map((j) => j.id), [a.job.id]);
      assert.equal(await repos.chats.get(A, 'alice', b.chat.id), null);
      assert.deepEqual((await repos.chats.list(A, 'alice')).map((c) => c.id), [a.chat.id]);
      assert.deepEqual(await repos.chats.listMessages(A, b.chat.id), []);
      assert.deepEqual((await repos.tenants.listMembers(A)).map((m) => m.tenantId), ['acme']);
      assert.ok((await repos.audit.list(A)).every((r) => r.tenantId === 'acme'));
    });

    it("never lets tenant A change or delete tenant B's rows", async () => {
      assert.equal(await repos.documents.setStatus(A, b.document.id, 'failed'), false);
      assert.equal(await repos.documents.delete(A, b.document.id), null);
      assert.equal(await repos.chunks.deleteByDocument(A, b.document.id), 0);
      assert.equal(await repos.jobs.transition(A, b.job.id, 'running'), null);
      assert.equal(await repos.jobs.requestCancel(A, b.job.id), false);
      assert.equal(await repos.chats.rename(A, 'alice', b.chat.id, 'stolen'), null);
      assert.equal(await repos.chats.delete(A, 'alice', b.chat.id), false);
      // B's rows are untouched.
      assert.equal((await repos.documents.get(B, b.document.id))?.status, 'queued');
      assert.equal((await repos.chunks.listByDocument(B, b.document.id)).length, 2);
      assert.equal((await repos.jobs.get(B, b.job.id))?.status, 'queued');
      assert.equal((await repos.chats.get(B, 'alice', b.chat.id))?.title, 'Questions');
      // …and B itself can: the counts are real counts on both backends.
      assert.equal(await repos.chunks.deleteByDocument(B, b.document.id), 2);
      assert.equal((await repos.documents.delete(B, b.document.id))?.id, b.document.id);
    });

    it("refuses, in the database itself, a chunk or message that points at another tenant's row", async () => {
      await assert.rejects(() =>
        repos.chunks.insertMany(A, b.document.id, [{ ord: 9, text: 'x', lang: 'simple', contentHash: sha('x'), tokenCount: 1 }]),
      );
      await assert.rejects(() => repos.chats.addMessage(A, b.chat.id, { role: 'user', content: 'hi' }));
    });

    it('deduplicates documents by content hash and jobs by idempotency key, per tenant', async () => {
      const again = await repos.documents.create(A, { sourceId: 'other', mime: 'text/plain', sizeBytes: 15, contentHash: sha('vacation policy') });
      assert.equal(again.created, false);
      assert.equal(again.document.id, a.document.id);
      const job = await repos.jobs.create(A, { type: 'ingest', idempotencyKey: a.job.idempotencyKey });
      assert.equal(job.created, false);
      assert.equal(job.job.id, a.job.id);
    });

    it('moves jobs only along the state machine', async () => {
      const { job } = await repos.jobs.create(A, { type: 'ingest', idempotencyKey: 'sm-test' });
      assert.equal(await repos.jobs.transition(A, job.id, 'ready'), null, 'queued → ready is not allowed');
      const running = await repos.jobs.transition(A, job.id, 'running', { step: 'extract', attempts: 1 });
      assert.equal(running?.status, 'running');
      assert.ok(running?.startedAt);
      assert.equal((await repos.jobs.reportProgress(A, job.id, 'chunk', 0.5))?.progress, 0.5);
      const failed = await repos.jobs.transition(A, job.id, 'failed', { error: 'embed timed out', errorCode: 'EMBED_TIMEOUT' });
      assert.equal(failed?.status, 'failed');
      assert.equal(failed?.step, 'chunk');
      assert.ok(failed?.finishedAt);
      assert.equal(await repos.jobs.reportProgress(A, job.id, 'embed', 0.9), null, 'no progress once failed');
      const retried = await repos.jobs.transition(A, job.id, 'queued');
      assert.equal(retried?.finishedAt, null);
      await repos.jobs.transition(A, job.id, 'running');
      assert.equal((await repos.jobs.transition(A, job.id, 'ready'))?.status, 'ready');
      assert.equal(await repos.jobs.transition(A, job.id, 'queued'), null, 'ready is final');
    });

    it('indexes chunk text for Russian and English full-text search', async () => {
      const scope = tenantScope('fts');
      await repos.tenants.recordMember(scope, 'u', ['viewer']);
      const { document } = await repos.documents.create(scope, { sourceId: 's', mime: 'text/plain', sizeBytes: 1, contentHash: sha('fts') });
      await repos.chunks.insertMany(scope, document.id, [
        { ord: 0, text: 'Стороны подписали договор аренды', lang: 'ru', contentHash: sha('ru'), tokenCount: 4 },
        { ord: 1, text: 'The parties were running late', lang: 'en', contentHash: sha('en'), tokenCount: 5 },
      ]);
      const match = async (config: string, q: string) =>
        (
          await t.db.knex('chunks')
            .where({ tenant_id: 'fts' })
            .whereRaw(`tsv @@ plainto_tsquery(?::regconfig, ?)`, [config, q])
            .pluck('ord')
        ).sort();
      assert.deepEqual(await match('russian', 'договора'), [0], 'an inflected Russian form matches');
      assert.deepEqual(await match('english', 'run'), [1], 'an English stem matches');
      const plan = await t.db.knex.raw(`select indexdef from pg_indexes where indexname = 'chunks_tsv_gin'`);
      assert.match(plan.rows[0].indexdef, /USING gin/);
    });
  });
}
