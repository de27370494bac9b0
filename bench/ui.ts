/**
 * bench:ui — the web UI's budget, in Debian's chromium against an embedded node:
 *
 *   1. first load of the chat page: bytes on the wire (compressed bodies + headers) of
 *      the page and its assets, budget 300 KB;
 *   2. time to the first answer token: in the browser (submit in the chat page → first
 *      text in the answer) against a plain HTTP client asking the same question the
 *      same way (POST, SSE, first `token` event), alternated, p50 of each.
 *
 *   ratio = browser p50 − client p50 in ms       goal ≤ 50, lower is better
 *
 * The run fails when the first load is over budget.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { textPdf } from '../test/fixtures/documents.ts';
import { launchBrowser } from '../test/support/browser.ts';
import { startEmbeddedNode } from '../test/support/embedded.ts';
import { httpJson } from '../test/support/http.ts';
import { upload, waitForJob } from '../test/support/ingest.ts';
import { firstTokenMs } from './support.ts';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 20);
const BUDGET_BYTES = 300 * 1024;
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!;
const round = (x: number) => Math.round(x * 100) / 100;

const clientFirstToken = (url: string, token: string, question: string) => firstTokenMs(url, token, { content: question, rag: true });

async function main(): Promise<void> {
  const node = await startEmbeddedNode({ LOG_LEVEL: 'error' });
  const browser = await launchBrowser(node.base);
  try {
    const token = await node.token(['editor'], 'bench', 'bench-ui');
    const pdf = await textPdf([
      ['Office handbook', 'The office opens at nine in the morning and closes at six in the evening.'],
      ['Lease terms', 'The tenant pays the rent before the fifth day of every month by bank transfer.'],
    ]);
    const uploaded = await upload(node.base, token, { name: 'handbook.pdf', content: pdf });
    await waitForJob(node.base, token, uploaded.body.job.id);
    const chat = (await httpJson(`${node.base}/api/v1/chats`, { method: 'POST', token, headers: { 'Content-Type': 'application/json' }, body: '{"title":"bench"}' })).body;

    // 1. First load, cold: a fresh context has an empty cache.
    const { page, context } = await browser.newPage({ token });
    const sizes: Array<{ url: string; bytes: number; asset: boolean }> = [];
    page.on('requestfinished', (request) => {
      void request.sizes().then((s) => {
        const url = new URL(request.url());
        sizes.push({ url: url.pathname, bytes: s.responseBodySize + s.responseHeadersSize, asset: !url.pathname.startsWith('/api/') });
      });
    });
    await page.goto(`/#/chat/${chat.id}`, { waitUntil: 'networkidle' });
    await page.locator('#question').waitFor();
    const assetBytes = sizes.filter((s) => s.asset).reduce((n, s) => n + s.bytes, 0);
    const allBytes = sizes.reduce((n, s) => n + s.bytes, 0);
    console.log(`first load: ${sizes.map((s) => `${s.url} ${s.bytes} B`).join(', ')}`);

    // 2. Time to first token, browser vs client, alternated.
    const url = `${node.base}/api/v1/chats/${chat.id}/messages`;
    // Plain JavaScript source: tsx would wrap a function's inner closures in a `__name` helper the page does not have.
    const BROWSER_FIRST_TOKEN = `async (q) => {
      const input = document.querySelector('#question');
      const log = document.querySelector('.log');
      const before = log.querySelectorAll('.msg.assistant').length;
      input.value = q;
      const started = performance.now();
      const first = new Promise((resolve) => {
        const observer = new MutationObserver(() => {
          const answers = log.querySelectorAll('.msg.assistant');
          const text = answers.length > before ? answers[answers.length - 1].querySelector('.answer-text')?.textContent : '';
          if (text) {
            observer.disconnect();
            resolve(performance.now() - started);
          }
        });
        observer.observe(log, { subtree: true, childList: true, characterData: true });
      });
      input.form.requestSubmit();
      const ms = await first;
      // The next question waits for this answer to finish (the send button comes back).
      await new Promise((resolve) => {
        const check = () => (document.querySelector('#send').disabled ? requestAnimationFrame(check) : resolve());
        check();
      });
      return ms;
    }`;
    const browserFirstToken = (question: string) => page.evaluate(`(${BROWSER_FIRST_TOKEN})(${JSON.stringify(question)})`) as Promise<number>;

    for (let i = 0; i < 3; i++) {
      await browserFirstToken(`When does the tenant pay the rent? ${randomUUID()}`);
      await clientFirstToken(url, token, `When does the tenant pay the rent? ${randomUUID()}`);
    }
    const inBrowser: number[] = [];
    const client: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      // A new question each time: cached answers would skip retrieval and generation.
      inBrowser.push(await browserFirstToken(`When does the tenant pay the rent? ${randomUUID()}`));
      client.push(await clientFirstToken(url, token, `When does the tenant pay the rent? ${randomUUID()}`));
    }
    await context.close();
    const added = percentile(inBrowser, 50) - percentile(client, 50);
    console.log(`first token: browser p50 ${round(percentile(inBrowser, 50))} ms, client p50 ${round(percentile(client, 50))} ms; first load ${assetBytes} B of assets`);
    console.log(
      JSON.stringify({
        bench: 'ui',
        ratio: round(added),
        goal: 50,
        lower_is_better: true,
        unit: 'ms added to the first token by the browser UI at p50',
        browser_p50_ms: round(percentile(inBrowser, 50)),
        browser_p95_ms: round(percentile(inBrowser, 95)),
        client_p50_ms: round(percentile(client, 50)),
        client_p95_ms: round(percentile(client, 95)),
        first_load_asset_bytes: assetBytes,
        first_load_all_bytes: allBytes,
        first_load_budget_bytes: BUDGET_BYTES,
        first_load_within_budget: assetBytes <= BUDGET_BYTES,
        samples: SAMPLES,
        browser: browser.browser.version(),
        backend: 'extractive',
        cores: os.cpus().length,
        node: process.version,
      }),
    );
    if (assetBytes > BUDGET_BYTES) process.exitCode = 1;
  } finally {
    await browser.close();
    await node.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
