/**
 * Soak: the mesh (api, models node, ingest worker as processes on RabbitMQ,
 * PostgreSQL, Redis, S3) under a fixed mixed rate of uploads, searches and chats for
 * SOAK_MINUTES (10), with the RSS of every process sampled every 30 s. Reports, per
 * process, RSS after warm-up (SOAK_WARMUP_MINUTES, 2) and whether it stayed flat
 * within 10 %, plus every request that did not succeed and every job not ready.
 * Not part of CI: `npm run soak`. Ends with one JSON line; exits 1 when a goal is missed.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { httpJson } from '../support/http.ts';
import { syntheticText, TestMesh } from '../support/mesh.ts';
import { freePort } from '../support/processes.ts';
import { jobCounts, services, waitForJobs } from './support.ts';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const WARMUP_MINUTES = Number(process.env.SOAK_WARMUP_MINUTES ?? 2);
const SAMPLE_MS = 30_000;
/** Per second: 0.5 uploads, 2 searches, 0.2 chats (an answer streamed over SSE). */
const RATE = { uploadEveryMs: 2000, searchEveryMs: 500, chatEveryMs: 5000 };

async function rssKb(pid: number): Promise<number | null> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => null);
  const match = status && /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) : null;
}

/** V8 heap in use and memory outside it (Buffers, native), from a process's /metrics: what RSS growth is made of. */
async function heapMb(url: string): Promise<{ heap: number; external: number } | null> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) }).catch(() => null);
  if (!res?.ok) return null;
  const text = await res.text();
  const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const mb = (bytes: number) => Math.round(bytes / 104857.6) / 10;
  return { heap: mb(value('nodejs_heap_size_used_bytes')), external: mb(value('nodejs_external_memory_bytes')) };
}

/**
 * With SOAK_GC_PROBE=1 each process runs with the inspector on, and every sample first
 * forces a full garbage collection through it and reads the heap that survives: the
 * live heap, which grows only with a leak (the used heap of /metrics also counts
 * garbage not yet collected). A diagnostic: the forced collections change the RSS.
 */
const GC_PROBE = process.env.SOAK_GC_PROBE === '1';

async function liveHeapMb(inspectPort: number): Promise<number | null> {
  try {
    const [target] = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
    const ws = new WebSocket(target!.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    let id = 0;
    const send = (method: string) =>
      new Promise<Record<string, any>>((resolve) => {
        const mine = ++id;
        ws.addEventListener('message', function onMessage(event) {
          const msg = JSON.parse(String(event.data));
          if (msg.id !== mine) return;
          ws.removeEventListener('message', onMessage);
          resolve(msg.result);
        });
        ws.send(JSON.stringify({ id: mine, method }));
      });
    await send('HeapProfiler.collectGarbage');
    const usage = await send('Runtime.getHeapUsage');
    ws.close();
    return Math.round(usage.usedSize / 104857.6) / 10;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  await services.ensureAllUp();
  const mesh = await TestMesh.create();
  const errors: Record<string, number> = {};
  const counts = { uploads: 0, searches: 0, chats: 0 };
  const fail = (what: string) => (errors[what] = (errors[what] ?? 0) + 1);
  const timers: NodeJS.Timeout[] = [];
  const inFlight = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  try {
    const [modelsPort, workerPort] = [await freePort(), await freePort()];
    const inspect: Record<string, number> = GC_PROBE ? { gateway: await freePort(), models: await freePort(), worker: await freePort() } : {};
    const inspector = (name: string): Record<string, string> => (GC_PROBE ? { NODE_OPTIONS: `--inspect=127.0.0.1:${inspect[name]}` } : {});
    const started = await Promise.all([
      mesh.start('gateway', 'api', inspector('gateway')),
      mesh.start('models', 'emb,llm,analyze,maintenance', { HEALTH_PORT: String(modelsPort), ...inspector('models') }),
      mesh.start('worker', 'ingest', { HEALTH_PORT: String(workerPort), ...inspector('worker') }),
    ]);
    const metricsUrl: Record<string, string> = {
      gateway: `${mesh.apiUrl}/metrics`,
      models: `http://127.0.0.1:${modelsPort}/metrics`,
      worker: `http://127.0.0.1:${workerPort}/metrics`,
    };
    await mesh.waitForDiscovery(await mesh.token('ops', 'root', 'admin'));
    const tenant = 'soak';
    const token = await mesh.token(tenant, 'alice', 'editor');

    let seq = 0;
    const upload = async () => {
      const i = seq++;
      const form = new FormData();
      form.append('file', new Blob([syntheticText(20, 5000 + i)], { type: 'text/markdown' }), `soak-${i}.md`);
      const res = await httpJson(`${mesh.apiUrl}/api/v1/documents`, { method: 'POST', body: form, token, signal: AbortSignal.timeout(60_000) });
      counts.uploads++;
      if (res.status !== 202) fail(`upload ${res.status} ${res.body?.error?.code ?? ''}`);
    };
    const search = async () => {
      const res = await httpJson(`${mesh.apiUrl}/api/v1/search`, {
        method: 'POST',
        token,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ query: ['contract payment', 'warranty notice', 'delivery schedule', 'оплата поставка'][counts.searches % 4], limit: 5 }),
        signal: AbortSignal.timeout(30_000),
      });
      counts.searches++;
      if (res.status !== 200) fail(`search ${res.status} ${res.body?.error?.code ?? ''}`);
    };
    const chat = async () => {
      const created = await httpJson(`${mesh.apiUrl}/api/v1/chats`, { method: 'POST', token });
      if (created.status !== 201 && created.status !== 200) return void fail(`chat create ${created.status}`);
      const res = await fetch(`${mesh.apiUrl}/api/v1/chats/${created.body.id}/messages`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ content: 'When is the payment due under the contract?' }),
        signal: AbortSignal.timeout(60_000),
      });
      const text = await res.text();
      counts.chats++;
      if (res.status !== 200 || !/event: done/.test(text) || /event: error/.test(text)) fail(`chat ${res.status}`);
    };
    const every = (ms: number, what: string, fn: () => Promise<void>) =>
      timers.push(setInterval(() => track(fn().catch((err: unknown) => fail(`${what} ${(err as Error).name}`))), ms));
    every(RATE.uploadEveryMs, 'upload', upload);
    every(RATE.searchEveryMs, 'search', search);
    every(RATE.chatEveryMs, 'chat', chat);

    const t0 = Date.now();
    const samples: Array<{ minute: number; rssMb: Record<string, number>; heapMb: Record<string, { heap: number; external: number; live?: number | null } | null> }> = [];
    const sample = async () => {
      const rssMb: Record<string, number> = {};
      const heap: Record<string, { heap: number; external: number; live?: number | null } | null> = {};
      for (const p of started) {
        const live = GC_PROBE ? await liveHeapMb(inspect[p.name]!) : undefined;
        const kb = await rssKb(p.child.pid!);
        if (kb !== null) rssMb[p.name] = Math.round(kb / 102.4) / 10;
        const used = await heapMb(metricsUrl[p.name]!);
        heap[p.name] = used && live !== undefined ? { ...used, live } : used;
      }
      samples.push({ minute: Math.round((Date.now() - t0) / 6000) / 10, rssMb, heapMb: heap });
      console.log(`soak ${samples.at(-1)!.minute} min: rss ${JSON.stringify(rssMb)} heap ${JSON.stringify(heap)} uploads ${counts.uploads} searches ${counts.searches} chats ${counts.chats} errors ${JSON.stringify(errors)}`);
    };
    await sample();
    while (Date.now() - t0 < MINUTES * 60_000) {
      await new Promise((r) => setTimeout(r, Math.min(SAMPLE_MS, t0 + MINUTES * 60_000 - Date.now())));
      await sample();
    }
    for (const t of timers) clearInterval(t);
    await Promise.allSettled([...inFlight]);
    const jobs = await waitForJobs(mesh, tenant, 'the last jobs to settle', (c) => (c.queued ?? 0) + (c.running ?? 0) === 0, 120_000).catch(() => jobCounts(mesh, tenant));

    const afterWarmup = samples.filter((s) => s.minute >= WARMUP_MINUTES);
    const rss: Record<string, { firstMb: number; lastMb: number; minMb: number; maxMb: number; spreadPct: number; driftPct: number; flat: boolean }> = {};
    for (const p of started) {
      const values = afterWarmup.map((s) => s.rssMb[p.name]).filter((v): v is number => v !== undefined);
      if (values.length === 0) continue;
      const min = Math.min(...values);
      const max = Math.max(...values);
      const spreadPct = Math.round(((max - min) / min) * 1000) / 10;
      const driftPct = Math.round(((values.at(-1)! - values[0]!) / values[0]!) * 1000) / 10;
      rss[p.name] = { firstMb: values[0]!, lastMb: values.at(-1)!, minMb: min, maxMb: max, spreadPct, driftPct, flat: spreadPct <= 10 };
    }
    const notReady = Object.entries(jobs).filter(([s]) => s !== 'ready').reduce((a, [, n]) => a + n, 0);
    const ok = Object.values(rss).every((r) => r.flat) && Object.keys(errors).length === 0 && notReady === 0;
    console.log(JSON.stringify({ soak: true, minutes: MINUTES, warmupMinutes: WARMUP_MINUTES, rate: RATE, counts, errors, jobs, rss, ok }));
    process.exitCode = ok ? 0 : 1;
  } finally {
    for (const t of timers) clearInterval(t);
    // Every log line of every process, for a closer look at one run.
    if (process.env.FAULT_LOG_DIR) {
      for (const node of mesh.processes) await writeFile(`${process.env.FAULT_LOG_DIR}/soak-${node.name}.log`, `${node.lines.join('\n')}\n${node.stderr.join('')}`);
    }
    await mesh.stop();
  }
}

await main();
