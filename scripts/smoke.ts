import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseSse } from '../lib/streams.ts';

/**
 * Post-deploy smoke test against a running ragmesh (embedded or mesh, direct or through
 * nginx):
 *
 *   npm run smoke -- --url https://ragmesh.example.com --token "$(npm run -s token -- --tenant smoke --user smoke --role admin)"
 *
 * Checks every service's readiness, ingests a tiny file to `ready`, finds it with lexical,
 * dense and hybrid search, gets an SSE chat answer citing it, calls the OpenAI-compatible
 * API, and deletes what it created. Prints one line per check and exits 1 if any failed
 * (2 on bad usage). Runs as a one-shot Swarm service too (docs/operations.md).
 */

export interface CheckResult {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

export interface SmokeOptions {
  url: string;
  token: string;
  /** Longest wait for the document to be ready. */
  timeoutMs: number;
  log?: (line: string) => void;
}

export interface SmokeReport {
  ok: boolean;
  checks: CheckResult[];
}

class CheckFailed extends Error {}

/** Runs every check; never throws — failures are in the report. */
export async function runSmoke(options: SmokeOptions): Promise<SmokeReport> {
  const base = options.url.replace(/\/+$/, '');
  const log = options.log ?? (() => undefined);
  const checks: CheckResult[] = [];
  const marker = `smoke${randomBytes(5).toString('hex')}`;
  const created: { documentId?: string; chatId?: string } = {};

  const api = async (method: string, path: string, body?: unknown, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${options.token}`);
    if (body !== undefined && !(body instanceof FormData)) headers.set('Content-Type', 'application/json');
    const res = await fetch(`${base}${path}`, {
      ...init,
      method,
      headers,
      body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    let json: any = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, json, text, headers: res.headers };
  };
  const expectStatus = (res: { status: number; text: string }, status: number, what: string) => {
    if (res.status !== status) throw new CheckFailed(`${what}: HTTP ${res.status} (expected ${status}): ${res.text.slice(0, 300)}`);
  };

  const check = async (name: string, fn: () => Promise<string>, options: { skipIf?: () => string | null } = {}): Promise<boolean> => {
    const skip = options.skipIf?.();
    if (skip) {
      checks.push({ name, ok: false, ms: 0, detail: `not run: ${skip}` });
      log(`✘ ${name} — not run: ${skip}`);
      return false;
    }
    const started = performance.now();
    try {
      const detail = await fn();
      checks.push({ name, ok: true, ms: Math.round(performance.now() - started), detail });
      log(`✔ ${name} (${Math.round(performance.now() - started)} ms) ${detail}`);
      return true;
    } catch (err) {
      const detail = err instanceof CheckFailed ? err.message : `${(err as Error).name}: ${(err as Error).message}`;
      checks.push({ name, ok: false, ms: Math.round(performance.now() - started), detail });
      log(`✘ ${name} — ${detail}`);
      return false;
    }
  };

  await check('status: every service ready', async () => {
    const res = await api('GET', '/api/v1/status');
    expectStatus(res, 200, 'GET /api/v1/status');
    const { ready, missing, services } = res.json as { ready: boolean; missing: string[]; services: Array<{ service: string; nodeId: string; ready: boolean; error?: string; checks: Record<string, { ok: boolean; error?: string }> }> };
    const problems = [
      ...missing.map((m) => `${m}: no instance`),
      ...services.filter((s) => !s.ready).map((s) => `${s.service}@${s.nodeId}: not ready (${s.error ?? Object.entries(s.checks).filter(([, c]) => !c.ok).map(([k, c]) => `${k}: ${c.error ?? 'failed'}`).join(', ')})`),
    ];
    if (!ready || problems.length) throw new CheckFailed(problems.join('; ') || 'not ready');
    const counts = new Map<string, number>();
    for (const s of services) counts.set(s.service, (counts.get(s.service) ?? 0) + 1);
    return [...counts].map(([s, n]) => `${s}×${n}`).join(' ');
  });

  const ingested = await check('ingest: a tiny file reaches ready', async () => {
    const form = new FormData();
    form.append('tags', 'smoke');
    const text = `# Smoke test ${marker}\n\nThe ragmesh smoke check writes the marker ${marker} into this document. The marker ${marker} proves search and chat see new documents.\n`;
    form.append('file', new Blob([text], { type: 'text/markdown' }), `${marker}.md`);
    const res = await api('POST', '/api/v1/documents', form);
    expectStatus(res, 202, 'POST /api/v1/documents');
    created.documentId = res.json.document.id;
    const jobId = res.json.job.id as string;
    const deadline = Date.now() + options.timeoutMs;
    for (;;) {
      const job = await api('GET', `/api/v1/jobs/${jobId}`);
      expectStatus(job, 200, `GET /api/v1/jobs/${jobId}`);
      if (job.json.status === 'ready') return `document ${created.documentId}`;
      if (job.json.status === 'failed' || job.json.status === 'canceled') throw new CheckFailed(`job ${jobId} ${job.json.status}: ${job.json.errorCode ?? ''} ${job.json.error ?? ''}`);
      if (Date.now() > deadline) throw new CheckFailed(`job ${jobId} still ${job.json.status} (step ${job.json.step}) after ${options.timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  });
  const needsDocument = () => (ingested ? null : 'the document did not reach ready');

  for (const mode of ['lexical', 'dense', 'hybrid'] as const) {
    await check(`search: ${mode} finds it`, async () => {
      const res = await api('POST', '/api/v1/search', { query: `${marker} marker`, mode, limit: 10, filters: { documentIds: [created.documentId] } });
      expectStatus(res, 200, 'POST /api/v1/search');
      if (res.json.degraded?.[mode === 'hybrid' ? 'lexical' : mode] || (mode === 'hybrid' && res.json.degraded?.dense)) {
        throw new CheckFailed(`degraded: ${JSON.stringify(res.json.degraded)}`);
      }
      const hit = (res.json.hits as Array<{ documentId: string; text: string }>).find((h) => h.documentId === created.documentId);
      if (!hit) throw new CheckFailed(`no hit in the smoke document among ${res.json.hits.length} hits`);
      return `${res.json.hits.length} hit(s), ${res.json.tookMs} ms`;
    }, { skipIf: needsDocument });
  }

  await check('chat: SSE answer cites the document', async () => {
    const chat = await api('POST', '/api/v1/chats', {});
    expectStatus(chat, 201, 'POST /api/v1/chats');
    created.chatId = chat.json.id;
    const res = await fetch(`${base}/api/v1/chats/${created.chatId}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${options.token}`, 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify({ content: `What does the smoke check write with the marker ${marker}?` }),
      signal: AbortSignal.timeout(120_000),
    });
    if (res.status !== 200) throw new CheckFailed(`POST /api/v1/chats/:id/messages: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
    if (!res.headers.get('content-type')?.startsWith('text/event-stream')) throw new CheckFailed(`content-type ${res.headers.get('content-type')}`);
    const events = parseSse(await res.text());
    const error = events.find((e) => e.event === 'error');
    if (error) throw new CheckFailed(`error event: ${JSON.stringify(error.data)}`);
    const tokens = events.filter((e) => e.event === 'token').length;
    const done = events.find((e) => e.event === 'done');
    if (!done) throw new CheckFailed(`no done event (events: ${events.map((e) => e.event).join(',')})`);
    const cited = (done.data.citations as Array<{ documentId: string }>).some((c) => c.documentId === created.documentId);
    if (!cited) throw new CheckFailed(`the answer cites ${JSON.stringify(done.data.citations.map((c: { documentId: string }) => c.documentId))}, not the smoke document`);
    return `${tokens} token events, cited`;
  }, { skipIf: needsDocument });

  await check('openai: /v1/models and /v1/chat/completions', async () => {
    const models = await api('GET', '/v1/models');
    expectStatus(models, 200, 'GET /v1/models');
    const model = models.json.data?.[0]?.id;
    if (!model) throw new CheckFailed('no model listed');
    const res = await api('POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: `What is written with the marker ${marker}?` }] });
    expectStatus(res, 200, 'POST /v1/chat/completions');
    const content = res.json.choices?.[0]?.message?.content;
    if (typeof content !== 'string' || content.length === 0) throw new CheckFailed(`no answer: ${res.text.slice(0, 300)}`);
    return `model ${model}, ${content.length} chars`;
  });

  await check('cleanup: deletes what it created', async () => {
    const done: string[] = [];
    if (created.chatId) {
      const res = await api('DELETE', `/api/v1/chats/${created.chatId}`);
      if (res.status !== 204 && res.status !== 200) throw new CheckFailed(`DELETE chat: HTTP ${res.status}: ${res.text.slice(0, 200)}`);
      done.push('chat');
    }
    if (created.documentId) {
      const res = await api('DELETE', `/api/v1/documents/${created.documentId}`);
      if (![200, 202, 204].includes(res.status)) throw new CheckFailed(`DELETE document: HTTP ${res.status}: ${res.text.slice(0, 200)}`);
      const gone = await api('GET', `/api/v1/documents/${created.documentId}`);
      if (gone.status !== 404) throw new CheckFailed(`document still there after delete: HTTP ${gone.status}`);
      done.push('document');
    }
    return done.length ? `deleted ${done.join(', ')}` : 'nothing to delete';
  });

  return { ok: checks.every((c) => c.ok), checks };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: process.env.SMOKE_URL },
      token: { type: 'string', default: process.env.SMOKE_TOKEN },
      'token-file': { type: 'string', default: process.env.SMOKE_TOKEN_FILE },
      timeout: { type: 'string', default: '180' },
      json: { type: 'boolean', default: false },
    },
  });
  const token = values.token || (values['token-file'] ? readFileSync(values['token-file'], 'utf8').trim() : '');
  if (!values.url || !token) {
    process.stderr.write('usage: npm run smoke -- --url URL (--token T | --token-file F) [--timeout seconds] [--json]\n       (or SMOKE_URL, SMOKE_TOKEN / SMOKE_TOKEN_FILE)\n');
    process.exit(2);
  }
  process.stdout.write(`ragmesh smoke test against ${values.url}\n`);
  const report = await runSmoke({ url: values.url, token, timeoutMs: Number(values.timeout) * 1000, log: (line) => process.stdout.write(`${line}\n`) });
  const failed = report.checks.filter((c) => !c.ok);
  process.stdout.write(failed.length ? `\nFAILED: ${failed.length} of ${report.checks.length} checks:\n${failed.map((c) => `  - ${c.name}: ${c.detail}`).join('\n')}\n` : `\nOK: all ${report.checks.length} checks passed\n`);
  if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(report.ok ? 0 : 1);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    process.stderr.write(`smoke: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
