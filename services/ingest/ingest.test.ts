import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Role } from '../../lib/auth/jwt.ts';
import { tenantScope } from '../../lib/ports/tenant-scope.ts';
import { collectionFor } from '../../lib/ports/vector-store.ts';
import { ModelsRepository } from '../../lib/repositories/models.ts';
import type { RunningNode } from '../../boot.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../../test/support/embedded.ts';
import { httpJson } from '../../test/support/http.ts';
import { chunksOf, readSse, upload, waitForJob } from '../../test/support/ingest.ts';
import { waitFor } from '../../test/support/processes.ts';
import { PDFDocument } from 'pdf-lib';
import { scannedPdf, textPdf } from '../../test/fixtures/documents.ts';
import { artifactKeys } from './job-model.ts';

/**
 * Ingest end to end in the embedded profile: the real api, queue, pipeline, emb
 * (starter model) and stores in one process, driven over HTTP like a user would.
 */
describe('ingest (embedded profile)', () => {
  let embedded: EmbeddedNode;
  let node: RunningNode;
  let base: string;
  let editor: string;
  const token = (roles: Role[], tenantId = 'acme', userId = 'alice') => embedded.token(roles, userId, tenantId);

  before(async () => {
    // No patience with outages: the retry test takes emb away for good and expects the
    // attempts to run out (lib/jobs/worker.test.ts covers waiting an outage out).
    // OCR off (issue 9): no test here needs OCR but the one about pages without a text layer.
    embedded = await startEmbeddedNode({ OCR_ENABLED: 'false', JOB_BACKOFF_MS: '50', JOB_MAX_ATTEMPTS: '2', JOB_OUTAGE_PATIENCE_MS: '0', UPLOAD_MAX_BYTES: '2000000', CHUNK_TARGET_TOKENS: '64', CHUNK_OVERLAP_TOKENS: '8' });
    ({ node, base } = embedded);
    editor = await token(['editor']);
  });
  after(() => embedded.stop());

  const vectorCount = async (tenantId: string) => {
    const { knex } = await node.stores.db();
    const [active] = await new ModelsRepository(knex).listActive('embed');
    return (await node.stores.vectors()).count(tenantScope(tenantId), collectionFor(active!.flag.alias, active!.flag.activeVersion));
  };

  it('takes a Markdown file to ready: chunks hold its text, vectors match the chunks, status streams over SSE', async () => {
    const text = '# Vacation policy\n\nEmployees get twenty-eight days of paid vacation per year.\n\n## Sick leave\n\nSick leave needs a doctor\'s note after three days.';
    const res = await upload(base, editor, { name: 'policy.md', content: text, type: 'text/markdown' }, { tags: 'hr,policy', source_id: 'hr/policy' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.duplicate, false);
    assert.equal(res.body.job.status, 'queued');
    assert.deepEqual(res.body.document.tags, ['hr', 'policy']);

    const events = await readSse(`${base}/api/v1/documents/${res.body.document.id}/events`, editor, (evs) =>
      evs.some((e) => e.event === 'job' && ['ready', 'failed'].includes(e.data.status)),
    );
    const statuses = events.filter((e) => e.event === 'job').map((e) => e.data.status);
    assert.equal(statuses.at(-1), 'ready', JSON.stringify(events));

    const chunks = await chunksOf(base, editor, res.body.document.id);
    const all = chunks.map((c) => c.text).join('\n');
    assert.match(all, /twenty-eight days of paid vacation/);
    assert.match(all, /doctor's note after three days/);
    assert.ok(chunks.every((c) => c.lang === 'en'));
    const doc = await httpJson(`${base}/api/v1/documents/${res.body.document.id}`, { token: editor });
    assert.equal(doc.body.status, 'ready');
    assert.equal(await vectorCount('acme'), chunks.length);
  });

  it('with OCR off, a scanned page is marked in the document (pagesWithoutText) and a file that is only a scan fails with NO_TEXT saying why', async () => {
    // Page 1 has a text layer, page 2 is a scan.
    const mixed = await PDFDocument.create();
    for (const source of [await textPdf([['The delivery schedule is agreed every Monday morning.']]), await scannedPdf([['Scanned invoice number 4512']])]) {
      const from = await PDFDocument.load(source);
      for (const page of await mixed.copyPages(from, from.getPageIndices())) mixed.addPage(page);
    }
    const res = await upload(base, editor, { name: 'mixed.pdf', content: Buffer.from(await mixed.save()), type: 'application/pdf' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal((await waitForJob(base, editor, res.body.job.id)).status, 'ready');
    const doc = await httpJson(`${base}/api/v1/documents/${res.body.document.id}`, { token: editor });
    assert.deepEqual(doc.body.pagesWithoutText, [2]);
    assert.match((await chunksOf(base, editor, res.body.document.id)).map((c) => c.text).join('\n'), /delivery schedule/);

    const scan = await upload(base, editor, { name: 'scan.pdf', content: await scannedPdf([['Scanned invoice number 4512']]), type: 'application/pdf' });
    const failed = await waitForJob(base, editor, scan.body.job.id, ['failed']);
    assert.equal(failed.errorCode, 'NO_TEXT');
    assert.match(failed.error ?? '', /OCR is off/);
  });

  it("pushes every job of the user over one SSE stream, and nobody else's", async () => {
    const bob = await token(['editor'], 'acme', 'bob');
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    const mine = readSse(`${base}/api/v1/jobs/events`, editor, (evs) => {
      if (evs.some((e) => e.event === 'meta')) opened();
      return evs.some((e) => e.event === 'job' && e.data.status === 'ready');
    });
    await open; // the stream is open (its first event came) before the uploads
    const theirs = await upload(base, bob, { name: 'bob.txt', content: 'Bob writes about quarterly budgets.' });
    const res = await upload(base, editor, { name: 'stream.txt', content: 'Alice writes about the live status stream.' });
    const events = (await mine).filter((e) => e.event === 'job');
    assert.ok(events.every((e) => e.data.createdBy === 'alice' && e.data.tenantId === 'acme'));
    assert.ok(events.some((e) => e.data.id === res.body.job.id && e.data.status === 'ready'));
    assert.ok(!events.some((e) => e.data.id === theirs.body.job.id));
    await waitForJob(base, bob, theirs.body.job.id);
  });

  it('answers the same file again with the existing document, and keeps two tenants apart', async () => {
    const file = { name: 'a.txt', content: 'Договор аренды помещения заключён на один год.' };
    const first = await upload(base, editor, file);
    await waitForJob(base, editor, first.body.job.id);
    const again = await upload(base, editor, { ...file, name: 'renamed.txt' });
    assert.equal(again.status, 200);
    assert.equal(again.body.duplicate, true);
    assert.equal(again.body.document.id, first.body.document.id);

    const other = await token(['editor'], 'globex', 'bob');
    const theirs = await upload(base, other, file);
    assert.equal(theirs.status, 202);
    assert.notEqual(theirs.body.document.id, first.body.document.id);
    await waitForJob(base, other, theirs.body.job.id);
    assert.equal((await httpJson(`${base}/api/v1/documents/${theirs.body.document.id}`, { token: editor })).status, 404, 'acme cannot see globex');
    const ru = await chunksOf(base, other, theirs.body.document.id);
    assert.equal(ru[0]!.lang, 'ru');
  });

  it('refuses hostile uploads with a clear 4xx and keeps nothing', async () => {
    const before = (await httpJson(`${base}/api/v1/documents?limit=500`, { token: editor })).body.items.length;
    const empty = await upload(base, editor, { name: 'empty.txt', content: Buffer.alloc(0) });
    assert.equal(empty.status, 400);
    assert.equal(empty.body.error.code, 'EMPTY_FILE');
    const big = await upload(base, editor, { name: 'big.txt', content: Buffer.alloc(2_100_000, 0x61) });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'FILE_TOO_LARGE');
    const exe = await upload(base, editor, { name: 'notes.txt', content: Buffer.concat([Buffer.from('MZ\x90\x00\x03\x00\x00\x00'), Buffer.alloc(512, 0)]) });
    assert.equal(exe.status, 415, JSON.stringify(exe.body));
    const notMultipart = await httpJson(`${base}/api/v1/documents`, { method: 'POST', token: editor, body: 'x', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(notMultipart.status, 415);
    const viewer = await upload(base, await token(['viewer']), { name: 'x.txt', content: 'hello' });
    assert.equal(viewer.status, 403);

    // A path in the file name is just a name: stored as metadata, never as a path.
    const tricky = await upload(base, editor, { name: '../../etc/x.txt', content: 'path trick content' });
    assert.equal(tricky.status, 202);
    assert.equal(tricky.body.document.filename, 'x.txt');
    await waitForJob(base, editor, tricky.body.job.id);

    const after = (await httpJson(`${base}/api/v1/documents?limit=500`, { token: editor })).body.items.length;
    assert.equal(after, before + 1, 'only the path-trick upload became a document');
    const objects = await node.stores.objects();
    let stray = 0;
    for await (const o of objects.list('tenants/acme/uploads/')) {
      const referenced = (await (await node.stores.db()).knex('documents').where({ object_key: o.key }).first()) !== undefined;
      if (!referenced) stray++;
    }
    assert.equal(stray, 0, 'no uploaded bytes left behind by refused files');
  });

  it('replaces the chunks of a new version of a source, and deletes everything of a deleted document', async () => {
    const v1 = await upload(base, editor, { name: 'faq.txt', content: 'Version one says the office opens at nine.' }, { source_id: 'faq' });
    await waitForJob(base, editor, v1.body.job.id);
    const v2 = await upload(base, editor, { name: 'faq.txt', content: 'Version two says the office opens at ten.' }, { source_id: 'faq' });
    assert.equal(v2.body.document.id, v1.body.document.id, 'same source, same document');
    const done = await waitForJob(base, editor, v2.body.job.id);
    assert.equal(done.status, 'ready');
    const chunks = await chunksOf(base, editor, v1.body.document.id);
    assert.ok(chunks.every((c) => !c.text.includes('Version one')));
    assert.ok(chunks.some((c) => c.text.includes('opens at ten')));
    const doc = (await httpJson(`${base}/api/v1/documents/${v1.body.document.id}`, { token: editor })).body;
    assert.equal(doc.version, 2);

    const vectorsBefore = await vectorCount('acme');
    const del = await httpJson(`${base}/api/v1/documents/${v1.body.document.id}`, { method: 'DELETE', token: editor });
    assert.equal(del.status, 200);
    assert.equal(await vectorCount('acme'), vectorsBefore - chunks.length);
    assert.equal((await httpJson(`${base}/api/v1/documents/${v1.body.document.id}`, { token: editor })).status, 404);
    const objects = await node.stores.objects();
    for await (const o of objects.list(`tenants/acme/documents/${v1.body.document.id}/`)) assert.fail(`left behind: ${o.key}`);
    const audit = await (await node.stores.db()).knex('audit_log').where({ tenant_id: 'acme', action: 'document.delete' });
    assert.equal(audit.length, 1);
  });

  it('leaves the search tables analyzed (and, with no autovacuum in PGlite, vacuumed) after an ingest', async () => {
    // Words enough for a few hundred postings: more than the 50 changed rows that make
    // the upkeep analyze (lib/search/upkeep.ts).
    const words = ['ledger', 'invoice', 'pallet', 'freight', 'customs', 'tariff', 'courier', 'warehouse', 'manifest', 'consignment', 'dispatch', 'carrier'];
    const text = Array.from({ length: 60 }, (_, i) => `Line ${i}: the ${words[i % words.length]} of the ${words[(i * 7) % words.length]} shipment ${i * 13} is checked.`).join('\n\n');
    const res = await upload(base, editor, { name: 'shipping.md', content: text, type: 'text/markdown' }, { source_id: 'shipping' });
    assert.equal((await waitForJob(base, editor, res.body.job.id)).status, 'ready');
    const { knex } = await node.stores.db();
    const postings = Number((await knex('search_postings').where({ tenant_id: 'acme' }).count({ n: '*' }))[0]!.n);
    assert.ok(postings > 100, `${postings} postings`);
    // The check runs a debounce after the commit; then the planner knows the table.
    const state = await waitFor('the upkeep after ingest', async () => {
      const { rows } = await knex.raw(
        `select c.reltuples::float8 as planned, c.relpages::int as pages, c.relallvisible::int as "allVisible",
                (select count(*) from pg_stats where tablename = 'search_postings')::int as statistics,
                (select count(*) from search_postings)::int as total
         from pg_class c where c.oid = 'search_postings'::regclass`,
      );
      const r = rows[0] as { planned: number; pages: number; allVisible: number; statistics: number; total: number };
      return r.statistics > 0 && r.planned >= 0.9 * r.total && r.allVisible === r.pages ? r : null;
    });
    assert.ok(state.pages > 0);

    // A delete through the api (not ingest) changes as many rows: the upkeep hears of
    // it by the mesh event and analyzes again.
    const analyses = async () => Number((await knex.raw(`select analyze_count::int as n from pg_stat_user_tables where relname = 'search_postings'`)).rows[0].n);
    const before = await analyses();
    assert.equal((await httpJson(`${base}/api/v1/documents/${res.body.document.id}`, { method: 'DELETE', token: editor })).status, 200);
    await waitFor('the upkeep after a delete', async () => (await analyses()) > before);
  });

  it('retries a failed embed step without re-running extract, and dead-letters a poison file with its reason', async () => {
    // Take emb away: the embed step fails (503, retryable) until attempts run out.
    const emb = node.broker.getLocalService('emb')!;
    await node.broker.destroyService(emb);
    const res = await upload(base, editor, { name: 'retry.txt', content: 'Resumable ingest keeps what extract produced.' });
    const failed = await waitForJob(base, editor, res.body.job.id, ['failed']);
    assert.equal(failed.step, 'embed');
    assert.equal(failed.attempts, 2);
    const objects = await node.stores.objects();
    const extracted = artifactKeys('acme', res.body.document.id, 1).extracted;
    const stamp = (await objects.stat(extracted))!.lastModified.getTime();

    const dead = await httpJson(`${base}/api/v1/admin/dead-letters`, { token: await token(['admin']) });
    assert.ok(dead.body.items.some((d: { jobId: string }) => d.jobId === res.body.job.id));

    const { SERVICE_FACTORIES } = await import('../index.ts');
    node.broker.createService(SERVICE_FACTORIES.emb(node.runtime));
    await node.broker.waitForServices(['emb']);
    await waitFor('emb to load its model', async () => ((await node.broker.call('emb.models')) as unknown[]).length > 0);

    const retried = await httpJson(`${base}/api/v1/jobs/${res.body.job.id}/retry`, { method: 'POST', token: editor });
    assert.equal(retried.status, 202);
    const ready = await waitForJob(base, editor, res.body.job.id);
    assert.equal(ready.status, 'ready');
    assert.equal((await objects.stat(extracted))?.lastModified.getTime() ?? stamp, stamp, 'extract did not run again');
    const after = await httpJson(`${base}/api/v1/admin/dead-letters`, { token: await token(['admin']) });
    assert.ok(!after.body.items.some((d: { jobId: string }) => d.jobId === res.body.job.id), 'its dead letter was taken back');

    // A file the extractor cannot read: no retry helps, it lands in the dead letters with the reason.
    const poison = await upload(base, editor, { name: 'broken.pdf', content: Buffer.from('%PDF-1.7\n1 0 obj << /Type /Catalog') });
    const poisoned = await waitForJob(base, editor, poison.body.job.id, ['failed']);
    assert.equal(poisoned.attempts, 1, 'a 4xx is not retried');
    assert.ok(poisoned.error);
    const letters = (await httpJson(`${base}/api/v1/admin/dead-letters`, { token: await token(['admin']) })).body.items;
    const letter = letters.find((d: { jobId: string }) => d.jobId === poison.body.job.id);
    assert.ok(letter, JSON.stringify(letters));
    assert.match(letter.reason, /^[A-Z_]+: /);
    assert.equal((await chunksOf(base, editor, poison.body.document.id)).length, 0);

    const replay = await httpJson(`${base}/api/v1/admin/dead-letters/${poison.body.job.id}/replay`, { method: 'POST', token: await token(['admin']) });
    assert.equal(replay.status, 200);
    assert.equal((await waitForJob(base, editor, poison.body.job.id, ['failed'])).status, 'failed', 'still poison after a replay');
    assert.equal((await httpJson(`${base}/api/v1/admin/dead-letters`, { token: editor })).status, 403, 'admins only');
  });

  it('accepts an upload by presigned PUT, then complete', async () => {
    const created = await httpJson(`${base}/api/v1/uploads`, { method: 'POST', token: editor });
    assert.equal(created.status, 201);
    const put = await fetch(new URL(created.body.url, base), { method: 'PUT', body: 'Uploaded straight to storage, then confirmed.' });
    assert.equal(put.status, 200);
    const forged = await fetch(new URL(created.body.url.replace(/signature=[^&]+/, 'signature=forged'), base), { method: 'PUT', body: 'x' });
    assert.equal(forged.status, 403);
    const done = await httpJson(`${base}/api/v1/uploads/${created.body.uploadId}/complete`, {
      method: 'POST',
      token: editor,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ filename: 'direct.txt', tags: ['direct'] }),
    });
    assert.equal(done.status, 202, JSON.stringify(done.body));
    assert.equal((await waitForJob(base, editor, done.body.job.id)).status, 'ready');
  });
});
