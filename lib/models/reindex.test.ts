import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { appError } from '../errors.ts';
import { cancelJob, relayOutbox, retryJob } from '../jobs/commands.ts';
import { jobMessage } from '../jobs/message.ts';
import { runJobDelivery } from '../jobs/worker.ts';
import { collectionFor, type VectorPoint } from '../ports/vector-store.ts';
import { tenantScope } from '../ports/tenant-scope.ts';
import type { JobRow } from '../repositories/jobs.ts';
import { DATABASE_BACKENDS, type TestDatabase } from '../../test/support/databases.ts';
import { seedIngest, testJobsContext } from '../../test/support/jobs.ts';
import * as migration from '../../migrations/2026120110_reindex_jobs.ts';
import { reindexHandler, stageReindex, type ReindexDeps } from './reindex.ts';

const postgres = DATABASE_BACKENDS.find((b) => b.name === 'postgres')!;
const DIM = 4;
const BATCH = 5;
const CHUNKS = 23;

/** A stand-in embedder: a vector per text, derived from it (the model is not what is tested here). */
const fakeEmbed = (texts: string[]) => ({ dimension: DIM, vectors: texts.map((t) => [t.length, 1, 2, 3]) });

describe('re-index as a job of the job module (real PostgreSQL)', () => {
  let t: TestDatabase;
  let h: Awaited<ReturnType<typeof testJobsContext>>;
  const scope = tenantScope('acme');
  let version = 0;

  before(async () => {
    t = await postgres.open();
    // A long lease: its heartbeat (every third of it) never runs within a test, so a lapse is made, not waited for.
    h = await testJobsContext(t, { settings: { maxAttempts: 3, backoffMs: 10, leaseMs: 60_000 } });
    await h.ctx.repos.tenants.recordMember(scope, 'admin', ['admin']);
    const { document } = await seedIngest(h.ctx, scope);
    await h.ctx.repos.chunks.insertMany(
      scope,
      document.id,
      Array.from({ length: CHUNKS }, (_, i) => ({ ord: i, text: `chunk number ${i} ${'x'.repeat(i)}`, lang: 'en' as const, contentHash: `h${i}`, tokenCount: 3 })),
    );
  });
  after(async () => {
    await h.dispose();
    await t.dispose();
  });

  /** A new version to re-index to, started the way `models reindex` starts it. */
  async function start(): Promise<{ alias: string; version: string; job: JobRow }> {
    const target = { alias: 'e5', version: String(++version) };
    const { stagedJobId } = await h.ctx.repos.transaction((trx) => stageReindex(h.ctx, scope, target, 'admin', trx));
    assert.ok(stagedJobId, 'a job was staged');
    await relayOutbox(h.ctx, { jobIds: [stagedJobId] });
    return { ...target, job: (await h.ctx.repos.jobs.get(scope, stagedJobId))! };
  }

  function deps(over: Partial<ReindexDeps> = {}): ReindexDeps {
    return { repos: h.ctx.repos, vectors: h.ctx.vectors, batch: BATCH, logger: h.ctx.logger, embed: async (_a, _v, texts) => fakeEmbed(texts), ...over };
  }
  const deliver = (job: JobRow, d: ReindexDeps, workerId = 'maint-1') => runJobDelivery(h.ctx, reindexHandler(d), { message: jobMessage(job, 1), redelivered: false }, { workerId, running: new Map(), cancelPollMs: 50 });
  const row = (alias: string, v: string) => h.ctx.repos.modelReindex.get(alias, v, scope.tenantId);
  const vectorsOf = async (alias: string, v: string) => (await h.ctx.vectors()).count(scope, collectionFor(alias, v));

  it('a start stages one job per tenant; a second start while it is open adds none', async () => {
    const { alias, version: v, job } = await start();
    assert.equal(job.type, 'reindex');
    assert.equal(job.status, 'queued');
    assert.deepEqual(job.payload, { alias, version: v });
    assert.equal((await row(alias, v))!.jobId, job.id);
    const again = await h.ctx.repos.transaction((trx) => stageReindex(h.ctx, scope, { alias, version: v }, 'admin', trx));
    assert.equal(again.stagedJobId, null);
    assert.equal(again.row.jobId, job.id);
  });

  it('runs to the end: every chunk embedded once, counted once, the job ready and the row done', async () => {
    const { alias, version: v, job } = await start();
    const progress: number[] = [];
    await deliver(job, deps({ onProgress: (r) => progress.push(r.done) }));
    const done = (await row(alias, v))!;
    assert.equal(done.state, 'done');
    assert.equal(done.done, CHUNKS);
    assert.equal(done.total, CHUNKS);
    assert.equal(await vectorsOf(alias, v), CHUNKS);
    const finished = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(finished.status, 'ready');
    assert.equal(finished.progress, 1);
    assert.equal(progress.at(-1), CHUNKS, 'the last progress event says done');
  });

  it('a run killed between a write and its cursor update: the next worker takes over after the lease and redoes only that batch', async () => {
    const { alias, version: v, job } = await start();
    const vectors = await h.ctx.vectors();
    let upserts = 0;
    let release!: () => void;
    const stuck = new Promise<void>((resolve) => (release = resolve));
    let reachedStuck!: () => void;
    const atStuck = new Promise<void>((resolve) => (reachedStuck = resolve));
    // The first worker writes its third batch and then never gets to record it (as if killed there).
    const dying = deliver(job, deps({
      vectors: async () => ({
        ...vectors,
        ensureCollection: (c: Parameters<typeof vectors.ensureCollection>[0]) => vectors.ensureCollection(c),
        upsert: async (s: typeof scope, c: string, points: VectorPoint[]) => {
          await vectors.upsert(s, c, points);
          if (++upserts === 3) {
            reachedStuck();
            await stuck;
          }
        },
      }) as typeof vectors,
    }), 'maint-1');
    await atStuck;
    assert.equal((await row(alias, v))!.done, 2 * BATCH, 'two batches recorded before the kill');

    // While its lease is live nobody else takes the job; once it lapsed the next delivery does.
    await deliver(job, deps(), 'maint-2');
    assert.equal((await h.ctx.repos.jobs.get(scope, job.id))!.leaseOwner, 'maint-1');
    await h.ctx.repos.jobs.expireAllLeases();
    const embedded: string[] = [];
    await deliver(job, deps({ embed: async (_a, _v, texts) => (embedded.push(...texts), fakeEmbed(texts)) }), 'maint-2');
    const done = (await row(alias, v))!;
    assert.equal(done.state, 'done');
    assert.equal(done.done, CHUNKS, 'every chunk counted once');
    assert.equal(await vectorsOf(alias, v), CHUNKS, 'one vector per chunk');
    // First pass from the cursor (batch 3 again, then the rest), then the sweep pass over chunks created since the start: none.
    assert.equal(embedded.length, CHUNKS - 2 * BATCH, 'the resumed run redid only the unrecorded batch and what followed');
    const ready = (await h.ctx.repos.jobs.get(scope, job.id))!;
    assert.equal(ready.status, 'ready');
    assert.equal(ready.attempts, 2);

    // The killed worker comes back to life: it lost its lease, so it records nothing.
    release();
    await dying;
    assert.equal((await row(alias, v))!.done, CHUNKS);
    assert.equal((await h.ctx.repos.jobs.get(scope, job.id))!.status, 'ready');
  });

  it('a cancel stops the run at its next batch: job and row canceled, nothing recorded after', async () => {
    const { alias, version: v, job } = await start();
    const vectors = await h.ctx.vectors();
    let upserts = 0;
    // Asked while the second batch is being written (after the first was recorded).
    await deliver(job, deps({
      vectors: async () => ({
        ...vectors,
        ensureCollection: (c: Parameters<typeof vectors.ensureCollection>[0]) => vectors.ensureCollection(c),
        upsert: async (s: typeof scope, c: string, points: VectorPoint[]) => {
          if (++upserts === 2) {
            await h.ctx.repos.modelReindex.cancel(alias, v, scope.tenantId);
            await cancelJob(h.ctx, scope, job.id, { userId: 'admin' });
          }
          await vectors.upsert(s, c, points);
        },
      }) as typeof vectors,
    }));
    const canceled = (await row(alias, v))!;
    assert.equal(canceled.state, 'canceled');
    assert.equal(canceled.done, BATCH, 'the batch in flight at the cancel is not recorded');
    assert.equal((await h.ctx.repos.jobs.get(scope, job.id))!.status, 'canceled');
  });

  it('a permanent failure fails the job (dead letter) and its row; a retry of the job resumes the row from its cursor', async () => {
    const { alias, version: v, job } = await start();
    let batches = 0;
    await deliver(job, deps({
      embed: async (_a, _v, texts) => {
        if (++batches === 3) throw appError('MODEL_VERSION_NOT_FOUND', 'e5 is gone');
        return fakeEmbed(texts);
      },
    }));
    const failed = (await row(alias, v))!;
    assert.equal(failed.state, 'failed');
    assert.match(failed.error ?? '', /e5 is gone/);
    assert.equal(failed.done, 2 * BATCH);
    assert.equal((await h.ctx.repos.jobs.get(scope, job.id))!.status, 'failed');
    const deadLetters = await (await h.ctx.queue()).listDeadLetters('reindex', 100);
    assert.ok(deadLetters.some((l) => l.message.jobId === job.id), 'its message is in the dead letters');

    const queued = await retryJob(h.ctx, scope, job.id, { userId: 'admin' });
    const embedded: string[] = [];
    await deliver(queued, deps({ embed: async (_a, _v, texts) => (embedded.push(...texts), fakeEmbed(texts)) }));
    const done = (await row(alias, v))!;
    assert.equal(done.state, 'done');
    assert.equal(done.done, CHUNKS);
    assert.equal(embedded.length, CHUNKS - 2 * BATCH, 'resumed from the cursor');
  });

  it('the migration gives a re-index that was running a queued job and its message, and the job finishes it from its cursor', async () => {
    const { knex } = t.db;
    await migration.down(knex);
    await knex('model_reindex').insert({ alias: 'old', version: '7', tenant_id: scope.tenantId, state: 'running', total: CHUNKS, done: 0, started_by: 'admin' });
    await migration.up(knex);
    const carried = (await row('old', '7'))!;
    assert.ok(carried.jobId, 'the row names a job');
    const job = (await h.ctx.repos.jobs.get(scope, carried.jobId))!;
    assert.equal(job.type, 'reindex');
    assert.equal(job.status, 'queued');
    assert.deepEqual(job.payload, { alias: 'old', version: '7' });
    const published = h.memoryQueue.published.length;
    await relayOutbox(h.ctx, { jobIds: [job.id] });
    assert.equal(h.memoryQueue.published.at(-1)?.message.jobId, job.id, 'its message was in the outbox');
    assert.ok(h.memoryQueue.published.length > published);
    await deliver(job, deps());
    assert.equal((await row('old', '7'))!.state, 'done');
    assert.equal(await vectorsOf('old', '7'), CHUNKS);
  });
});
