/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The web UI in a real browser (Debian's chromium through playwright-core) against an
 * embedded node: upload → live status → ready, ask → streamed answer → citation → the
 * passage and its page, stop mid-stream (the upstream generation really ends), search
 * with a filter, an admin action, the Russian UI. A failing step leaves a screenshot
 * in test-results/ui/.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { scannedPdf, textPdf } from '../fixtures/documents.ts';
import { launchBrowser, withScreenshot, type TestBrowser } from '../support/browser.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../support/embedded.ts';
import { httpJson } from '../support/http.ts';
import { chunksOf, upload, waitForJob } from '../support/ingest.ts';
import { waitFor } from '../support/processes.ts';

const HANDBOOK: string[][] = [
  ['Office handbook', 'The office opens at nine in the morning and closes at six in the evening.'],
  ['Lease terms', 'The tenant pays the rent before the fifth day of every month by bank transfer.'],
  ['Parking', 'Visitors park on the second level of the garage behind the building.'],
];

/** Drops files on the upload zone the way a drag from the desktop does. */
async function dropFiles(page: Page, files: Array<{ name: string; type: string; content: Buffer }>): Promise<void> {
  await page.evaluate((list) => {
    const dt = new DataTransfer();
    for (const f of list) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name, { type: f.type }));
    document.getElementById('dropzone')!.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, files.map((f) => ({ name: f.name, type: f.type, b64: f.content.toString('base64') })));
}

/**
 * Text whose colour is below WCAG AA contrast against its effective background
 * (ancestors' backgrounds blended down to white). Plain JavaScript run in the page: a
 * function from this file would carry tsx's helpers, which the page does not have.
 */
const CONTRAST_PROBLEMS = `(() => {
  const rgba = (c) => { const n = (c.match(/[\\d.]+/g) || []).map(Number); return { r: n[0] || 0, g: n[1] || 0, b: n[2] || 0, a: n[3] ?? 1 }; };
  const lum = (c) => { const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4); return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const over = (top, under) => ({ r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a), b: top.b * top.a + under.b * (1 - top.a), a: 1 });
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c.a > 0) layers.push(c);
      if (c.a >= 1) break;
    }
    return layers.reverse().reduce((under, top) => over(top, under), { r: 255, g: 255, b: 255, a: 1 });
  };
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    if (!e.checkVisibility() || e.closest('.sr-only, [disabled], option')) continue;
    if (![...e.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim())) continue;
    const style = getComputedStyle(e);
    const bg = background(e);
    const fg = over(rgba(style.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) out.push(e.tagName.toLowerCase() + '.' + e.className + ' "' + e.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2) + ':1');
  }
  return out;
})()`;

describe('web UI in chromium (embedded profile)', () => {
  let embedded: EmbeddedNode;
  let browser: TestBrowser;
  let editor: string;

  before(async () => {
    embedded = await startEmbeddedNode();
    browser = await launchBrowser(embedded.base);
    editor = await embedded.token(['editor'], 'ui-alice', 'ui-acme');
  });
  after(async () => {
    await browser?.close();
    await embedded?.stop();
  });

  it('serves the UI at / from its own origin only, compressed', async () => {
    const res = await fetch(`${embedded.base}/`, { headers: { 'Accept-Encoding': 'gzip' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const html = await res.text();
    assert.doesNotMatch(html, /https?:\/\//, 'no outside URL in the page');
    const js = await fetch(`${embedded.base}/assets/app.js`, { headers: { 'Accept-Encoding': 'br' } });
    assert.equal(js.headers.get('content-encoding'), 'br');
  });

  it('signs in with a token, signs out, and refuses a bad one', async () => {
    const { page, context } = await browser.newPage();
    await withScreenshot(page, 'sign-in', async () => {
      await page.goto('/');
      await page.getByLabel('API key or token').fill('not-a-token');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();
      await page.getByLabel('API key or token').fill(editor);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('Signed in as ui-alice').waitFor();
      // Kept for the tab's session: a reload stays signed in.
      await page.reload();
      await page.getByText('Signed in as ui-alice').waitFor();
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('API key or token').waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem('ragmesh.token')), null);
    });
    await context.close();
  });

  it('uploads by drag and drop with per-file progress, shows live status until ready', async () => {
    const { page, context } = await browser.newPage({ token: editor });
    await withScreenshot(page, 'upload', async () => {
      await page.goto('/#/documents');
      await page.locator('#dropzone').waitFor();
      // Every status a row shows, in order, to prove it moved on its own (no reload).
      await page.evaluate(() => {
        (window as unknown as { seen: string[] }).seen = [];
        new MutationObserver(() => {
          for (const b of document.querySelectorAll('tr[data-document] .badge')) {
            const s = (b as HTMLElement).dataset.status!;
            const seen = (window as unknown as { seen: string[] }).seen;
            if (seen.at(-1) !== s) seen.push(s);
          }
        }).observe(document.body, { subtree: true, childList: true });
      });
      await page.locator('#upload-tags').fill('handbook');
      await dropFiles(page, [{ name: 'handbook.pdf', type: 'application/pdf', content: await textPdf(HANDBOOK, 'Handbook') }]);
      await page.locator('.uploads li[data-file="handbook.pdf"] .upload-state', { hasText: 'uploaded' }).waitFor();
      await page.locator('#upload-tags').fill('travel');
      await dropFiles(page, [
        { name: 'travel.md', type: 'text/markdown', content: Buffer.from('# Travel\n\nCar rent is paid at the desk of the travel office.\n') },
        { name: 'notes.txt', type: 'text/plain', content: Buffer.from('Travel notes: the rent of a bicycle costs five euros a day.\n') },
      ]);
      for (const name of ['handbook.pdf', 'travel.md', 'notes.txt']) {
        const item = page.locator(`.uploads li[data-file="${name}"]`);
        await item.locator('.upload-state', { hasText: 'uploaded' }).waitFor();
        assert.equal(await item.locator('progress').evaluate((p) => (p as HTMLProgressElement).value), 1);
      }
      await page.locator('tr[data-name="handbook.pdf"] .badge[data-status="ready"]').waitFor({ timeout: 60_000 });
      await page.locator('tr[data-name="travel.md"] .badge[data-status="ready"]').waitFor({ timeout: 60_000 });
      const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
      assert.ok(seen.some((s) => s === 'queued' || s === 'running'), `statuses seen: ${seen.join(' → ')}`);
      assert.equal(seen.at(-1), 'ready');
      // The tag filter keeps only the tagged document.
      await page.locator('#filter-tag').fill('handbook');
      assert.equal(await page.locator('tr[data-document]').count(), 1);
    });
    await context.close();
  });

  it('cancels a running job, retries it to ready, and deletes the document, from the list', async () => {
    const { page, context } = await browser.newPage({ token: editor });
    await withScreenshot(page, 'cancel-retry-delete', async () => {
      await page.goto('/#/documents');
      await page.locator('#dropzone').waitFor();
      await page.locator('#upload-tags').fill('scan');
      // Scanned pages go through OCR: slow enough to be caught running.
      const pages = Array.from({ length: 6 }, (_, i) => [`Scanned page ${i + 1}`, 'The archive room is on the third floor.']);
      await dropFiles(page, [{ name: 'scan.pdf', type: 'application/pdf', content: await scannedPdf(pages) }]);
      const row = page.locator('tr[data-name="scan.pdf"]');
      await row.locator('.badge[data-status="running"]').waitFor({ timeout: 30_000 });
      await page.getByRole('button', { name: 'Cancel: scan.pdf' }).click();
      await row.locator('.badge[data-status="canceled"]').waitFor({ timeout: 30_000 });
      const documentId = (await row.getAttribute('data-document'))!;
      assert.equal((await httpJson(`${embedded.base}/api/v1/documents/${documentId}`, { token: editor })).body.status, 'canceled');
      await page.getByRole('button', { name: 'Retry: scan.pdf' }).click();
      await row.locator('.badge[data-status="ready"]').waitFor({ timeout: 120_000 });
      assert.ok((await chunksOf(embedded.base, editor, documentId)).some((c) => /archive room/i.test(c.text)), 'OCR text indexed after the retry');
      page.once('dialog', (d) => void d.accept());
      await page.getByRole('button', { name: 'Delete: scan.pdf' }).click();
      await row.waitFor({ state: 'detached' });
      assert.equal((await httpJson(`${embedded.base}/api/v1/documents/${documentId}`, { token: editor })).status, 404);
    });
    await context.close();
  });

  it('asks, streams the answer token by token, and a citation opens the passage on its page', async () => {
    const { page, context } = await browser.newPage({ token: editor });
    await withScreenshot(page, 'chat-citation', async () => {
      await page.goto('/#/chat');
      await page.getByLabel('Question').fill('When does the tenant pay the rent?');
      await page.getByRole('button', { name: 'Send' }).click();
      const answer = page.locator('.msg.assistant[data-done="true"]');
      await answer.waitFor({ timeout: 30_000 });
      // Each token event was rendered as it came (the stop test below watches a slow stream grow).
      assert.ok(Number(await answer.getAttribute('data-tokens')) > 3, `${await answer.getAttribute('data-tokens')} token events`);
      assert.match((await answer.locator('.answer-text').textContent()) ?? '', /fifth day/);
      await answer.locator('button.chip').first().click();
      const dialog = page.getByRole('dialog');
      await dialog.waitFor();
      await dialog.locator('.passage-text mark').first().waitFor();
      assert.match((await dialog.locator('.page-label').textContent()) ?? '', /page 2/);
      assert.match((await dialog.locator('.passage-text').textContent()) ?? '', /tenant pays the rent before the fifth day/);
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      // Sources with both legs' ranks.
      await answer.locator('details.sources summary').click();
      assert.match((await answer.locator('details.sources').textContent()) ?? '', /lexical rank: \d+/);
      // History: the chat is listed, renamed, then deleted.
      page.once('dialog', (d) => void d.accept('Rent'));
      await page.getByRole('button', { name: /^Rename:/ }).first().click();
      await page.locator('.chat-list a', { hasText: 'Rent' }).waitFor();
      await page.reload();
      await page.locator('.msg.assistant').waitFor();
      // The sources are kept with the answer: the history shows both legs' ranks and the snippet too.
      const kept = page.locator('.msg.assistant details.sources');
      await kept.locator('summary').click();
      assert.match((await kept.textContent()) ?? '', /lexical rank: \d+ · dense rank: (\d+|—)/);
      assert.ok(await kept.locator('.snippet mark').count(), 'snippet with its matches');
      page.once('dialog', (d) => void d.accept());
      await page.getByRole('button', { name: 'Delete: Rent' }).click();
      await page.locator('.chat-list a', { hasText: 'Rent' }).waitFor({ state: 'detached' });
    });
    await context.close();
  });

  it('searches with tag, type and language filters and shows snippet, page and both ranks', async () => {
    const { page, context } = await browser.newPage({ token: editor });
    await withScreenshot(page, 'search', async () => {
      await page.goto('/#/search');
      await page.getByLabel('Query').fill('rent');
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      await page.locator('.hit').first().waitFor();
      const unfiltered = new Set(await page.locator('.hit').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.document)));
      assert.ok(unfiltered.size >= 2, 'both documents match without a filter');
      await page.getByLabel('Tags').fill('handbook');
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      await waitFor('filtered hits', async () => {
        const titles = await page.locator('.hit > a').allTextContents();
        return titles.length > 0 && titles.every((t) => t === 'handbook.pdf') ? titles : null;
      }, 10_000);
      const hit = page.locator('.hit').first();
      assert.match((await hit.textContent()) ?? '', /page 2/);
      assert.match((await hit.locator('.ranks').textContent()) ?? '', /lexical rank: \d+ · dense rank: (\d+|—)/);
      assert.ok(await hit.locator('.snippet mark').count());
      // By type: only the Markdown file; by language: nothing in Russian.
      await page.getByLabel('Tags').fill('');
      await page.getByLabel('Type').selectOption('text/markdown');
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      await waitFor('hits of the Markdown file only', async () => {
        const titles = await page.locator('.hit > a').allTextContents();
        return titles.length > 0 && titles.every((x) => x === 'travel.md') ? titles : null;
      }, 10_000);
      await page.getByLabel('Type').selectOption('');
      await page.locator('#search-lang').selectOption('ru');
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      await page.getByText('Nothing found.').waitFor();
      await page.locator('#search-lang').selectOption('en');
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      await page.locator('.hit').first().waitFor();
    });
    await context.close();
  });

  it('shows a document page with its pages, job history and an analysis run from it', async () => {
    const { page, context } = await browser.newPage({ token: editor });
    await withScreenshot(page, 'document', async () => {
      await page.goto('/#/documents');
      await page.locator('tr[data-name="handbook.pdf"] a').click();
      await page.getByRole('heading', { name: 'handbook.pdf' }).waitFor();
      await page.locator('details.page-group[data-page="2"]').waitFor();
      assert.equal(await page.locator('details.page-group').count(), 3);
      await page.locator('tr[data-job] .badge[data-status="ready"]').first().waitFor();
      await page.getByRole('button', { name: 'Analyze' }).click();
      // The analysis appears once its job, followed live, is ready.
      const analysis = page.locator('.analysis[data-version="1"]');
      await analysis.waitFor({ timeout: 60_000 });
      assert.match((await analysis.textContent()) ?? '', /tenant pays the rent/);
      assert.match((await analysis.textContent()) ?? '', /3 pages/);
    });
    await context.close();
  });

  it('lets an admin see every node and replay a dead letter', async () => {
    const admin = await embedded.token(['admin'], 'ui-root', 'ui-acme');
    const broken = await upload(embedded.base, admin, { name: 'broken.pdf', content: Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.alloc(2048, 7)]) });
    const jobId = broken.body.job.id as string;
    await waitForJob(embedded.base, admin, jobId, ['failed']);
    const { page, context } = await browser.newPage({ token: admin });
    await withScreenshot(page, 'admin', async () => {
      await page.goto('/#/admin');
      await page.locator('#system tr[data-service="api"]').waitFor();
      for (const service of ['api', 'emb', 'llm', 'ingest', 'analyze', 'maintenance']) assert.equal(await page.locator(`#system tr[data-service="${service}"]`).count(), 1, service);
      const row = page.locator(`#dead-letters tr[data-job="${jobId}"]`);
      await row.getByRole('button', { name: 'Replay' }).click();
      await page.getByRole('status').filter({ hasText: `Replayed: ${jobId}` }).waitFor();
    });
    await context.close();
    // An editor has no admin page.
    const { page: p2, context: c2 } = await browser.newPage({ token: editor });
    await p2.goto('/#/admin');
    await p2.getByRole('alert').filter({ hasText: 'cannot see' }).waitFor();
    assert.equal(await p2.getByRole('link', { name: 'Admin' }).count(), 0);
    await c2.close();
  });

  it('fits a 375 px screen and is labelled and keyboard reachable on every page, in English and Russian', async () => {
    const admin = await embedded.token(['admin'], 'ui-root', 'ui-acme');
    const documentId = (await httpJson(`${embedded.base}/api/v1/documents`, { token: admin })).body.items.find((d: { filename: string }) => d.filename === 'handbook.pdf').id as string;
    for (const lang of ['en', 'ru'] as const) {
      const { page, context } = await browser.newPage({ token: admin, width: 375, height: 740, lang });
      for (const path of ['chat', 'documents', `document/${documentId}`, 'search', 'admin']) {
        await withScreenshot(page, `narrow-${lang}-${path.split('/')[0]}`, async () => {
          await page.goto(`/#/${path}`);
          await page.locator('main#main h1, main#main .chat-layout').first().waitFor();
          await page.waitForLoadState('networkidle');
          // Nothing wider than the screen: tables scroll inside their own box.
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          assert.ok(overflow <= 0, `${lang} ${path}: ${overflow}px wider than the screen`);
          // Every control has a name a screen reader can read.
          const unnamed = await page.evaluate(() =>
            [...document.querySelectorAll('input, select, textarea, button, a[href], summary, [tabindex="0"]')]
              .filter((el) => {
                const e = el as HTMLElement;
                if (e.offsetParent === null && !e.classList.contains('sr-only')) return false;
                const id = e.id;
                const label = (id && document.querySelector(`label[for="${id}"]`)) || e.closest('label');
                return !(e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || label || (e.textContent ?? '').trim() || e.getAttribute('title') || e.getAttribute('placeholder'));
              })
              .map((e) => e.outerHTML.slice(0, 80)),
          );
          assert.deepEqual(unnamed, [], `${lang} ${path}: controls without a name`);
          // Text reads at WCAG AA contrast (4.5:1, 3:1 for large text) against what is behind it.
          const poor = (await page.evaluate(CONTRAST_PROBLEMS)) as string[];
          assert.deepEqual(poor, [], `${lang} ${path}: text below AA contrast`);
          if (lang === 'ru') {
            // The page's own words are Russian: headings, labels, column heads and buttons (not the documents' text).
            const words = await page.locator('main h1, main h2, main h3, main label, main th, main button, main summary, header nav a').allTextContents();
            const english = words.map((x) => x.trim()).filter((x) => /^[A-Z]?[a-z]+( [a-z]+)*$/.test(x) && x !== 'ragmesh');
            assert.ok(words.filter((x) => /[а-яё]/i.test(x)).length >= 4, `${path}: Russian words found: ${words.join(' | ')}`);
            assert.deepEqual(english, [], `${path}: English left in the Russian UI`);
          }
        });
      }
      await context.close();
    }
    // The first Tab reaches the skip link, which moves focus to the content.
    const { page, context } = await browser.newPage({ token: admin, width: 375, height: 740 });
    await page.goto('/#/documents');
    await page.locator('#dropzone').waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.className), 'skip');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
    await context.close();
  });

  it('is usable by keyboard alone: sign in, ask, open a citation and close it', async () => {
    const { page, context } = await browser.newPage();
    await withScreenshot(page, 'keyboard', async () => {
      await page.goto('/');
      await page.getByLabel('API key or token').waitFor();
      // The key field has focus on arrival.
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'token');
      await page.keyboard.type(editor);
      await page.keyboard.press('Enter');
      await page.getByLabel('Question').waitFor();
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'question');
      await page.keyboard.type('When is the rent paid?');
      await page.keyboard.press('Enter');
      await page.locator('.msg.assistant[data-done="true"] button.chip').first().waitFor({ timeout: 30_000 });
      // Focus is back in the question box; the answer's chips are just before it.
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'question');
      let onChip = false;
      for (let i = 0; i < 12 && !onChip; i++) {
        await page.keyboard.press('Shift+Tab');
        onChip = await page.evaluate(() => document.activeElement?.classList.contains('chip') ?? false);
      }
      assert.ok(onChip, 'a citation chip is reachable by Shift+Tab from the question');
      await page.keyboard.press('Enter');
      const dialog = page.getByRole('dialog');
      await dialog.locator('.passage-text mark').first().waitFor();
      assert.ok(await page.evaluate(() => Boolean(document.activeElement?.closest('dialog'))), 'focus moves into the passage');
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      assert.ok(await page.evaluate(() => document.activeElement?.classList.contains('chip')), 'focus returns to the chip');
    });
    await context.close();
  });

  it('speaks Russian', async () => {
    const { page, context } = await browser.newPage({ lang: 'ru' });
    await withScreenshot(page, 'russian', async () => {
      await page.goto('/');
      await page.getByRole('heading', { name: 'Вход в ragmesh' }).waitFor();
      assert.equal(await page.evaluate(() => document.documentElement.lang), 'ru');
      await page.getByLabel('API-ключ или токен').fill(editor);
      await page.getByRole('button', { name: 'Войти' }).click();
      await page.getByRole('link', { name: 'Документы' }).click();
      await page.getByRole('heading', { name: 'Документы' }).waitFor();
      await page.locator('.badge', { hasText: 'готов' }).first().waitFor();
      // And back to English from the switch, kept across reloads.
      await page.getByLabel('Язык').selectOption('en');
      await page.getByRole('heading', { name: 'Documents' }).waitFor();
      await page.reload();
      await page.getByRole('heading', { name: 'Documents' }).waitFor();
    });
    await context.close();
  });
});

describe('stop mid-stream (web UI, a slow upstream model)', () => {
  let embedded: EmbeddedNode;
  let browser: TestBrowser;
  let upstream: Server;
  let sent = 0;
  let closedAfter: number | null = null;

  before(async () => {
    // An OpenAI-compatible server that streams one token every 50 ms for a minute and
    // notes when its client (the llm service) hangs up.
    upstream = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      const timer = setInterval(() => {
        sent++;
        res.write(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: `word${sent} ` }, finish_reason: null }] })}\n\n`);
        if (sent >= 1200) {
          clearInterval(timer);
          res.end('data: [DONE]\n\n');
        }
      }, 50);
      res.on('close', () => {
        clearInterval(timer);
        closedAfter ??= sent;
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as AddressInfo).port;
    embedded = await startEmbeddedNode({ LLM_BACKEND: 'openai', LLM_URL: `http://127.0.0.1:${port}/v1`, LLM_MODEL: 'slow', LLM_MAX_TOKENS: '4000' });
    browser = await launchBrowser(embedded.base);
  });
  after(async () => {
    await browser?.close();
    await embedded?.stop();
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r));
  });

  it('stops the answer in the browser and the generation upstream', async () => {
    const token = await embedded.token(['editor'], 'ui-stop', 'ui-stop');
    const { page, context } = await browser.newPage({ token });
    await withScreenshot(page, 'stop', async () => {
      await page.goto('/#/chat');
      await page.getByLabel('Question').fill('Tell me a long story');
      await page.getByLabel('Answer from my documents (RAG)').uncheck();
      await page.getByRole('button', { name: 'Send' }).click();
      await page.locator('.msg.assistant .answer-text', { hasText: 'word5 ' }).waitFor();
      await page.getByRole('button', { name: 'Stop' }).click();
      await page.locator('.msg.assistant .stopped').waitFor();
      const at = await waitFor('the upstream request to close', async () => closedAfter, 10_000);
      assert.ok(at < 1200, `upstream closed after ${at} of 1200 tokens`);
      assert.ok(await page.getByRole('button', { name: 'Send' }).isEnabled());
    });
    await context.close();
  });
});
