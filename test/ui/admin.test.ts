/// <reference lib="dom" />
/**
 * The admin page in chromium against the real admin routes of an embedded node, one
 * section at a time, each action checked on the server afterwards: models (a version
 * refused until re-indexed, re-indexed with progress, switched, rolled back), API keys
 * (created in the UI, used against /v1, revoked), users' roles, the audit log, the
 * maintenance banner and its 503 on upload, dead-letter replay, backups, and what a
 * tenant_admin sees.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { buildManifest, writeManifest } from '../../lib/models/manifest.ts';
import { publishFolder } from '../../lib/models/publish.ts';
import { launchBrowser, withScreenshot, type TestBrowser } from '../support/browser.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../support/embedded.ts';
import { httpJson } from '../support/http.ts';
import { upload, waitForJob } from '../support/ingest.ts';
import { waitFor } from '../support/processes.ts';

const json = (body: unknown) => ({ headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

/** starter-ngram@2: the starter's engine with other n-gram lengths, published to the node's models bucket. */
async function publishStarterV2(embedded: EmbeddedNode): Promise<unknown> {
  const folder = path.join(embedded.node.runtime.config.dataDir, 'staging', 'starter-ngram-2');
  await mkdir(folder, { recursive: true });
  await writeFile(path.join(folder, 'config.json'), JSON.stringify({ minN: 3, maxN: 4, wordWeight: 2, seed: 2654435761, stopwords: true }));
  const manifest = await buildManifest(folder, {
    name: 'starter n-grams, 3 to 4',
    alias: 'starter-ngram',
    version: '2',
    kind: 'embed',
    license: 'Apache-2.0',
    embed: { engine: 'hashed-ngrams', normalize: true, config: 'config.json', dimension: 1024, maxTokens: 2048, queryPrefix: '', passagePrefix: '' },
  });
  await writeManifest(folder, manifest);
  await publishFolder(await embedded.node.runtime.stores.models(), folder);
  return manifest;
}

/** The admin page's outcome line (role=status) once it says `text`. */
const noted = (page: Page, text: string | RegExp) => page.locator('#admin-note').filter({ hasText: text }).waitFor();

describe('admin page in chromium against the admin routes (embedded profile)', () => {
  let embedded: EmbeddedNode;
  let browser: TestBrowser;
  let admin: string;
  let editor: string;
  let tenantAdmin: string;
  const TENANT = 'ui-ops';

  before(async () => {
    embedded = await startEmbeddedNode();
    browser = await launchBrowser(embedded.base);
    admin = await embedded.token(['admin'], 'ui-root', TENANT);
    editor = await embedded.token(['editor'], 'ui-ed', TENANT);
    tenantAdmin = await embedded.token(['tenant_admin'], 'ui-ta', TENANT);
    // Members are recorded when they first show up (GET /me).
    for (const token of [admin, editor, tenantAdmin]) assert.equal((await httpJson(`${embedded.base}/api/v1/me`, { token })).status, 200);
    const doc = await upload(embedded.base, editor, { name: 'canteen.txt', content: 'The canteen serves soup on Fridays and fish on Mondays.' });
    assert.equal((await waitForJob(embedded.base, editor, doc.body.job.id)).status, 'ready');
    const registered = await httpJson(`${embedded.base}/api/v1/admin/models`, { method: 'POST', token: admin, ...json({ manifest: await publishStarterV2(embedded) }) });
    assert.equal(registered.status, 200, JSON.stringify(registered.body));
  });
  after(async () => {
    await browser?.close();
    await embedded?.stop();
  });

  const active = async () => ((await httpJson(`${embedded.base}/api/v1/admin/models`, { token: admin })).body as Array<{ alias: string; activeVersion: string }>).find((m) => m.alias === 'starter-ngram')!.activeVersion;

  it('models: a version is refused until re-indexed, re-indexed with progress, switched to, rolled back', async () => {
    const { page, context } = await browser.newPage({ token: admin });
    await withScreenshot(page, 'admin-models', async () => {
      await page.goto('/#/admin');
      const row = page.locator('#models tr[data-alias="starter-ngram"]');
      await row.waitFor();
      assert.equal(await row.getAttribute('data-active'), '1');
      assert.deepEqual(await row.locator('select option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)), ['1', '2']);
      // Version 2 has no vectors yet: the server refuses the switch and the page says why.
      await page.getByLabel('Version starter-ngram').selectOption('2');
      await page.getByRole('button', { name: 'Switch starter-ngram' }).click();
      await page.locator('#admin-error').filter({ hasText: 'MODEL_COVERAGE_INCOMPLETE' }).waitFor();
      assert.equal(await active(), '1');

      await page.getByLabel('Version starter-ngram').selectOption('2');
      await page.getByRole('button', { name: 'Re-index starter-ngram' }).click();
      await noted(page, 'Re-index started');
      const progress = page.locator(`#reindexes tr[data-reindex="starter-ngram@2"][data-tenant="${TENANT}"]`);
      await progress.and(page.locator('[data-state="done"]')).waitFor({ timeout: 60_000 });
      assert.equal(await progress.locator('progress').evaluate((p) => (p as HTMLProgressElement).value), 1);
      // Progress came pushed over admin/models/events, not only from reloading the status.
      assert.ok(Number(await page.locator('#reindexes').getAttribute('data-live')) > 0, 'no live progress event reached the page');
      await page.getByRole('button', { name: 'Refresh: Models and flags' }).click();
      await page.locator('#models tr[data-coverage="starter-ngram@2"]', { hasText: `${TENANT}: 100 %` }).waitFor();

      await page.getByLabel('Version starter-ngram').selectOption('2');
      await page.getByRole('button', { name: 'Switch starter-ngram' }).click();
      await noted(page, 'Switched: starter-ngram 1 → 2');
      await page.locator('#models tr[data-alias="starter-ngram"][data-active="2"]').waitFor();
      assert.equal(await active(), '2');

      await page.getByRole('button', { name: 'Rollback starter-ngram' }).click();
      await noted(page, 'Switched: starter-ngram 2 → 1');
      await page.locator('#models tr[data-alias="starter-ngram"][data-active="1"]').waitFor();
      assert.equal(await active(), '1');
      // Search still answers after the round trip.
      const search = await httpJson(`${embedded.base}/api/v1/search`, { method: 'POST', token: editor, ...json({ query: 'soup' }) });
      assert.ok(search.body.hits.length > 0);

      // Each change is in the audit log, read from the same page.
      await page.getByLabel('Action', { exact: true }).fill('models.switch');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.locator('#audit tr[data-audit="models.switch"]', { hasText: 'starter-ngram@2' }).waitFor();
    });
    await context.close();
  });

  it('API keys: created in the UI for a user and shown once, accepted on /v1, revoked in the UI', async () => {
    const { page, context } = await browser.newPage({ token: admin });
    let key = '';
    await withScreenshot(page, 'admin-keys', async () => {
      await page.goto('/#/admin');
      await page.locator('#key-user option[value="ui-ed"]').waitFor({ state: 'attached' });
      await page.getByLabel('Key name').fill('ci-bot');
      await page.locator('#key-user').selectOption('ui-ed');
      await page.getByRole('button', { name: 'Create' }).click();
      await noted(page, 'Key created: ci-bot');
      key = (await page.locator('code[data-new-key]').textContent()) ?? '';
      assert.ok(key.length > 20, key);
    });
    // The key works against the OpenAI-compatible API and is the editor's.
    const models = await httpJson(`${embedded.base}/v1/models`, { token: key });
    assert.equal(models.status, 200, JSON.stringify(models.body));
    const me = await httpJson(`${embedded.base}/api/v1/me`, { token: key });
    assert.deepEqual({ userId: me.body.userId, roles: me.body.roles }, { userId: 'ui-ed', roles: ['editor'] });
    // The UI signs in with it as well.
    const signIn = await browser.newPage();
    await withScreenshot(signIn.page, 'sign-in-with-key', async () => {
      await signIn.page.goto('/');
      await signIn.page.getByLabel('API key or token').fill(key);
      await signIn.page.getByRole('button', { name: 'Sign in' }).click();
      await signIn.page.getByText('Signed in as ui-ed').waitFor();
    });
    await signIn.context.close();
    await withScreenshot(page, 'admin-keys-revoke', async () => {
      // Shown once: a reload lists the key with its last use, never its secret.
      await page.reload();
      const row = page.locator('#keys tr[data-name="ci-bot"]');
      await row.waitFor();
      assert.equal(await page.locator('code[data-new-key]').count(), 0);
      assert.ok(!(await page.content()).includes(key));
      assert.notEqual((await row.locator('td').nth(4).textContent())?.trim(), '—', 'last use recorded');
      await page.getByRole('button', { name: 'Revoke ci-bot' }).click();
      await page.locator('#keys tr[data-name="ci-bot"][data-revoked="true"]').waitFor();
    });
    assert.equal((await httpJson(`${embedded.base}/v1/models`, { token: key })).status, 401);
    await context.close();
  });

  it("users: a role changed in the UI is the user's role on the server, and audited", async () => {
    const { page, context } = await browser.newPage({ token: admin });
    await withScreenshot(page, 'admin-users', async () => {
      await page.goto('/#/admin');
      await page.locator('#users tr[data-user="ui-ed"][data-roles="editor"]').waitFor();
      await page.getByLabel('Role ui-ed').selectOption('viewer');
      await page.getByRole('button', { name: 'Save ui-ed' }).click();
      await noted(page, 'Roles saved: ui-ed');
      await page.locator('#users tr[data-user="ui-ed"][data-roles="viewer"]').waitFor();
      const users = await httpJson(`${embedded.base}/api/v1/users`, { token: admin });
      assert.deepEqual(users.body.items.find((u: { userId: string }) => u.userId === 'ui-ed').roles, ['viewer']);
      await page.getByLabel('Actor', { exact: true }).fill('ui-root');
      await page.getByLabel('Action', { exact: true }).fill('user.roles');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.locator('#audit tr[data-audit="user.roles"]', { hasText: 'ui-ed' }).waitFor();
      assert.match((await page.locator('#audit tr[data-audit="user.roles"]').first().textContent()) ?? '', /"to":\["viewer"\]/);
      // Back to editor for the tests after this one.
      await page.getByLabel('Role ui-ed').selectOption('editor');
      await page.getByRole('button', { name: 'Save ui-ed' }).click();
      await page.locator('#users tr[data-user="ui-ed"][data-roles="editor"]').waitFor();
    });
    await context.close();
  });

  it('dead letters: a job that failed for good is replayed from the UI, runs again and is audited', async () => {
    const broken = await upload(embedded.base, editor, { name: 'broken.pdf', content: Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.alloc(2048, 7)]) });
    const jobId = broken.body.job.id as string;
    const failed = await waitForJob(embedded.base, editor, jobId, ['failed']);
    const { page, context } = await browser.newPage({ token: admin });
    await withScreenshot(page, 'admin-dead-letters', async () => {
      await page.goto('/#/admin');
      const row = page.locator(`#dead-letters tr[data-job="${jobId}"]`);
      await row.waitFor();
      const deadAt = await row.getAttribute('data-dead-at');
      assert.match((await page.locator('#dead-letters [data-depths]').textContent()) ?? '', /ingest: \d+ queued · \d+ dead/);
      await row.getByRole('button', { name: /^Replay/ }).click();
      await noted(page, `Replayed: ${jobId}`);
      // Queued again, it runs again: being broken, it fails again, later than the first time.
      await waitFor('the replayed job to fail again', async () => {
        const job = (await httpJson(`${embedded.base}/api/v1/jobs/${jobId}`, { token: admin })).body;
        return job.status === 'failed' && job.updatedAt > failed.updatedAt ? job : null;
      });
      await waitFor('the new dead letter on the page', async () => {
        await page.getByRole('button', { name: 'Refresh: Dead letters' }).click();
        const again = await row.getAttribute('data-dead-at', { timeout: 2000 }).catch(() => null);
        return again && again !== deadAt ? again : null;
      });
      await page.getByLabel('Action', { exact: true }).fill('dead-letter.replay');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.locator('#audit tr[data-audit="dead-letter.replay"]', { hasText: jobId }).waitFor();
    });
    await context.close();
  });

  it('backups: one taken from the UI is listed', async () => {
    const { page, context } = await browser.newPage({ token: admin });
    await withScreenshot(page, 'admin-backups', async () => {
      await page.goto('/#/admin');
      await page.locator('#backups').getByText('No backups yet.').waitFor();
      await page.getByRole('button', { name: 'Back up now' }).click();
      await page.locator('#admin-note').filter({ hasText: 'Backup taken' }).waitFor({ timeout: 120_000 });
      const id = ((await page.locator('#admin-note').textContent()) ?? '').split(': ')[1]!.trim();
      await page.locator(`#backups tr[data-backup="${id}"]`).waitFor();
    });
    const list = await httpJson(`${embedded.base}/api/v1/admin/backups`, { token: admin });
    assert.equal(list.body.backups.length, 1);
    await context.close();
  });

  it('a tenant_admin manages users, keys and audit of its tenant, reads models, and has no deployment controls', async () => {
    const { page, context } = await browser.newPage({ token: tenantAdmin });
    await withScreenshot(page, 'admin-tenant-admin', async () => {
      await page.goto('/#/admin');
      await page.locator('#users tr[data-user="ui-ed"]').waitFor();
      await page.locator('#models tr[data-alias="starter-ngram"]').waitFor();
      await page.locator('#system tr[data-service="api"]').waitFor();
      await page.locator('#maintenance [data-maintenance="false"]').waitFor();
      assert.equal(await page.locator('#dead-letters, #backups, #maintenance-toggle').count(), 0);
      assert.equal(await page.getByRole('button', { name: /^(Switch|Rollback|Re-index) / }).count(), 0);
      assert.equal(await page.locator('.error[role="alert"]:not(:empty)').count(), 0, 'no section failed');
      // A key for the editor: the roles offered are the ones the editor holds.
      await page.getByLabel('Key name').fill('uploader');
      await page.locator('#key-user').selectOption('ui-ed');
      assert.deepEqual(await page.locator('#key-role option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)), ['', 'editor']);
      await page.locator('#key-role').selectOption('editor');
      await page.getByRole('button', { name: 'Create' }).click();
      await noted(page, 'Key created: uploader');
      const key = (await page.locator('code[data-new-key]').textContent())!;
      const me = await httpJson(`${embedded.base}/api/v1/me`, { token: key });
      assert.deepEqual({ userId: me.body.userId, roles: me.body.roles }, { userId: 'ui-ed', roles: ['editor'] });
      // The tenant_admin's own audit view has it.
      await page.getByLabel('Action', { exact: true }).fill('api-key.create');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.locator('#audit tr[data-audit="api-key.create"]', { hasText: 'uploader' }).waitFor();
    });
    await context.close();
  });

  it('maintenance: switched on in the UI shows the banner to everyone, uploads get 503 MAINTENANCE; switched off again', async () => {
    const { page, context } = await browser.newPage({ token: admin });
    const other = await browser.newPage({ token: editor });
    await withScreenshot(page, 'admin-maintenance', async () => {
      await page.goto('/#/admin');
      await page.locator('#maintenance [data-maintenance="false"]').waitFor();
      await page.getByLabel('Reason').fill('upgrade to 0.2');
      await page.getByRole('button', { name: 'Start maintenance' }).click();
      await page.locator('#maintenance [data-maintenance="true"]').waitFor();
      await page.locator('#maintenance-banner', { hasText: 'upgrade to 0.2' }).waitFor();
    });
    const refused = await upload(embedded.base, editor, { name: 'late.txt', content: 'Written during maintenance.' });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'MAINTENANCE');
    await withScreenshot(other.page, 'editor-maintenance', async () => {
      // An editor sees the banner too, on any page.
      await other.page.goto('/#/documents');
      await other.page.locator('#maintenance-banner', { hasText: 'upgrade to 0.2' }).waitFor();
    });
    await withScreenshot(page, 'admin-maintenance-off', async () => {
      await page.getByRole('button', { name: 'End maintenance' }).click();
      await page.locator('#maintenance [data-maintenance="false"]').waitFor();
      await page.locator('#maintenance-banner').waitFor({ state: 'detached' });
    });
    assert.equal((await upload(embedded.base, editor, { name: 'later.txt', content: 'Written after maintenance.' })).status, 202);
    await other.context.close();
    await context.close();
  });

  it('speaks Russian on the admin page', async () => {
    const { page, context } = await browser.newPage({ token: admin, lang: 'ru' });
    await withScreenshot(page, 'admin-russian', async () => {
      await page.goto('/#/admin');
      await page.getByRole('heading', { name: 'Администрирование', level: 1 }).waitFor();
      await page.locator('#models tr[data-alias="starter-ngram"]').waitFor();
      const headings = await page.locator('main h2, main h3, main th, main button').allTextContents();
      const latin = headings.filter((x) => /^[A-Za-z][a-z]+( [a-z]+)*$/.test(x.trim()) && !['ID'].includes(x.trim()));
      assert.deepEqual(latin, [], 'English words left in the Russian admin page');
      await page.getByRole('button', { name: 'Переключить starter-ngram' }).waitFor();
    });
    await context.close();
  });
});
