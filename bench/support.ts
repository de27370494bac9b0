import { readFileSync } from 'node:fs';
import net from 'node:net';
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
 * firstTokenMs over one raw TCP connection (node:net) with the request's bytes written at
 * once: what bench:sse times with since 2026-12-02 (later). It is still a real HTTP/1.1
 * client of the api (keep-alive; bearer token, JSON body, Accept: text/event-stream; the chunked SSE
 * response read to its end), with none of node:http's per-request work: no ClientRequest
 * or agent, no header objects, no HTTP parser or IncomingMessage stream; the request is one
 * socket write and each read is searched for the token as it comes. The clock starts
 * before the request's bytes are built.
 */
export function rawHttpClient(): { firstTokenMs(url: string, token: string, body: { content: string; rag: boolean }): Promise<number>; close(): void } {
  let socket: net.Socket | null = null;
  const marker = Buffer.from('event: token');
  const open = (url: URL) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: url.hostname, port: Number(url.port || 80), noDelay: true }, () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
  return {
    async firstTokenMs(url, token, body) {
      const target = new URL(url);
      socket ??= await open(target);
      const s = socket;
      return new Promise<number>((resolve, reject) => {
        const started = performance.now();
        const payload = Buffer.from(JSON.stringify(body));
        const head =
          `POST ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nConnection: keep-alive\r\nAuthorization: Bearer ${token}\r\n` +
          `Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: ${payload.length}\r\n\r\n`;
        let first = -1;
        let seen: Buffer = Buffer.alloc(0);
        let status = 0;
        let headerEnd = -1;
        let chunked = false;
        let length = -1;
        const finish = (err?: Error) => {
          s.off('data', onData);
          s.off('error', onError);
          s.off('close', onClose);
          if (err) {
            s.destroy();
            if (socket === s) socket = null;
            reject(err);
          } else if (status !== 200) reject(new Error(`HTTP ${status}: ${seen.subarray(headerEnd, headerEnd + 300).toString()}`));
          else if (first < 0) reject(new Error('no token'));
          else resolve(first);
        };
        const onError = (err: Error) => finish(err);
        const onClose = () => finish(new Error('connection closed before the response ended'));
        let scanFrom = 0;
        const onData = (chunk: Buffer) => {
          const at = performance.now();
          seen = seen.length ? Buffer.concat([seen, chunk]) : chunk;
          if (headerEnd < 0) {
            const end = seen.indexOf('\r\n\r\n');
            if (end < 0) return;
            headerEnd = scanFrom = end + 4;
            const headers = seen.subarray(0, end).toString('latin1');
            status = Number(headers.slice(9, 12));
            chunked = /\r\ntransfer-encoding:\s*chunked/i.test(headers);
            length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(headers)?.[1] ?? -1);
          }
          // The time of the read that brought the token (the marker may straddle two reads).
          if (first < 0 && seen.indexOf(marker, scanFrom) >= 0) first = at - started;
          scanFrom = Math.max(headerEnd, seen.length - marker.length);
          // The response ends with its last chunk (chunked) or its Content-Length.
          if (chunked ? seen.subarray(-7).toString('latin1') === '\r\n0\r\n\r\n' || seen.length - headerEnd === 5 && seen.subarray(-5).toString('latin1') === '0\r\n\r\n' : length >= 0 && seen.length - headerEnd >= length) finish();
        };
        s.on('data', onData);
        s.on('error', onError);
        s.on('close', onClose);
        s.write(Buffer.concat([Buffer.from(head, 'latin1'), payload]));
      });
    },
    close: () => socket?.destroy(),
  };
}

/**
 * CPU time (user + system, ms) a process has used so far, from /proc/PID/stat; null when
 * it is gone (or of one of its threads: `thread`, the main thread's id being the pid). utime and stime are fields 14 and 15 of the line (12 and 13 after the
 * command name, which may itself hold spaces), in clock ticks of 100 Hz.
 */
export function processCpuMs(pid: number, thread?: number): number | null {
  let stat: string;
  try {
    // A thread's own line (/proc/PID/task/TID/stat) has the same fields: its CPU alone.
    stat = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
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
