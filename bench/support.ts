import { readFileSync } from 'node:fs';
import http from 'node:http';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MINILM_L6 } from '../test/support/tiny-bert.ts';
import { ModelsRepository } from '../lib/repositories/models.ts';
import type { Stores } from '../lib/runtime/stores.ts';
import { publishRandomBert } from '../test/support/models.ts';

/**
 * Publishes a random-weight encoder in all-MiniLM-L6-v2's shape (int8) under `alias`
 * version 1 and makes it the active version: what benchmarks measure throughput on,
 * since real weights cannot be installed here and speed depends on the shape alone.
 */
export async function publishBenchEncoder(stores: Stores, alias: string, maxTokens: number) {
  const shape = { ...MINILM_L6, precision: 'int8' as const };
  const manifest = await publishRandomBert(await stores.models(), await mkdtemp(path.join(os.tmpdir(), 'bench-model-')), {
    alias,
    version: '1',
    name: 'random-weight MiniLM-L6 shape (int8)',
    shape,
    embed: { maxTokens },
  });
  const repo = new ModelsRepository((await stores.db()).knex);
  await repo.register(manifest);
  await repo.switchTo(alias, '1', 'bench');
  return { manifest };
}

/**
 * A public dataset folder (`cisi`, `xquad-en`): BENCH_DATASETS if set, else
 * ../shared/datasets next to the checkout (a git worktree sets BENCH_DATASETS).
 */
export function datasetDir(name: string): string {
  return path.join(process.env.BENCH_DATASETS ?? path.resolve(import.meta.dirname, '../../shared/datasets'), name);
}

/**
 * Milliseconds from POSTing a chat message (`url`: /api/v1/chats/:id/messages) to the
 * first `token` event of its SSE answer, read to the end: what the SSE, nginx and UI
 * benches compare their paths on.
 */
export async function firstTokenMs(url: string, token: string, body: { content: string; rag: boolean }): Promise<number> {
  const started = performance.now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'text/event-stream' },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffer = '';
  let first = -1;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    if (first < 0 && buffer.includes('event: token')) first = performance.now() - started;
  }
  if (first < 0) throw new Error(`no token: ${buffer.slice(0, 300)}`);
  return first;
}

/**
 * firstTokenMs over node:http and one kept-alive connection instead of `fetch`: what
 * bench:sse times with. Traced at load 5, `fetch` (undici) took about 1 ms from the call to
 * its request's first byte on the socket and 1.2 ms from the read that brought the token to
 * handing it over (web streams, TextDecoder): 2 ms of the figure that were the bench
 * client's, not the mesh's. This client writes the request at once and looks for the token
 * in the bytes as they are read.
 */
export function keepAliveClient(): { firstTokenMs(url: string, token: string, body: { content: string; rag: boolean }): Promise<number>; close(): void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const marker = Buffer.from('event: token');
  return {
    firstTokenMs(url, token, body) {
      const payload = Buffer.from(JSON.stringify(body));
      return new Promise<number>((resolve, reject) => {
        const started = performance.now();
        const req = http.request(url, {
          method: 'POST',
          agent,
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'text/event-stream', 'Content-Length': payload.length },
        });
        req.on('response', (res) => {
          let first = -1;
          let seen: Buffer = Buffer.alloc(0);
          res.on('data', (chunk: Buffer) => {
            if (first >= 0) return;
            // The marker may straddle two reads: keep its length's worth of the last one.
            seen = seen.length ? Buffer.concat([seen.subarray(-marker.length), chunk]) : chunk;
            if (seen.includes(marker)) first = performance.now() - started;
          });
          res.on('end', () => {
            if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
            else if (first < 0) reject(new Error('no token'));
            else resolve(first);
          });
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(payload);
      });
    },
    close: () => agent.destroy(),
  };
}

/**
 * CPU time (user + system, ms) a process has used so far, from /proc/PID/stat; null when
 * it is gone. utime and stime are fields 14 and 15 of the line (12 and 13 after the
 * command name, which may itself hold spaces), in clock ticks of 100 Hz.
 */
export function processCpuMs(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/**
 * Polls an api's /metrics until it holds some tenant's lexical postings in memory (a
 * tenant's first search starts building them; SQL answers meanwhile). The ms waited, or
 * null when they were not held within `timeoutMs`.
 */
export async function waitForHeldPostings(base: string, timeoutMs: number): Promise<number | null> {
  const started = performance.now();
  while (!/^ragmesh_search_lexical_memory_tenants(?:\{[^}]*\})? [1-9]/m.test(await (await fetch(`${base}/metrics`)).text())) {
    if (performance.now() - started > timeoutMs) return null;
    await new Promise((r) => setTimeout(r, 200));
  }
  return performance.now() - started;
}
